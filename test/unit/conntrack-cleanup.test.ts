import {expect} from 'chai'

import type {ApplyResult, Backend} from '../../src/lib/backend/backend.js'
import {UNINSPECTED} from '../support/uninspected.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'
import {MAPPING_API_VERSION, type MappingResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type MappingVerdict, type Plan} from '../../src/lib/plan/model.js'
import {dropVanishedFlows, type PendingCleanup} from '../../src/lib/sync/conntrack-cleanup.js'
import {syncOnce} from '../../src/lib/sync/once.js'

const EXT = '198.18.0.10' as Ipv4
const POD_STAYS = '198.19.200.11' as Ipv4
const POD_GONE = '198.19.200.12' as Ipv4
const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: EXT, prefixLength: 24}]}]}
const line = (call: RecordedCall) => [call.command, ...call.args].join(' ')
const conntrackCalls = (runner: RecordingRunner) => runner.calls.filter((c) => c.command === 'conntrack').map(line)
const FAILED = 'conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted'

function mapping(podIPs: string[]): MappingResource {
  return {
    apiVersion: MAPPING_API_VERSION,
    kind: 'Mapping',
    metadata: {name: 'web', namespace: 'default'},
    spec: {addresses: [EXT], serviceName: 'web', ports: [{port: 80, protocol: 'tcp'}]},
    status: {configuredAddresses: {[EXT]: {podIPs}}},
  } as MappingResource
}

/** The plan of a pass in which `web` on EXT tcp/80 goes to VIP .10 and is served by `podIPs`. */
function planWith(podIPs: string[]): Plan {
  const verdict: MappingVerdict = {namespace: 'default', name: 'web', valid: true, invalid: 'no', configuredAddresses: {[EXT]: {podIPs: podIPs as Ipv4[]}}, notLocalAddresses: []}
  return {
    model: {
      mappings: [
        {
          namespace: 'default',
          name: 'web',
          addresses: [{address: EXT, interface: 'eth1'}],
          serviceVIP: '198.19.100.10' as Ipv4,
          allowedSources: [],
          podIPs: podIPs as Ipv4[],
          endpoints: [{address: EXT, protocol: 'tcp', port: 80, targetIP: '198.19.100.10' as Ipv4, targetPort: 80}],
        },
      ],
      interfaces: [],
      egress: [],
      masquerade: true,
    },
    verdicts: [verdict],
    interfaceFaults: [],
  }
}

const written = {sets: 0, chains: 1, rules: 1, routes: 0}
/** An apply that moved EXT tcp/80 away from VIP .9. */
const moved: ApplyResult = {changed: true, written, changedEndpoints: [{address: EXT, protocol: 'tcp', port: 80, oldTarget: '198.19.100.9:80'}]}
const unchanged: ApplyResult = {changed: false, written: {sets: 0, chains: 0, rules: 0, routes: 0}, changedEndpoints: []}
const snapshotOf = (m: MappingResource) => ({mappings: [m], services: [], endpointSlices: []})

/** conntrack that lists nothing and deletes nothing. */
const emptyConntrack = () => new RecordingRunner(() => ({stdout: ''}))

