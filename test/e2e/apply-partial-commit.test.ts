/**
 * iptables-restore commits table by table, in the nft variant as in the legacy one: when the filter
 * part of smartnat's payload fails, the mangle and nat parts before it are already in the kernel,
 * using sets prepared for them. A fault hook makes exactly that happen in the namespace lab (it adds
 * a rule jumping to a chain that does not exist to the filter part), and the test checks that the
 * kernel then holds the previous rules and sets exactly, that the next sync applies the new state,
 * and that a Mapping the change did not touch carries traffic throughout, also in the moment between
 * the nat commit and the rollback.
 */
import {spawnSync} from 'node:child_process'
import {expect} from 'chai'
import {iptablesBackend} from '../../src/lib/backend/iptables/backend.js'
import {ApplyError} from '../../src/lib/backend/result.js'
import {compileInterfacesPattern, DEFAULT_INTERFACES_PATTERN} from '../../src/lib/host/interfaces.js'
import type {RunOptions, RunResult, Runner} from '../../src/lib/host/runner.js'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import {DEFAULT_PLAN_OPTIONS, type Snapshot} from '../../src/lib/plan/model.js'
import {syncOnce} from '../../src/lib/sync/once.js'
import {LAB_PLAN, createLab, requireLab, type EchoResult, type Lab} from '../support/lab.js'
import {mappingManifest, serviceFromLab, serviceManifests, type MappingFixture} from '../support/mappings.js'

const VIP = '198.19.100.10'
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]
const WEB: MappingFixture = {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}
const API: MappingFixture = {name: 'api', addresses: [EXT_B], serviceName: 'web', ports: [{port: 8081, servicePort: 80}]}
const MISSING_CHAIN = 'SNM-NO-SUCH-CHAIN'

/** Runs iptables, iptables-save and iptables-restore of one variant (`iptables-nft-restore`, `iptables-legacy-restore`). */
class VariantRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    readonly variant: 'nft' | 'legacy',
  ) {}

  run(command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    const tool = /^iptables(-save|-restore)?$/.test(command) ? command.replace('iptables', `iptables-${this.variant}`) : command
    return this.inner.run(tool, args, options)
  }
}

/** Once armed, makes the filter part of the next iptables-restore payload fail, and runs `window` right after, before smartnat reacts. */
class FilterFault implements Runner {
  armed = false
  window: () => Promise<void> = async () => undefined

  constructor(private readonly inner: Runner) {}

  async run(command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    const input = options?.input
    if (!this.armed || !command.endsWith('-restore') || !command.startsWith('iptables') || !input?.includes('\n*filter\n')) {
      return this.inner.run(command, args, options)
    }
    this.armed = false
    const broken = input.replace(/(\n\*filter\n[\s\S]*?)COMMIT\n/, `$1-A SNM-INPUT -j ${MISSING_CHAIN}\nCOMMIT\n`)
    try {
      return await this.inner.run(command, args, {...options, input: broken})
    } finally {
      await this.window()
    }
  }
}

function snapshotOf(mappings: MappingFixture[], lab: Lab): Snapshot {
  const objects = [...serviceManifests(serviceFromLab('web', lab.services(), VIP)), ...mappings.map(mappingManifest)]
  const of = <T>(kind: string) => objects.filter((o) => o.kind === kind) as unknown as T[]
  return {mappings: of<MappingResource>('Mapping'), services: of<ServiceResource>('Service'), endpointSlices: of<EndpointSliceResource>('EndpointSlice')}
}

const answered = (results: EchoResult[]) => results.map((r) => (r.ok ? 'ok' : r.error))

for (const variant of ['nft', 'legacy'] as const) describe(`iptables-${variant}-restore failing in filter after nat committed (root)`, function () {
  this.timeout(120_000)
  let lab: Lab | undefined
  let runner: VariantRunner
  let fault: FilterFault

  const sync = (mappings: MappingFixture[], full = false) => {
    const settings = {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: compileInterfacesPattern(DEFAULT_INTERFACES_PATTERN)}
    return syncOnce({runner: fault, backend: iptablesBackend(fault)}, async () => snapshotOf(mappings, lab!), settings, {full})
  }
  /** smartnat's rules and sets as this variant and ipset print them, without counters and hash seeds. */
  const dump = async () => {
    const rules = (await runner.run('iptables-save', [])).stdout.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
    const sets = (await runner.run('ipset', ['save'])).stdout.replace(/ initval 0x[0-9a-f]+/g, '')
    return `${rules.join('\n')}\n${sets}`
  }
  const reach = async (address: string, port: number, count = 1) => answered(await lab!.requests('tcp', 'client1', CLIENT, address, port, count, {timeoutMs: 1000}))

  before(async function () {
    requireLab(this)
    const missing = [`iptables-${variant}-restore`, `iptables-${variant}-save`].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
    if (missing.length > 0) {
      if (process.env.CI) throw new Error(`${missing.join(', ')} not installed; CI must run this test`)
      console.log(`      skipped: needs ${missing.join(', ')}`)
      this.skip()
    }
    lab = await createLab()
    runner = new VariantRunner(lab.hostRunner, variant)
    fault = new FilterFault(runner)
  })

  after(async () => {
    await lab?.destroy()
  })

  it('leaves the previous rules and sets exactly, keeps the untouched Mapping’s traffic, and the next sync applies the new state', async () => {
    await sync([WEB])
    expect(await reach(EXT_A, 8080)).to.deep.equal(['ok'])
    const before = await dump()

    // New connections to the untouched Mapping, one after another, alongside what follows; the probe in the
    // fault's window is the one sure to land between the nat commit and the rollback.
    const steady = reach(EXT_A, 8080, 40)
    const inWindow: {natCommitted: boolean; web: string[]}[] = []
    fault.window = async () => {
      const nat = (await runner.run('iptables-save', ['-t', 'nat'])).stdout
      inWindow.push({natCommitted: nat.includes(`-d ${EXT_B}/32`), web: await reach(EXT_A, 8080)})
    }
    fault.armed = true
    // A full apply writes every table, as the first sync after a failed one does.
    const error = await sync([WEB, API], true).then(
      () => expect.fail('the apply with a failing filter part succeeded'),
      (e: unknown) => e,
    )
    expect(error).to.be.instanceOf(ApplyError)
    expect((error as ApplyError).message).to.include(MISSING_CHAIN).and.not.include('also failed')
    expect(inWindow, 'the nat part had committed when filter failed, and the untouched Mapping answered').to.deep.equal([{natCommitted: true, web: ['ok']}])

    expect(await dump(), 'the previous rules and sets, exactly').to.equal(before)
    expect(await reach(EXT_A, 8080)).to.deep.equal(['ok'])
    expect(await reach(EXT_B, 8081), 'nothing of the failed apply').to.deep.equal(['refused'])

    await sync([WEB, API], true)
    expect(await reach(EXT_B, 8081)).to.deep.equal(['ok'])
    expect(await reach(EXT_A, 8080)).to.deep.equal(['ok'])
    expect(await steady, 'every connection to the untouched Mapping').to.deep.equal(Array(40).fill('ok'))
  })
})
