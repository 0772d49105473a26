import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {sourceConfig} from '../../bin/source-config.js'

// From src/, whether or not a build left oclif.manifest.json behind.
const config = await sourceConfig()
const assume = ['--assume-addresses', '198.18.0.10,198.18.0.11,198.18.0.12']

describe('smartnat sync --dry-run', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-dry-'))
  })
  afterEach(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('prints each Mapping and the three payloads for the examples', async () => {
    const {stdout, error} = await runCommand(['sync', '--from-file', 'examples/', '--dry-run', ...assume], config)
    expect(error).to.equal(undefined)
    expect(stdout).to.match(/^default\/mapping-echo-service\s+configured on 198\.18\.0\.10$/m)
    expect(stdout).to.contain('# ipset restore -exist')
    expect(stdout).to.contain('# iptables-restore --noflush --wait')
    expect(stdout).to.contain('# ip -batch -')
    expect(stdout).to.contain(
      '-A SNM-A-5b4665a2 -p tcp -m tcp --dport 8080 -m comment --comment "default/mapping-echo-service tcp/8080" -j DNAT --to-destination 198.19.100.10:8080',
    )
  })

  it('gives each Mapping’s verdict and the scripts as JSON', async () => {
    await writeFile(
      join(dir, 'bad.yaml'),
      [
        'apiVersion: smartnat.aureacentral.com/v1alpha1',
        'kind: Mapping',
        'metadata: {name: broken, namespace: default}',
        'spec: {addresses: [198.18.0.10], serviceName: echo-test-service, ports: [{port: 70000}]}',
        '---',
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: {name: unrelated}',
      ].join('\n'),
    )
    const {stdout} = await runCommand(['sync', '--from-file', dir, '--dry-run', '--json', ...assume], config)
    const out = JSON.parse(stdout)
    expect(out.mappings).to.deep.equal([
      {
        namespace: 'default',
        name: 'broken',
        valid: false,
        reason: 'ports[0].port 70000 must be an integer in 1..65535',
        configuredAddresses: {},
        notLocalAddresses: [],
        faults: {},
      },
    ])
    expect(out).to.include({dryRun: true, configured: 0, invalid: 1, faulty: 0})
    expect(out.faults).to.deep.equal([])
    expect(out.scripts.map((p: {command: string}) => p.command)).to.deep.equal([
      'ipset restore -exist',
      'iptables-restore --noflush --wait',
      'ip -batch -',
    ])
    expect(out.scripts[1].text).not.to.contain('DNAT')
  })

  it('says a Mapping being deleted is no longer served, and programs nothing for it', async () => {
    await writeFile(
      join(dir, 'deleting.yaml'),
      [
        'apiVersion: smartnat.aureacentral.com/v1alpha1',
        'kind: Mapping',
        'metadata: {name: leaving, namespace: default, deletionTimestamp: "2026-01-02T03:04:05Z", finalizers: [mapping.finalizers.aureacentral.com]}',
        'spec: {addresses: [198.18.0.10], serviceName: echo-test-service, ports: [{port: 8080}]}',
      ].join('\n'),
    )
    const {stdout, error} = await runCommand(['sync', '--from-file', dir, '--dry-run', ...assume], config)
    expect(error).to.equal(undefined)
    expect(stdout).to.match(/^default\/leaving {2}deleting: being deleted since 2026-01-02T03:04:05Z; no longer served$/m)
    expect(stdout).to.not.contain('default/leaving tcp/8080')
    const json = JSON.parse((await runCommand(['sync', '--from-file', dir, '--dry-run', '--json', ...assume], config)).stdout)
    expect(json.mappings[0]).to.include({valid: false, deleting: '2026-01-02T03:04:05Z', reason: 'being deleted since 2026-01-02T03:04:05Z; no longer served'})
    expect(json.invalid, 'not counted as invalid, so --strict passes').to.equal(0)
    expect((await runCommand(['sync', '--from-file', dir, '--dry-run', '--strict', ...assume], config)).error).to.equal(undefined)
  })

  it('names the file and line of malformed YAML', async () => {
    await writeFile(join(dir, 'broken.yaml'), 'kind: Mapping\nmetadata:\n  name: [unclosed\n')
    const {error} = await runCommand(['sync', '--from-file', dir, '--dry-run', ...assume], config)
    expect(error?.message).to.match(/broken\.yaml:\d+: invalid YAML/)
  })

  describe('an external interface whose gateway is its own address', () => {
    // eth2's only address is the first host of its subnet, so --gw-offset 1 lands on it.
    const hosts = ['--assume-addresses', '198.18.0.10/24@eth1,198.18.2.1/24@eth2']
    const FAULT = "interface eth2: --gw-offset 1 gives 198.18.2.1, which is this host's own address"
    beforeEach(async () => {
      const mapping = (name: string, address: string) =>
        `apiVersion: smartnat.aureacentral.com/v1alpha1\nkind: Mapping\nmetadata: {name: ${name}, namespace: default}\nspec: {addresses: [${address}], serviceName: web, ports: [{port: 80}]}\n---\n`
      const service = 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 198.19.100.10, ports: [{port: 80}]}\n'
      await writeFile(join(dir, 'm.yaml'), mapping('on-eth1', '198.18.0.10') + mapping('on-eth2', '198.18.2.1') + service)
    })

    it('programs the other interface and its Mappings, and tells the Mappings on it why they are not', async () => {
      const {stdout, stderr, error} = await runCommand(['sync', '--from-file', dir, '--dry-run', ...hosts], config)
      expect(error).to.equal(undefined)
      expect(stdout).to.match(/^default\/on-eth1\s+configured on 198\.18\.0\.10$/m)
      expect(stdout).to.contain(`default/on-eth2  not served on 198.18.2.1: ${FAULT}`)
      expect(stdout).to.contain('--dport 80 -m comment --comment "default/on-eth1 tcp/80"')
      expect(stdout).to.not.contain('default/on-eth2 tcp/80')
      expect(stdout).to.contain('route replace default via 198.18.0.1 dev eth1 table 7001')
      expect(stdout).to.not.contain('table 7002')
      // oclif wraps a warning to the terminal's width, each line after the first indented with ›.
      expect(stderr.replace(/\s*\n\s*›\s*/g, ' ')).to.contain(`Warning: ${FAULT}; no Mapping is served on its addresses`)

      const out = JSON.parse((await runCommand(['sync', '--from-file', dir, '--dry-run', '--json', ...hosts], config)).stdout)
      expect(out).to.include({configured: 1, invalid: 0, faulty: 1})
      expect(out.faults).to.deep.equal([`${FAULT}; no Mapping is served on its addresses`])
      expect(out.mappings.map((m: {name: string; faults: object}) => [m.name, m.faults])).to.deep.equal([
        ['on-eth1', {}],
        ['on-eth2', {'198.18.2.1': FAULT}],
      ])
    })

    it('fails with --strict', async () => {
      const {error} = await runCommand(['sync', '--from-file', dir, '--dry-run', '--strict', ...hosts], config)
      expect(error?.oclif?.exit).to.equal(3)
      expect(error?.message).to.equal('1 Mapping(s) not served on every address')
    })
  })

  it('fails with --strict when a Mapping is invalid', async () => {
    await writeFile(
      join(dir, 'm.yaml'),
      'apiVersion: smartnat.aureacentral.com/v1alpha1\nkind: Mapping\nmetadata: {name: m}\nspec: {addresses: [bad], serviceName: s, ports: [{port: 1}]}\n',
    )
    const {error} = await runCommand(['sync', '--from-file', dir, '--dry-run', '--strict', ...assume], config)
    expect(error?.oclif?.exit).to.equal(3)
  })

  it('refuses --assume-addresses without --dry-run', async () => {
    const {error} = await runCommand(['sync', '--from-file', dir, ...assume], config)
    expect(error?.message).to.contain('--dry-run')
  })
})

