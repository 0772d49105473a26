import {expect} from 'chai'

import type {MappingResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import type {HostInfo, MappingVerdict, Plan} from '../../src/lib/plan/model.js'
import type {ApplyOptions, Backend} from '../../src/lib/backend/backend.js'
import {inertBackend, NOTHING_CHANGED} from '../support/inert-backend.js'
import {createBackend} from '../../src/lib/backend/registry.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {DEFAULT_PLAN_OPTIONS} from '../../src/lib/plan/model.js'
import {vanishedPods} from '../../src/lib/sync/vanished-pods.js'
import {readAhead, syncOnce} from '../../src/lib/sync/once.js'
import {syncPass} from '../../src/lib/sync/watch.js'
import {checkPrerequisites} from '../../src/lib/sync/prepare.js'

const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}]}]}

function mapping(name: string, configured: Record<string, string[]>): MappingResource {
  return {
    metadata: {name, namespace: 'default'},
    status: {configuredAddresses: Object.fromEntries(Object.entries(configured).map(([a, podIPs]) => [a, {podIPs}]))},
  }
}

function verdict(name: string, configured: Record<string, string[]>): MappingVerdict {
  return {
    namespace: 'default',
    name,
    valid: true,
    invalid: 'no',
    configuredAddresses: Object.fromEntries(Object.entries(configured).map(([a, podIPs]) => [a, {podIPs: podIPs as Ipv4[]}])),
    notLocalAddresses: [],
  }
}

function planOf(verdicts: MappingVerdict[]): Plan {
  return {model: {mappings: [], interfaces: [], egress: [], masquerade: true}, verdicts, interfaceFaults: []}
}

describe('vanishedPods', () => {
  const cases: {name: string; before: MappingResource[]; now: MappingVerdict[]; want: string[]}[] = [
    {
      name: 'a pod that left the Service',
      before: [mapping('web', {'198.18.0.10': ['198.19.200.11', '198.19.200.12']})],
      now: [verdict('web', {'198.18.0.10': ['198.19.200.12']})],
      want: ['198.19.200.11'],
    },
    {
      name: 'nothing when the pods are unchanged',
      before: [mapping('web', {'198.18.0.10': ['198.19.200.11']})],
      now: [verdict('web', {'198.18.0.10': ['198.19.200.11']})],
      want: [],
    },
    {
      name: 'a pod still serving another Mapping stays',
      before: [mapping('a', {'198.18.0.10': ['198.19.200.11']}), mapping('b', {'198.18.0.10': []})],
      now: [verdict('a', {'198.18.0.10': []}), verdict('b', {'198.18.0.10': ['198.19.200.11']})],
      want: [],
    },
    {
      name: 'another instance’s addresses are not this host’s memory',
      before: [mapping('web', {'198.18.9.9': ['198.19.200.11']})],
      now: [verdict('web', {})],
      want: [],
    },
    {
      name: 'every pod of a Mapping that became invalid, sorted numerically',
      before: [mapping('web', {'198.18.0.10': ['198.19.200.100', '198.19.200.9']})],
      now: [{...verdict('web', {}), valid: false, invalid: 'bad'}],
      want: ['198.19.200.9', '198.19.200.100'],
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      const snapshot = {mappings: c.before, services: [], endpointSlices: []}
      expect(vanishedPods(snapshot, planOf(c.now), host)).to.deep.equal(c.want)
    })
  }
})

