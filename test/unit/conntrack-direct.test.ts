import {expect} from 'chai'

import type {ApplyResult} from '../../src/lib/backend/backend.js'
import {inertBackend, NOTHING_CHANGED} from '../support/inert-backend.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL, type EndpointSliceResource, type MappingResource, type ServiceResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {dropVanishedFlows} from '../../src/lib/sync/conntrack-cleanup.js'
import {syncPass} from '../../src/lib/sync/watch.js'

const EXT = '198.18.0.10'
const VIP = '198.19.100.10'
const POD_A = '198.19.200.11'
const POD_B = '198.19.200.12'
const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: EXT as Ipv4, prefixLength: 24}]}]}
/** eth1's interface bits (index 1) under the admitted mask (interface bits and the egress bit). */
const ETH1_MARK = '--mark 0x100000/0xff40000'
const line = (call: RecordedCall) => [call.command, ...call.args].join(' ')
const conntrackCalls = (runner: RecordingRunner) => runner.calls.filter((c) => c.command === 'conntrack').map(line)

/** default/web in `mode`, EXT tcp/80 -> Service port 80; its status lists `statusPods` as configured on EXT. */
function mapping(mode: 'service' | 'direct', statusPods: string[]): MappingResource {
  return {
    apiVersion: MAPPING_API_VERSION,
    kind: 'Mapping',
    metadata: {name: 'web', namespace: 'default'},
    spec: {addresses: [EXT], serviceName: 'web', mode, ports: [{port: 80}]},
    status: {configuredAddresses: {[EXT]: {podIPs: statusPods}}},
  }
}

const service: ServiceResource = {apiVersion: 'v1', kind: 'Service', metadata: {namespace: 'default', name: 'web'}, spec: {clusterIP: VIP, ports: [{port: 80}]}}

function slice(endpoints: {ip: string; ready: boolean}[]): EndpointSliceResource {
  return {
    metadata: {namespace: 'default', name: 'web-1', labels: {[SERVICE_NAME_LABEL]: 'web'}},
    addressType: 'IPv4',
    ports: [{port: 8080}],
    endpoints: endpoints.map(({ip, ready}) => ({addresses: [ip], conditions: {ready}})),
  }
}

/** A pass of `mode` over these slices and status: its snapshot and plan. */
function pass(mode: 'service' | 'direct', statusPods: string[], endpoints: {ip: string; ready: boolean}[]) {
  const snapshot: Snapshot = {mappings: [mapping(mode, statusPods)], services: [service], endpointSlices: [slice(endpoints)]}
  return {snapshot, planned: plan(snapshot, host, DEFAULT_PLAN_OPTIONS)}
}

/** A conntrack entry of a client's connection to EXT:80 that `replySrc:replyPort` answers, admitted on eth1. */
function entry(replySrc: string, replyPort: number, clientPort = 40001): string {
  return `tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=${EXT} sport=${clientPort} dport=80 src=${replySrc} dst=198.18.4.1 sport=${replyPort} dport=${clientPort} [ASSURED] mark=1048576 use=1`
}