describe('conntrack cleanup after an apply', () => {
  it('reports a failing conntrack instead of throwing, with everything it could not do', async () => {
    const runner = new RecordingRunner(() => ({exitCode: 2, stderr: FAILED}))
    const outcome = await dropVanishedFlows(runner, moved, snapshotOf(mapping([POD_STAYS, POD_GONE])), planWith([POD_STAYS]), host)
    expect(outcome).to.deep.equal({
      deleted: 0,
      error: `conntrack -L --orig-dst ${EXT} exited with 2: ${FAILED}; conntrack -L --reply-src ${POD_GONE} exited with 2: ${FAILED}`,
      pending: {changedEndpoints: moved.changedEndpoints, vanishedPods: [POD_GONE]},
      listed: [],
    })
  })

  it('keeps only the half that failed pending', async () => {
    const runner = new RecordingRunner((call) => (call.args.includes('--reply-src') ? {exitCode: 2, stderr: FAILED} : {stdout: ''}))
    const outcome = await dropVanishedFlows(runner, moved, snapshotOf(mapping([POD_STAYS, POD_GONE])), planWith([POD_STAYS]), host)
    expect(outcome.pending).to.deep.equal({changedEndpoints: [], vanishedPods: [POD_GONE]})
  })

  it('retries what a failed cleanup left although this pass sees no rule change and no pod leave', async () => {
    const runner = emptyConntrack()
    const pending: PendingCleanup = {changedEndpoints: moved.changedEndpoints, vanishedPods: [POD_GONE]}
    // By now the status lists only the pod that stays, and the kernel already holds the new rule.
    const outcome = await dropVanishedFlows(runner, unchanged, snapshotOf(mapping([POD_STAYS])), planWith([POD_STAYS]), host, pending)
    expect(outcome).to.deep.equal({deleted: 0, listed: []})
    expect(conntrackCalls(runner)).to.deep.equal([`conntrack -L --orig-dst ${EXT}`, `conntrack -L --reply-src ${POD_GONE}`])
  })

  it('forgets a remembered pod that serves again, and a former target retried twice is kept once', async () => {
    const runner = new RecordingRunner(() => ({exitCode: 2, stderr: FAILED}))
    const pending: PendingCleanup = {changedEndpoints: moved.changedEndpoints, vanishedPods: [POD_GONE]}
    const outcome = await dropVanishedFlows(runner, moved, snapshotOf(mapping([POD_STAYS, POD_GONE])), planWith([POD_STAYS, POD_GONE]), host, pending)
    expect(outcome.pending).to.deep.equal({changedEndpoints: moved.changedEndpoints, vanishedPods: []})
  })

  it('runs nothing when no rule changed and no pod left', async () => {
    const runner = emptyConntrack()
    expect(await dropVanishedFlows(runner, unchanged, snapshotOf(mapping([POD_STAYS])), planWith([POD_STAYS]), host)).to.deep.equal({deleted: 0, listed: []})
    expect(runner.calls).to.deep.equal([])
  })
})

describe('syncOnce with a failing conntrack', () => {
  /** A backend whose every apply moves EXT tcp/80, so that every pass has connections to drop. */
  const backend: Backend = {
    name: 'iptables',
    tools: [],
    render: () => 'state',
    apply: async () => moved,
    read: async () => 'state',
    flush: async () => ({dryRun: true, changed: false, removed: {jumps: [], chains: [], sets: [], ipRules: [], routes: []}}),
    payloads: () => [],
    ruleCount: () => 1,
    programmedMappings: () => new Set(),
    forward: async () => ({written: 0, drops: []}),
    inspect: UNINSPECTED,
  }
  const IP_ADDR = JSON.stringify([{ifindex: 2, ifname: 'eth1', addr_info: [{family: 'inet', local: EXT, prefixlen: 24}]}])
  /** The host of `host`, and a conntrack that fails while `conntrackFails` says so. */
  function hostRunner(conntrackFails: () => boolean): RecordingRunner {
    return new RecordingRunner((call) => {
      if (call.command === 'ip') return {stdout: IP_ADDR}
      if (call.command === 'sysctl') return {stdout: '2\n2\n'}
      return conntrackFails() ? {exitCode: 2, stderr: FAILED} : {stdout: ''}
    })
  }
  const settings = {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth/}
  const load = async () => snapshotOf(mapping([]))

  it('completes the pass, reports the failure and what to retry, and the next pass retries it', async () => {
    let fails = true
    const runner = hostRunner(() => fails)
    const first = await syncOnce({runner, backend}, load, settings, {checkPrerequisites: false})
    expect(first.applied).to.equal(moved)
    expect(first.conntrackError).to.include('Operation not permitted')
    expect(first.pendingCleanup).to.deep.equal({changedEndpoints: moved.changedEndpoints, vanishedPods: []})

    fails = false
    runner.calls.length = 0
    const second = await syncOnce({runner, backend: {...backend, apply: async () => unchanged}}, load, settings, {
      checkPrerequisites: false,
      retryCleanup: first.pendingCleanup!,
    })
    expect(second.conntrackError).to.equal(undefined)
    expect(second.pendingCleanup).to.equal(undefined)
    expect(conntrackCalls(runner)).to.deep.equal([`conntrack -L --orig-dst ${EXT}`])
  })
})