describe('checkPrerequisites', () => {
  for (const [backend, tools] of [
    ['iptables', ['ip', 'iptables', 'ipset', 'conntrack']],
    ['nftables', ['ip', 'nft', 'conntrack']],
  ] as const) {
    it(`checks the tools the ${backend} backend drives, then forwarding`, async () => {
      const runner = new RecordingRunner((call) => (call.command === 'sysctl' ? {stdout: '1\n'} : {stdout: `${call.command} v1\n`}))
      await checkPrerequisites(runner, createBackend(backend, runner))
      expect(runner.calls.map((c) => c.command)).to.deep.equal([...tools, 'sysctl'])
    })
  }

  it('names a missing tool and how to install it', async () => {
    const runner = new RecordingRunner((call) => (call.command === 'nft' ? new CommandError('nft', [], undefined, 'spawn nft ENOENT') : {stdout: '1'}))
    const error = await checkPrerequisites(runner, createBackend('nftables', runner)).catch((e: Error) => e)
    expect((error as Error).message).to.equal('missing tool: nft; on Debian/Ubuntu install with `apt-get install nftables`')
  })
})

describe('syncOnce and the state applied last', () => {
  /** A backend whose state is a label; it records the options of every apply. */
  function recordingBackend(): {backend: Backend; applied: {desired: unknown; options: ApplyOptions | undefined}[]} {
    const applied: {desired: unknown; options: ApplyOptions | undefined}[] = []
    const backend = inertBackend({
      name: 'iptables',
      render: (model) => `state of ${model.mappings.length} mappings`,
      apply: async (desired, options) => {
        applied.push({desired, options})
        return NOTHING_CHANGED
      },
      read: async () => 'read',
    })
    return {backend, applied}
  }

  const runner = new RecordingRunner((call) => (call.command === 'ip' ? {stdout: '[]'} : {stdout: '2\n'}))
  const settings = {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth/}
  const load = async () => ({mappings: [], services: [], endpointSlices: []})

  it('hands the trusted state to the backend and reports the state it applied', async () => {
    const {backend, applied} = recordingBackend()
    const report = await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, assumeActual: 'applied before'})
    expect(applied).to.deep.equal([{desired: 'state of 0 mappings', options: {full: false, assumeActual: 'applied before'}}])
    expect(report.kernelState).to.equal('state of 0 mappings')
  })

  it('asks the backend to read the kernel when it has nothing to trust', async () => {
    const {backend, applied} = recordingBackend()
    await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, full: true})
    expect(applied.map((a) => Object.keys(a.options ?? {}))).to.deep.equal([['full', 'kernelRead']])
    expect(applied[0]!.options!.full).to.equal(true)
    // Started before the plan, so the kernel is read while the plan is made.
    expect(await applied[0]!.options!.kernelRead).to.equal('read')
  })

  it('calls afterRead once the kernel is read, before the apply compares it, in a pass that reads and only there', async () => {
    const calls: string[] = []
    const backend = inertBackend({
      name: 'iptables',
      render: () => 'desired',
      read: async () => {
        calls.push('read')
        return 'read'
      },
      apply: async () => {
        calls.push('apply')
        return NOTHING_CHANGED
      },
    })
    const afterRead = () => calls.push('after read')
    await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, afterRead})
    await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, assumeActual: 'applied before', afterRead})
    await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, full: true, assumeActual: 'applied before', afterRead})
    expect(calls).to.deep.equal(['read', 'after read', 'apply', 'apply', 'read', 'after read', 'apply'])
  })

  /** A backend that records, in `calls`, when it renders and reads, and what each apply was handed as the kernel read. */
  function orderRecording(calls: string[]): Backend {
    return inertBackend({
      name: 'iptables',
      render: () => {
        calls.push('render')
        return 'desired'
      },
      read: async () => {
        calls.push('read')
        return 'read'
      },
      apply: async (_desired, options) => {
        calls.push(`apply, ${String(await options?.kernelRead)}`)
        return NOTHING_CHANGED
      },
    })
  }

  it('reads the kernel while it plans, or once it has rendered when told to, and only in a pass that reads', async () => {
    const calls: string[] = []
    const backend = orderRecording(calls)
    await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false})
    await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, readAfterRender: true})
    await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, readAfterRender: true, assumeActual: 'applied before'})
    expect(calls).to.deep.equal(['read', 'render', 'apply, read', 'render', 'read', 'apply, read', 'render', 'apply, undefined'])
  })

  it("reads a daemon's kernel once its first pass has rendered, and while planning after that", async () => {
    const calls: string[] = []
    const pass = syncPass({runner, backend: orderRecording(calls)}, settings)
    await pass(load, {full: false})
    await pass(load, {full: false})
    expect(calls).to.deep.equal(['render', 'read', 'apply, read', 'read', 'render', 'apply, read'])
  })

  it('does not call afterRead when the read failed, and the apply still reports the failure', async () => {
    let called = 0
    const backend = inertBackend({
      name: 'iptables',
      render: () => 'desired',
      read: () => Promise.reject(new Error('iptables-save failed')),
      apply: async (_desired, options) => {
        await options?.kernelRead
        return NOTHING_CHANGED
      },
    })
    const failed = await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, afterRead: () => called++}).catch((error: Error) => error)
    expect(failed).to.be.an('error').with.property('message', 'iptables-save failed')
    expect(called).to.equal(0)
  })

  it('tells the Mappings it programmed that they are not served when forwarded traffic is dropped, and only those', async () => {
    const {backend} = recordingBackend()
    const drop = {chain: 'iptables FORWARD', reason: "iptables' FORWARD chain drops by default (policy DROP)", fix: 'accept there'}
    const dropping = {...backend, forward: async ({fix}: {fix: boolean}) => ({written: fix ? 0 : -1, drops: [drop]})}
    const links = JSON.stringify([{ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.10', prefixlen: 24}]}])
    const onEth1 = new RecordingRunner((call) => (call.command === 'ip' ? {stdout: links} : {stdout: '2\n2\n'}))
    const snapshot = {
      mappings: [
        {metadata: {namespace: 'default', name: 'here'}, spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]}},
        {metadata: {namespace: 'default', name: 'elsewhere'}, spec: {addresses: ['198.18.9.9'], serviceName: 'web', ports: [{port: 81}]}},
      ],
      services: [{metadata: {namespace: 'default', name: 'web'}, spec: {clusterIP: '198.19.100.10', ports: [{port: 80}, {port: 81}]}}],
      endpointSlices: [],
    }
    const report = await syncOnce({runner: onEth1, backend: dropping}, async () => snapshot, settings, {checkPrerequisites: false})
    expect(report.forward).to.deep.equal({written: 0, drops: [drop]})
    expect(report.plan.verdicts.map((v) => [v.name, v.faults])).to.deep.equal([
      ['elsewhere', undefined],
      ['here', {'198.18.0.10': "forwarded traffic is dropped: iptables' FORWARD chain drops by default (policy DROP)"}],
    ])
    // Still programmed: the fault is in how the host forwards, not in the rules.
    expect(report.plan.verdicts[1]!.configuredAddresses).to.have.keys('198.18.0.10')
  })

  it('counts the rules written to let forwarded traffic through as writes of the pass', async () => {
    const {backend} = recordingBackend()
    const accepting = {...backend, forward: async () => ({written: 1, drops: []})}
    const report = await syncOnce({runner, backend: accepting}, load, settings, {checkPrerequisites: false})
    expect(report.applied).to.deep.include({changed: true, written: {sets: 0, chains: 0, rules: 1, routes: 0}})
  })

  it('leaves a failed read ahead to the apply that awaits it, not to the unhandled-rejection handler', async () => {
    const {backend} = recordingBackend()
    const failing = {...backend, read: () => Promise.reject(new Error('iptables-save failed'))}
    const unhandled: unknown[] = []
    const record = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', record)
    try {
      const read = readAhead(failing)
      // Node reports a rejection nobody handles once the microtasks of the tick that rejected it have
      // run, before the next turn of the event loop: by setImmediate it would have been reported.
      await new Promise((resolve) => setImmediate(resolve))
      expect(unhandled).to.deep.equal([])
      let error: unknown
      await read.catch((e: unknown) => (error = e))
      expect(error).to.be.an('error').with.property('message', 'iptables-save failed')
    } finally {
      process.off('unhandledRejection', record)
    }
  })
})
