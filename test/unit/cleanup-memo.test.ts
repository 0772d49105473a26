import {expect} from 'chai'
import fc from 'fast-check'
import type {ApplyResult, ChangedEndpoint} from '../../src/lib/backend/backend.js'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL, type EndpointSliceResource, type MappingResource, type ServiceResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {PlanMemo} from '../../src/lib/plan/memo.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {CleanupMemo} from '../../src/lib/sync/cleanup-memo.js'
import {dropVanishedFlows} from '../../src/lib/sync/conntrack-cleanup.js'
import {NOTHING_CHANGED} from '../support/inert-backend.js'
import {RecordingRunner} from '../support/recording-runner.js'

const ADDRESSES = ['198.18.0.10', '198.18.0.11']
const PODS = ['198.19.200.11', '198.19.200.12', '198.19.200.13']
const SLOTS = 4
const host: HostInfo = {interfaces: [{name: 'eth1', addresses: ADDRESSES.map((address) => ({address: address as Ipv4, prefixLength: 24}))}]}

const slotArb = fc.record({
  mode: fc.constantFrom('service', 'direct'),
  address: fc.constantFrom(...ADDRESSES),
  port: fc.constantFrom(80, 81),
  statusPods: fc.subarray(PODS),
  pods: fc.subarray(PODS),
})
type Slot = typeof slotArb extends fc.Arbitrary<infer T> ? T : never
const changedArb = fc.array(fc.record({address: fc.constantFrom(...ADDRESSES), port: fc.constantFrom(80, 81), old: fc.constantFrom(...PODS, '198.19.100.1')}), {maxLength: 3})
const stepArb = fc.record({slots: fc.array(fc.tuple(fc.nat(SLOTS - 1), fc.option(slotArb, {nil: undefined})), {minLength: 1, maxLength: 2}), changed: changedArb})

/** Mapping m<i> in its own namespace-wide Service s<i>, its status naming `statusPods` on its address. */
function objectsOf(i: number, slot: Slot): {mapping: MappingResource; service: ServiceResource; slice: EndpointSliceResource} {
  const ports = [{name: 'p', port: 8080, protocol: 'TCP'}]
  return {
    mapping: {
      apiVersion: MAPPING_API_VERSION,
      kind: 'Mapping',
      metadata: {namespace: 'default', name: `m${i}`, creationTimestamp: '2025-01-01T00:00:00Z'},
      spec: {addresses: [slot.address], serviceName: `s${i}`, mode: slot.mode, ports: [{port: slot.port, servicePort: 80}]},
      status: {configuredAddresses: {[slot.address]: {podIPs: slot.statusPods}}},
    },
    service: {apiVersion: 'v1', kind: 'Service', metadata: {namespace: 'default', name: `s${i}`}, spec: {clusterIP: `198.19.100.${i + 1}`, ports: [{name: 'p', port: 80, targetPort: 8080}]}},
    slice: {
      metadata: {namespace: 'default', name: `s${i}-1`, labels: {[SERVICE_NAME_LABEL]: `s${i}`}},
      addressType: 'IPv4',
      ports,
      endpoints: slot.pods.map((ip) => ({addresses: [ip], conditions: {ready: true}})),
    },
  }
}

/** conntrack listing, for any filter, a connection to each address and port answered by each pod, and deleting one entry per deletion. */
function conntrack(): RecordingRunner {
  const entries = ADDRESSES.flatMap((address) =>
    [80, 81].flatMap((port) => PODS.map((pod, k) => `tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=${address} sport=${40000 + k} dport=${port} src=${pod} dst=198.18.4.1 sport=8080 dport=${40000 + k} [ASSURED] mark=1048576 use=1`)),
  )
  return new RecordingRunner((call) => (call.args[0] === '-L' ? {stdout: entries.map((e) => `${e}\n`).join('')} : {stderr: '1 flow entries have been deleted.\n'}))
}

describe('conntrack cleanup with a daemon\'s CleanupMemo', () => {
  it('runs the same conntrack commands and reports the same as without it, over random sequences of passes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, {minLength: 1, maxLength: 8}), async (steps) => {
        const memo = new CleanupMemo()
        const planMemo = new PlanMemo()
        const objects = new Map<number, ReturnType<typeof objectsOf>>()
        let listedBefore: Ipv4[] | undefined
        for (const step of steps) {
          // Slots not changed keep their objects, so the kept plan hands over the same NatMappings.
          for (const [i, slot] of step.slots) {
            if (slot) objects.set(i, objectsOf(i, slot))
            else objects.delete(i)
          }
          const present = [...objects.keys()].sort().map((i) => objects.get(i)!)
          const snapshot: Snapshot = {mappings: present.map((o) => o.mapping), services: present.map((o) => o.service), endpointSlices: present.map((o) => o.slice)}
          const planned = planMemo.plan(snapshot, host, DEFAULT_PLAN_OPTIONS)
          const changedEndpoints: ChangedEndpoint[] = step.changed.map((c) => ({address: c.address, protocol: 'tcp', port: c.port, oldTarget: `${c.old}:8080`}))
          const applied: ApplyResult = {...NOTHING_CHANGED, changed: changedEndpoints.length > 0, changedEndpoints}
          const [withMemo, without] = [conntrack(), conntrack()]
          const kept = await dropVanishedFlows(withMemo, applied, snapshot, planned, host, undefined, listedBefore, memo)
          const whole = await dropVanishedFlows(without, applied, snapshot, planned, host, undefined, listedBefore)
          expect(kept).to.deep.equal(whole)
          expect(withMemo.calls).to.deep.equal(without.calls)
          listedBefore = whole.listed
        }
      }),
      {numRuns: 200},
    )
  })
})