describe('smartnat config file', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-config-'))
  })
  afterEach(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  const routes = async (config: string, extra: string[] = [], env: Record<string, string> = {}) => {
    await writeFile(join(dir, 'config.yaml'), config)
    const saved = {...process.env}
    Object.assign(process.env, env)
    try {
      const {stdout, error} = await runCommand(
        ['sync', '--config', join(dir, 'config.yaml'), '--from-file', 'examples/echo-service.yaml', '--dry-run', '--json', ...assume, ...extra],
        config,
      )
      if (error) throw error
      const out = JSON.parse(stdout)
      if (out.error) throw new Error(out.error.message)
      return out.scripts.find((p: {command: string}) => p.command === 'ip -batch -').text as string
    } finally {
      process.env = saved
    }
  }

  it('takes option values from the file', async () => {
    expect(await routes('gw-offset: 5\n')).to.contain('default via 198.18.0.5')
  })

  it('plans a floating address not assigned here and SNATs to the cluster-side address, from the file or the environment', async () => {
    const dryRun = async (config: string, env: Record<string, string> = {}) => {
      await writeFile(join(dir, 'config.yaml'), config)
      const saved = {...process.env}
      Object.assign(process.env, env)
      try {
        const standby = ['--assume-addresses', '198.18.0.2/24@eth1']
        const {stdout, error} = await runCommand(['sync', '--config', join(dir, 'config.yaml'), '--from-file', 'examples/echo-service.yaml', '--dry-run', '--json', ...standby], config)
        if (error) throw error
        return JSON.parse(stdout) as {configured: number; scripts: {text: string}[]}
      } finally {
        process.env = saved
      }
    }
    const file = await dryRun('floating-addresses: eth1=198.18.0.10/24\ncluster-address: 198.18.4.100\n')
    expect(file.configured).to.equal(1)
    expect(file.scripts.map((s) => s.text).join('\n')).to.contain('-j SNAT --to-source 198.18.4.100').and.not.contain('-j MASQUERADE')
    const env = await dryRun('', {SMARTNAT_FLOATING_ADDRESSES: 'eth1=198.18.0.10/24', SMARTNAT_CLUSTER_ADDRESS: '198.18.4.100'})
    expect(env.scripts.map((s) => s.text).join('\n')).to.contain('-j SNAT --to-source 198.18.4.100')
    expect((await dryRun('')).configured, 'without it, the address is not local').to.equal(0)
  })

  it('lets the environment override the file, and flags override both', async () => {
    expect(await routes('gw-offset: 5\n', [], {SNCTRLR_GW_ADDRESS_OFFSET: '7'})).to.contain('default via 198.18.0.7')
    expect(await routes('gw-offset: 5\n', ['--gw-offset', '9'], {SNCTRLR_GW_ADDRESS_OFFSET: '7'})).to.contain('default via 198.18.0.9')
  })

  it('reads SNCTRLR_* booleans as Go does, under the flag', async () => {
    const payloads = async (extra: string[], env: Record<string, string>) => {
      const saved = {...process.env}
      Object.assign(process.env, env)
      try {
        const {stdout, error} = await runCommand(['sync', '--config', '/dev/null', '--from-file', 'examples/echo-service.yaml', '--dry-run', '--json', ...assume, ...extra], config)
        if (error) throw error
        return {text: (JSON.parse(stdout).scripts as {text: string}[]).map((p) => p.text).join('\n')}
      } finally {
        process.env = saved
      }
    }
    expect((await payloads([], {SNCTRLR_SETUP_MASQUERADE: 'T'})).text).to.contain('-j MASQUERADE')
    expect((await payloads([], {SNCTRLR_SETUP_MASQUERADE: 'F'})).text, 'F is false').to.not.contain('-j MASQUERADE')
    expect((await payloads(['--masquerade'], {SNCTRLR_SETUP_MASQUERADE: 'False'})).text, 'the flag wins').to.contain('-j MASQUERADE')
  })

  it('names the SNCTRLR_* variables it does not use in one warning on stderr', async () => {
    const saved = {...process.env}
    Object.assign(process.env, {SNCTRLR_MAX_FINALIZE_WAIT_MINUTES: '60', SNCTRLR_SETUP_SNAT: 'false'})
    try {
      const {stderr, error} = await runCommand(['sync', '--config', '/dev/null', '--from-file', 'examples/echo-service.yaml', '--dry-run', ...assume], config)
      expect(error).to.equal(undefined)
      expect(stderr.match(/ignored: /g), 'one warning').to.have.length(1)
      expect(stderr.replace(/[\s›]+/g, ' ')).to.contain('ignored: SNCTRLR_MAX_FINALIZE_WAIT_MINUTES is set but smartnat does not use it')
    } finally {
      process.env = saved
    }
  })

  it('refuses a SNCTRLR_* boolean Go would not parse, with code 2', async () => {
    const saved = {...process.env}
    process.env.SNCTRLR_SETUP_SNAT = 'yes'
    try {
      const {error} = await runCommand(['sync', '--config', '/dev/null', '--from-file', 'examples/echo-service.yaml', '--dry-run', ...assume], config)
      expect(error?.message).to.contain('SNCTRLR_SETUP_SNAT="yes": must be one of')
      expect(error?.oclif?.exit).to.equal(2)
    } finally {
      process.env = saved
    }
  })

  it('names an unknown key', async () => {
    const error = await routes('gw-ofset: 5\n').catch((e: Error) => e)
    expect((error as Error).message).to.match(/config .*config\.yaml: unknown key "gw-ofset"; known keys: /)
  })

  it('names the line of a YAML syntax error', async () => {
    const error = await routes('gw-offset: 5\nmasquerade: [true\n').catch((e: Error) => e)
    expect((error as Error).message).to.match(/config .*config\.yaml:3: invalid YAML: unexpected end of the stream within a flow collection$/)
  })

  it('names a value of the wrong type', async () => {
    const error = await routes('masquerade: "maybe"\n').catch((e: Error) => e)
    expect((error as Error).message).to.contain('masquerade must be true or false, got "maybe"')
  })

  it('checks max-removal from the file as it checks the flag', async () => {
    expect(await routes('max-removal: 30%\nremoval-delay: 3\n')).to.contain('default via')
    const error = await routes('max-removal: 0.5\n').catch((e: Error) => e)
    expect((error as Error).message).to.contain('--max-removal "0.5" must be a percentage from 0% to 100%, such as 50%')
  })

  it('fails when an explicitly named file is missing', async () => {
    const {error} = await runCommand(['sync', '--config', join(dir, 'absent.yaml'), '--from-file', 'examples/', '--dry-run', ...assume], config)
    expect(error?.message).to.match(/absent\.yaml: cannot read it/)
  })
})