/** conntrack that lists `entries` for any listing and deletes one entry per deletion. */
function conntrack(...entries: string[]): RecordingRunner {
  return new RecordingRunner((call) => {
    if (call.args[0] === '-L') return {stdout: entries.map((e) => `${e}\n`).join('')}
    return {stderr: 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n'}
  })
}

describe('conntrack cleanup in mode direct', () => {
  const bothReady = [
    {ip: POD_A, ready: true},
    {ip: POD_B, ready: true},
  ]
  const bNotReady = [
    {ip: POD_A, ready: true},
    {ip: POD_B, ready: false},
  ]

  describe('in a daemon, against what the previous pass listed', () => {
    it('keeps the connections of a pod that turned not ready but is still listed', async () => {
      // The status still lists B from when it was ready: in mode service that alone made it a pod that left.
      const {snapshot, planned} = pass('direct', [POD_A, POD_B], bNotReady)
      const runner = conntrack(entry(POD_B, 8080))
      const outcome = await dropVanishedFlows(runner, NOTHING_CHANGED, snapshot, planned, host, undefined, [POD_A, POD_B] as Ipv4[])
      expect(outcome).to.deep.equal({deleted: 0, listed: [POD_A, POD_B]})
      expect(conntrackCalls(runner)).to.deep.equal([])
    })

    it('cuts the connections of a pod deleted after it had turned not ready (no status lists it any more)', async () => {
      const {snapshot, planned} = pass('direct', [POD_A], [{ip: POD_A, ready: true}])
      const runner = conntrack(entry(POD_B, 8080))
      const outcome = await dropVanishedFlows(runner, NOTHING_CHANGED, snapshot, planned, host, undefined, [POD_A, POD_B] as Ipv4[])
      expect(outcome).to.deep.equal({deleted: 1, listed: [POD_A]})
      expect(conntrackCalls(runner)).to.deep.equal([`conntrack -L --reply-src ${POD_B}`, `conntrack -D -p tcp --orig-dst ${EXT} --orig-port-dst 80 --reply-src ${POD_B}`])
    })

    it('runs no conntrack at all when no pod left', async () => {
      const {snapshot, planned} = pass('direct', [POD_A, POD_B], bothReady)
      const runner = conntrack(entry(POD_A, 8080))
      expect(await dropVanishedFlows(runner, NOTHING_CHANGED, snapshot, planned, host, undefined, [POD_A, POD_B] as Ipv4[])).to.deep.equal({
        deleted: 0,
        listed: [POD_A, POD_B],
      })
      expect(runner.calls).to.deep.equal([])
    })
  })

  describe('in a sync that remembers nothing (cron, or a daemon’s first pass)', () => {
    it('looks through the connections admitted on the Mapping’s interface and cuts only those of pods no slice lists', async () => {
      const {snapshot, planned} = pass('direct', [POD_A], bNotReady)
      const POD_GONE = '198.19.200.13'
      const runner = conntrack(entry(POD_A, 8080, 40001), entry(POD_B, 8080, 40002), entry(POD_GONE, 8080, 40003), entry(VIP, 80, 40004))
      const outcome = await dropVanishedFlows(runner, NOTHING_CHANGED, snapshot, planned, host)
      expect(outcome).to.deep.equal({deleted: 1, listed: [POD_A, POD_B]})
      expect(conntrackCalls(runner)).to.deep.equal([
        `conntrack -L ${ETH1_MARK}`,
        `conntrack -D -p tcp --orig-dst ${EXT} --orig-port-dst 80 --reply-src ${POD_GONE} ${ETH1_MARK}`,
      ])
    })

    it('says nothing is remembered when it could not look, so the next pass looks again', async () => {
      const {snapshot, planned} = pass('direct', [POD_A], bothReady)
      const runner = new RecordingRunner(() => ({exitCode: 2, stderr: 'Operation not permitted'}))
      const outcome = await dropVanishedFlows(runner, NOTHING_CHANGED, snapshot, planned, host)
      expect(outcome.listed).to.equal(undefined)
      expect(outcome.error).to.equal(`conntrack -L ${ETH1_MARK} exited with 2: Operation not permitted`)
    })

    it('does not look when no Mapping is in mode direct', async () => {
      const {snapshot, planned} = pass('service', [POD_A, POD_B], bothReady)
      const runner = conntrack(entry(POD_B, 8080))
      expect(await dropVanishedFlows(runner, NOTHING_CHANGED, snapshot, planned, host)).to.deep.equal({deleted: 0, listed: []})
      expect(runner.calls).to.deep.equal([])
    })
  })

  describe('a Mapping moved from mode service to mode direct', () => {
    const migrated: ApplyResult = {changed: true, written: {sets: 0, chains: 2, rules: 3, routes: 0}, changedEndpoints: [{address: EXT, protocol: 'tcp', port: 80, oldTarget: `${VIP}:80`}]}

    it('keeps the connections made through the ClusterIP of the same Service', async () => {
      const {snapshot, planned} = pass('direct', [POD_A, POD_B], bothReady)
      const runner = conntrack(entry(VIP, 80, 40001), entry(POD_A, 8080, 40002))
      const outcome = await dropVanishedFlows(runner, migrated, snapshot, planned, host, undefined, [POD_A, POD_B] as Ipv4[])
      expect(outcome).to.deep.equal({deleted: 0, listed: [POD_A, POD_B]})
      expect(conntrackCalls(runner)).to.deep.equal([])
    })

    it('keeps them in a sync that remembers nothing too', async () => {
      const {snapshot, planned} = pass('direct', [POD_A, POD_B], bothReady)
      const runner = conntrack(entry(VIP, 80, 40001), entry(POD_A, 8080, 40002))
      expect(await dropVanishedFlows(runner, migrated, snapshot, planned, host)).to.deep.equal({deleted: 0, listed: [POD_A, POD_B]})
      expect(conntrackCalls(runner)).to.deep.equal([`conntrack -L ${ETH1_MARK}`])
    })

    it('keeps them when a backend reports a member that left the group as a former target, while the Service lists it', async () => {
      const {snapshot, planned} = pass('direct', [POD_A, POD_B], bNotReady)
      const runner = conntrack(entry(POD_B, 8080))
      const memberLeft: ApplyResult = {...migrated, changedEndpoints: [{address: EXT, protocol: 'tcp', port: 80, oldTarget: `${POD_B}:8080`}]}
      expect(await dropVanishedFlows(runner, memberLeft, snapshot, planned, host, undefined, [POD_A, POD_B] as Ipv4[])).to.deep.equal({deleted: 0, listed: [POD_A, POD_B]})
      expect(conntrackCalls(runner)).to.deep.equal([])
    })

    it('cuts those to another Service’s ClusterIP, and leaves the new direct connections alone', async () => {
      const {snapshot, planned} = pass('direct', [POD_A, POD_B], bothReady)
      const OTHER_VIP = '198.19.100.99'
      const runner = conntrack(entry(OTHER_VIP, 80, 40001), entry(POD_A, 8080, 40002))
      const moved: ApplyResult = {...migrated, changedEndpoints: [{address: EXT, protocol: 'tcp', port: 80, oldTarget: `${OTHER_VIP}:80`}]}
      const outcome = await dropVanishedFlows(runner, moved, snapshot, planned, host, undefined, [POD_A, POD_B] as Ipv4[])
      expect(outcome).to.deep.equal({deleted: 1, listed: [POD_A, POD_B]})
      expect(conntrackCalls(runner)).to.deep.equal([
        `conntrack -L --orig-dst ${EXT}`,
        `conntrack -D -p tcp --orig-dst ${EXT} --orig-port-dst 80 --reply-src ${OTHER_VIP} --reply-port-src 80`,
      ])
    })
  })
})

describe('the daemon’s passes in mode direct', () => {
  const backend = inertBackend({ruleCount: () => 1})
  const IP_ADDR = JSON.stringify([{ifindex: 2, ifname: 'eth1', addr_info: [{family: 'inet', local: EXT, prefixlen: 24}]}])

  it('look through the kernel’s connections on the first pass only, then compare with what the last pass listed', async () => {
    const runner = new RecordingRunner((call) => {
      if (call.command === 'ip') return {stdout: IP_ADDR}
      if (call.command === 'sysctl') return {stdout: '2\n2\n'}
      return {stdout: ''}
    })
    const daemonPass = syncPass({runner, backend}, {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth1$/})
    const perPass: string[][] = []
    for (const endpoints of [
      [{ip: POD_A, ready: true}, {ip: POD_B, ready: false}],
      [{ip: POD_A, ready: true}, {ip: POD_B, ready: false}],
      [{ip: POD_A, ready: true}],
    ]) {
      runner.calls.length = 0
      const {snapshot} = pass('direct', [POD_A], endpoints)
      await daemonPass(async () => snapshot, {full: false})
      perPass.push(conntrackCalls(runner))
    }
    expect(perPass).to.deep.equal([[`conntrack -L ${ETH1_MARK}`], [], [`conntrack -L --reply-src ${POD_B}`]])
  })
})
