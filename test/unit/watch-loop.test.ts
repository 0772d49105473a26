import {expect} from 'chai'
import {ApplyError} from '../../src/lib/backend/result.js'
import {createLogger} from '../../src/lib/observe/log.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {SmartnatMetrics} from '../../src/lib/observe/metrics.js'
import type {MappingVerdict, Snapshot} from '../../src/lib/plan/model.js'
import type {SnapshotSource, SourceHealth} from '../../src/lib/source/source.js'
import type {Clock} from '../../src/lib/sync/debounce.js'
import {DEFAULT_REMOVAL_POLICY, isMassRemoval, MassRemovalError, measureRemoval} from '../../src/lib/sync/guard.js'
import type {PendingCleanup} from '../../src/lib/sync/conntrack-cleanup.js'
import type {SyncReport} from '../../src/lib/sync/once.js'
import {MAX_READ_GIVE_WAYS, syncPass, WatchLoop, type WatchLoopOptions} from '../../src/lib/sync/watch.js'
import type {ApplyOptions} from '../../src/lib/backend/backend.js'
import {DEFAULT_PLAN_OPTIONS} from '../../src/lib/plan/model.js'
import {inertBackend, NOTHING_CHANGED} from '../support/inert-backend.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {STOP_GRACE_MS} from '../../src/lib/sync/writeback.js'

const T0 = 1_700_000_000_000

/** Timers on a clock that moves only when the test says so. */
class FakeClock implements Clock {
  time = T0
  /** While set, timers are accepted and never fire, as if the loop had lost them. */
  losesTimers = false
  private timers: {at: number; seq: number; callback: () => void}[] = []
  private seq = 0

  now(): number {
    return this.time
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer = {at: this.time + ms, seq: this.seq++, callback}
    if (!this.losesTimers) this.timers.push(timer)
    return timer
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle)
  }

  /** Moves time forward, firing due timers in order and letting the promises they start settle. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms
    await settle()
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0]
      if (!due) break
      this.timers = this.timers.filter((t) => t !== due)
      this.time = Math.max(this.time, due.at)
      due.callback()
      await settle()
    }
    this.time = end
    await settle()
  }

  pending(): number {
    return this.timers.length
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
}

class FakeSource implements SnapshotSource {
  synced = true
  lastError: string | undefined
  started = false
  stopped = false
  current: Snapshot = {mappings: [], services: [], endpointSlices: []}
  private listeners = new Set<() => void>()

  async start(): Promise<void> {
    this.started = true
  }

  async stop(): Promise<void> {
    this.stopped = true
  }

  snapshot(): Snapshot {
    return this.current
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  health(): SourceHealth {
    return {synced: this.synced, ...(this.lastError ? {lastError: this.lastError} : {})}
  }

  private changes = 0
  private changedMapping: object | undefined

  /** A Mapping changed: the source holds a new object for it (sources replace objects, never edit them), and says so. */
  change(): void {
    const mapping = {metadata: {namespace: 'default', name: 'changing', generation: ++this.changes}}
    this.current = {...this.current, mappings: [...this.current.mappings.filter((m) => m !== this.changedMapping), mapping]}
    this.changedMapping = mapping
    this.notify()
  }

  /** Tells the listeners that something changed, whatever the snapshot holds. */
  notify(): void {
    for (const listener of this.listeners) listener()
  }
}

/** A host whose addresses change when the test says so. */
class FakeHostChanges {
  private listeners = new Set<() => void>()

  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  change(): void {
    for (const listener of this.listeners) listener()
  }
}

const verdict = (name: string, valid: boolean, configured: string[]): MappingVerdict => ({
  namespace: 'default',
  name,
  valid,
  invalid: valid ? 'no' : 'bad',
  configuredAddresses: Object.fromEntries(configured.map((a) => [a, {podIPs: []}])),
  notLocalAddresses: [],
})

function report(verdicts: MappingVerdict[] = [], rulesProgrammed = 7): SyncReport {
  return {
    snapshot: {mappings: [], services: [], endpointSlices: []},
    plan: {model: {mappings: [], interfaces: [], egress: [], masquerade: true}, verdicts, interfaceFaults: []},
    host: {interfaces: []},
    applied: {changed: true, written: {sets: 1, chains: 2, rules: 3, routes: 4}, changedEndpoints: []},
    forward: {written: 0, drops: []},
    rpFilter: [],
    conntrackDeleted: 0,
    rulesProgrammed,
  }
}

interface Call {
  at: number
  full: boolean
  snapshot: Snapshot
  assumeActual?: unknown
  retryCleanup?: PendingCleanup
}

/** A sync pass whose duration and outcome each test decides; it records every call and the most ever running at once. */
class ScriptedSync {
  readonly calls: Call[] = []
  inFlight = 0
  maxInFlight = 0
  /** A call that never returns was made. */
  hung = false
  durationMs = 0
  /** Outcomes for the next calls, in order ('hang': the call never returns); after they run out every call succeeds. */
  outcomes: (Error | SyncReport | 'hang')[] = []

  constructor(private readonly clock: FakeClock) {}

  readonly pass = async (load: () => Promise<Snapshot>, options: {full: boolean; assumeActual?: unknown; retryCleanup?: PendingCleanup}): Promise<SyncReport> => {
    this.inFlight++
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    try {
      const call: Call = {at: this.clock.now(), full: options.full, snapshot: await load()}
      if ('assumeActual' in options) call.assumeActual = options.assumeActual
      if (options.retryCleanup) call.retryCleanup = options.retryCleanup
      this.calls.push(call)
      if (this.durationMs > 0) await new Promise<void>((resolve) => this.clock.setTimeout(resolve, this.durationMs))
      // Unless a test scripts it, each pass applies a state of its own, named after the pass.
      const outcome = this.outcomes.shift() ?? {...report([], 7), kernelState: `applied by pass ${this.calls.length}`}
      if (outcome === 'hang') {
        this.hung = true
        return await new Promise<never>(() => {})
      }
      if (outcome instanceof Error) throw outcome
      return outcome
    } finally {
      this.inFlight--
    }
  }

  startTimes(): number[] {
    return this.calls.map((c) => c.at - T0)
  }

  /** Start times of the passes that read the kernel (were given no state to trust). */
  readTimes(): number[] {
    return this.calls.filter((c) => c.assumeActual === undefined).map((c) => c.at - T0)
  }
}

describe('watch loop', () => {
  let clock: FakeClock
  let source: FakeSource
  let sync: ScriptedSync
  let loop: WatchLoop | undefined
  let logLines: Record<string, unknown>[]

  beforeEach(() => {
    clock = new FakeClock()
    source = new FakeSource()
    sync = new ScriptedSync(clock)
    logLines = []
  })

  afterEach(async () => {
    // stop() would wait forever for a pass that never returns.
    if (sync.hung) loop = undefined
    // A status writeback that never ends is abandoned at its deadline, which only this clock brings.
    const stopping = loop?.stop()
    await clock.advance(600_000)
    await stopping
    loop = undefined
  })

  async function startLoop(options: Partial<WatchLoopOptions> = {}): Promise<WatchLoop> {
    const logger = createLogger({level: 'debug', write: (line) => logLines.push(JSON.parse(line) as Record<string, unknown>)})
    loop = new WatchLoop({source, sync: sync.pass, clock, logger, minIntervalMs: 100, resyncIntervalMs: 60_000, ...options})
    await loop.start()
    return loop
  }

  it('starts the source and syncs once right away', async () => {
    await startLoop()
    expect(source.started).to.equal(true)
    await clock.advance(0)
    expect(sync.startTimes()).to.deep.equal([0])
    expect(loop!.readiness()).to.deep.equal({ready: true})
  })

  it('warns on every pass while the host cannot serve some addresses, and stays ready: the rest is served', async () => {
    const faulty = report()
    faulty.plan.interfaceFaults = [{interface: 'eth2', reason: "interface eth2: --gw-offset 1 gives 198.18.2.1, which is this host's own address"}]
    faulty.forward = {written: 0, drops: [{chain: 'iptables FORWARD', reason: "iptables' FORWARD chain drops by default (policy DROP)", fix: 'accept there'}]}
    sync.outcomes = [faulty]
    await startLoop()
    await clock.advance(0)
    const warnings = logLines.filter((line) => line.level === 'warn')
    expect(warnings.map((line) => [line.msg, line.faults])).to.deep.equal([
      [
        'this host cannot serve some addresses; their Mappings say why',
        ["interface eth2: --gw-offset 1 gives 198.18.2.1, which is this host's own address", "iptables' FORWARD chain drops by default (policy DROP)"],
      ],
    ])
    expect(loop!.readiness()).to.deep.equal({ready: true})
  })

  it('applies a single change at once when idle, with the snapshot current at that time', async () => {
    await startLoop()
    await clock.advance(5000)
    const changed: Snapshot = {mappings: [{metadata: {namespace: 'default', name: 'web'}}], services: [], endpointSlices: []}
    source.current = changed
    source.notify()
    await clock.advance(0)
    expect(sync.startTimes()).to.deep.equal([0, 5000])
    expect(sync.calls[1]!.snapshot).to.equal(changed)
  })

  it('coalesces a burst into at most one sync per minimum interval', async () => {
    await startLoop({minIntervalMs: 100})
    await clock.advance(1000)
    for (let i = 0; i < 250; i++) {
      source.change()
      await clock.advance(1)
    }
    await clock.advance(1000)
    // The first change runs at once (t=1000); the rest of the 250 ms burst runs at 1100, 1200 and, for the last changes, 1300.
    expect(sync.startTimes()).to.deep.equal([0, 1000, 1100, 1200, 1300])
  })

  it('the minimum interval is configurable', async () => {
    await startLoop({minIntervalMs: 2000})
    await clock.advance(0)
    source.change()
    await clock.advance(1999)
    expect(sync.calls).to.have.length(1)
    await clock.advance(1)
    expect(sync.startTimes()).to.deep.equal([0, 2000])
  })

  it('never runs two syncs at once; changes during a sync make exactly one more', async () => {
    sync.durationMs = 500
    await startLoop()
    await clock.advance(10)
    for (let i = 0; i < 20; i++) {
      source.change()
      await clock.advance(10)
    }
    await clock.advance(5000)
    expect(sync.maxInFlight).to.equal(1)
    expect(sync.startTimes()).to.deep.equal([0, 500])
  })

  it('retries a failed sync with bounded exponential backoff, keeps changes waiting, and recovers', async () => {
    sync.outcomes = [new Error('iptables-restore: exit 4'), new Error('again'), new Error('again'), new Error('again')]
    await startLoop({backoff: {initialMs: 1000, maxMs: 5000}})
    await clock.advance(0)
    expect(loop!.readiness()).to.deep.equal({ready: false, reason: 'last sync failed: iptables-restore: exit 4'})
    source.change()
    await clock.advance(500)
    expect(sync.calls, 'a change does not cut the backoff short').to.have.length(1)
    await clock.advance(20_000)
    // Delays 1 s, 2 s, 4 s, then capped at 5 s; the fifth attempt succeeds and the loop is idle again.
    expect(sync.startTimes()).to.deep.equal([0, 1000, 3000, 7000, 12_000])
    expect(loop!.readiness()).to.deep.equal({ready: true})
    const failures = logLines.filter((l) => l.msg === 'sync failed; the rules applied before stay in place')
    expect(failures.map((l) => l.retryInMs)).to.deep.equal([1000, 2000, 4000, 5000])
    expect(failures[0]).to.include({level: 'error', error: 'iptables-restore: exit 4', failures: 1})
  })

  it('after a success the backoff starts from the beginning again', async () => {
    sync.outcomes = [new Error('one'), new Error('two')]
    await startLoop({backoff: {initialMs: 1000, maxMs: 30_000}})
    await clock.advance(10_000)
    expect(sync.startTimes()).to.deep.equal([0, 1000, 3000])
    sync.outcomes = [new Error('three')]
    source.change()
    await clock.advance(0)
    await clock.advance(1000)
    expect(sync.startTimes()).to.deep.equal([0, 1000, 3000, 10_000, 11_000])
  })

  it('makes the next apply full after an ApplyError, and only the next one', async () => {
    sync.outcomes = [new ApplyError('iptables-restore', 'line 3 failed')]
    await startLoop()
    await clock.advance(1000)
    source.change()
    await clock.advance(1000)
    expect(sync.calls.map((c) => c.full)).to.deep.equal([false, true, false])
  })

  it('a failure that does not ask for it leaves the next apply incremental', async () => {
    sync.outcomes = [new Error('ip -batch timed out')]
    await startLoop()
    await clock.advance(1000)
    expect(sync.calls.map((c) => c.full)).to.deep.equal([false, false])
  })

  it('a full apply that fails again stays full until one succeeds', async () => {
    sync.outcomes = [new ApplyError('ipset', 'one'), new Error('two')]
    await startLoop()
    await clock.advance(10_000)
    expect(sync.calls.map((c) => c.full)).to.deep.equal([false, true, true])
  })

  it('reads the kernel on the first pass, then trusts the state it applied for passes a change triggers', async () => {
    await startLoop()
    await clock.advance(1000)
    source.change()
    await clock.advance(1000)
    source.change()
    await clock.advance(1000)
    expect(sync.calls.map((c) => c.assumeActual)).to.deep.equal([undefined, 'applied by pass 1', 'applied by pass 2'])
  })

  it('reads the kernel on every periodic resync, then trusts that pass', async () => {
    await startLoop({resyncIntervalMs: 60_000})
    await clock.advance(61_000)
    source.change()
    await clock.advance(1000)
    expect(sync.startTimes()).to.deep.equal([0, 60_000, 61_000])
    expect(sync.calls.map((c) => c.assumeActual)).to.deep.equal([undefined, undefined, 'applied by pass 2'])
  })

  it('under steady churn, still reads the kernel once per resync interval', async () => {
    await startLoop({resyncIntervalMs: 10_000})
    for (let i = 0; i < 25; i++) {
      await clock.advance(1000)
      source.change()
    }
    await clock.advance(0)
    expect(sync.calls).to.have.length(26)
    expect(sync.readTimes()).to.deep.equal([0, 10_000, 20_000])
  })

  describe('objects no Mapping depends on', () => {
    const mappingFor = (serviceName: string) => ({metadata: {namespace: 'shop', name: 'api'}, spec: {serviceName}})
    const service = (name: string) => ({metadata: {namespace: 'shop', name}})
    const slice = (name: string, serviceName: string) => ({metadata: {namespace: 'shop', name, labels: {'kubernetes.io/service-name': serviceName}}})
    const cluster = () => ({
      mappings: [mappingFor('api')],
      services: [service('api'), service('cart')],
      endpointSlices: [slice('api-1', 'api'), slice('cart-1', 'cart')],
    })

    it('skips a pass when only other Services and EndpointSlices changed, and runs one when a named one changes', async () => {
      source.current = cluster()
      await startLoop()
      await clock.advance(1000)
      const replaced = (s: Snapshot, at: 'services' | 'endpointSlices', i: number, object: object): Snapshot => ({...s, [at]: s[at].map((o, j) => (j === i ? object : o))})
      const steps: [string, (s: Snapshot) => Snapshot, boolean][] = [
        ['the other Service', (s) => replaced(s, 'services', 1, service('cart')), false],
        ["the other Service's EndpointSlice", (s) => replaced(s, 'endpointSlices', 1, slice('cart-1', 'cart')), false],
        ['a new EndpointSlice of another Service', (s) => ({...s, endpointSlices: [...s.endpointSlices, slice('cart-2', 'cart')]}), false],
        ['the named Service', (s) => replaced(s, 'services', 0, service('api')), true],
        ["the named Service's EndpointSlice", (s) => replaced(s, 'endpointSlices', 0, slice('api-1', 'api')), true],
        ['a new EndpointSlice of the named Service', (s) => ({...s, endpointSlices: [...s.endpointSlices, slice('api-2', 'api')]}), true],
        ['the named Service deleted', (s) => ({...s, services: s.services.slice(1)}), true],
        ['the Mapping, now naming the other Service', (s) => ({...s, mappings: [mappingFor('cart')]}), true],
        ['the Service it no longer names', (s) => ({...s, services: [service('api'), ...s.services]}), false],
        ['nothing at all', (s) => s, false],
      ]
      for (const [what, edit, runs] of steps) {
        const before = sync.calls.length
        source.current = edit(source.current)
        source.notify()
        await clock.advance(1000)
        expect(sync.calls.length - before, what).to.equal(runs ? 1 : 0)
      }
      expect(logLines.filter((l) => l.msg === 'no Mapping, nor a Service or EndpointSlice one names, changed; pass skipped')).to.have.length(5)
    })

    it('a skipped pass does not hold the next change back for the minimum interval', async () => {
      const mapping = {metadata: {namespace: 'shop', name: 'api', generation: 1, resourceVersion: '10'}, spec: {serviceName: 'api', ports: [{port: 80}]}}
      source.current = {...cluster(), mappings: [mapping]}
      await startLoop()
      await clock.advance(1000)
      const before = sync.calls.length
      // Its own status coming back: a pass that is skipped.
      source.current = {...source.current, mappings: [{...mapping, metadata: {...mapping.metadata, resourceVersion: '11'}, status: {invalid: 'no'}} as Snapshot['mappings'][number]]}
      source.notify()
      await clock.advance(1)
      expect(sync.calls.length).to.equal(before)
      // A real change right after it runs at once, not a minimum interval later.
      source.current = {...source.current, mappings: [{...mapping, spec: {...mapping.spec, ports: [{port: 80}, {port: 81}]}} as Snapshot['mappings'][number]]}
      source.notify()
      await clock.advance(1)
      expect(sync.calls.length - before).to.equal(1)
    })

    it('skips a pass when a Mapping came back with only its status, labels or resourceVersion changed', async () => {
      const mapping = {metadata: {namespace: 'shop', name: 'api', generation: 1, resourceVersion: '10'}, spec: {serviceName: 'api', ports: [{port: 80}]}}
      source.current = {...cluster(), mappings: [mapping]}
      await startLoop()
      await clock.advance(1000)
      const steps: [string, object, boolean][] = [
        ['status written', {...mapping, metadata: {...mapping.metadata, resourceVersion: '11'}, status: {invalid: 'no'}}, false],
        ['a label added', {...mapping, metadata: {...mapping.metadata, resourceVersion: '12', labels: {team: 'a'}}}, false],
        ['a port added', {...mapping, spec: {...mapping.spec, ports: [{port: 80}, {port: 81}]}}, true],
        ['the generation bumped', {...mapping, metadata: {...mapping.metadata, generation: 2}, spec: {...mapping.spec, ports: [{port: 80}, {port: 81}]}}, true],
      ]
      for (const [what, replacement, runs] of steps) {
        const before = sync.calls.length
        source.current = {...source.current, mappings: [replacement as Snapshot['mappings'][number]]}
        source.notify()
        await clock.advance(1000)
        expect(sync.calls.length - before, what).to.equal(runs ? 1 : 0)
      }
    })

    it('keeps the periodic resync on time, however many passes it skipped', async () => {
      source.current = cluster()
      await startLoop({resyncIntervalMs: 10_000})
      await clock.advance(1000)
      // Churn elsewhere until 9 s, then silence: the resync is still due 10 s after the last pass that ran.
      for (let i = 0; i < 8; i++) {
        source.current = {...source.current, services: [source.current.services[0]!, service('cart')]}
        source.notify()
        await clock.advance(1000)
      }
      await clock.advance(12_000)
      expect(sync.startTimes()).to.deep.equal([0, 10_000, 20_000])
      expect(sync.readTimes()).to.deep.equal([0, 10_000, 20_000])
      // Under churn that never stops, a pass a whole interval after the last read runs and reads too.
      for (let i = 0; i < 15; i++) {
        source.current = {...source.current, services: [source.current.services[0]!, service('cart')]}
        source.notify()
        await clock.advance(1000)
      }
      expect(sync.readTimes()).to.deep.equal([0, 10_000, 20_000, 30_000])
    })

    it('retries a failed conntrack cleanup in the next pass, which it does not skip, until a pass cleans up', async () => {
      source.current = cluster()
      const metrics = new SmartnatMetrics()
      const pending: PendingCleanup = {changedEndpoints: [], vanishedPods: ['198.19.200.12' as Ipv4]}
      const cleanupFailed = {...report(), kernelState: 'applied', conntrackError: 'conntrack -L --reply-src 198.19.200.12 exited with 2', pendingCleanup: pending}
      sync.outcomes = [cleanupFailed, new Error('iptables-restore: exit 4')]
      await startLoop({observer: metrics, backoff: {initialMs: 1000, maxMs: 1000}})
      await clock.advance(500)
      expect(loop!.readiness(), 'the rules are applied').to.deep.equal({ready: true})
      expect(metrics.conntrackCleanupFailures.get()).to.equal(1)
      expect(logLines.find((l) => l.level === 'warn')).to.include({
        msg: 'sync applied, but dropping connections to vanished targets failed; the next pass tries again',
        error: 'conntrack -L --reply-src 198.19.200.12 exited with 2',
        pending: 'connections answered by the pods that left (198.19.200.12)',
      })
      // Nothing changed, yet the pass runs and retries; it fails for another reason, so the one after retries again.
      source.notify()
      await clock.advance(500)
      await clock.advance(1000)
      expect(sync.calls.map((c) => c.retryCleanup)).to.deep.equal([undefined, pending, pending])
      // That one cleaned up: a pass with nothing changed is skipped again.
      source.notify()
      await clock.advance(1000)
      expect(sync.calls).to.have.length(3)
      expect(metrics.conntrackCleanupFailures.get()).to.equal(1)
    })

    it('runs the next pass after one whose afterSync failed, though nothing changed', async () => {
      source.current = cluster()
      let fail = true
      await startLoop({
        afterSync: () => {
          if (fail) throw new Error('status patch: 409 Conflict')
        },
      })
      await clock.advance(1000)
      fail = false
      source.notify()
      await clock.advance(1000)
      source.notify()
      await clock.advance(1000)
      expect(sync.startTimes()).to.deep.equal([0, 1000])
    })
  })

  it('after a failure, reads the kernel again before trusting anything', async () => {
    sync.outcomes = [{...report(), kernelState: 'first'}, new Error('iptables-restore: exit 1')]
    await startLoop()
    await clock.advance(500)
    source.change()
    await clock.advance(500)
    // The retry after 1 s of backoff reads the kernel; the change after it trusts the retry's state.
    await clock.advance(1000)
    source.change()
    await clock.advance(500)
    expect(sync.startTimes()).to.deep.equal([0, 500, 1500, 2000])
    expect(sync.calls.map((c) => c.assumeActual)).to.deep.equal([undefined, 'first', undefined, 'applied by pass 3'])
  })

  it('does not trust a pass that reported no state', async () => {
    sync.outcomes = [report()]
    await startLoop()
    await clock.advance(500)
    source.change()
    await clock.advance(500)
    expect(sync.readTimes()).to.deep.equal([0, 500])
  })

  it('applies nothing before the source has synced, however long it takes', async () => {
    source.synced = false
    source.lastError = 'connection refused'
    await startLoop()
    await clock.advance(180_000)
    expect(sync.calls).to.have.length(0)
    expect(loop!.readiness()).to.deep.equal({ready: false, reason: 'source not synced yet', lastError: 'connection refused'})
    source.synced = true
    source.lastError = undefined
    source.change()
    await clock.advance(100)
    expect(sync.calls).to.have.length(1)
    expect(loop!.readiness()).to.deep.equal({ready: true})
  })

  it('is not ready when the source loses its sync, and stops applying', async () => {
    await startLoop()
    await clock.advance(0)
    source.synced = false
    source.change()
    await clock.advance(120_000)
    expect(sync.calls).to.have.length(1)
    expect(loop!.readiness()).to.include({ready: false, reason: 'source not synced yet'})
  })

  it('is not ready while the source fails, though the last rules stay, and ready again when it recovers', async () => {
    await startLoop()
    await clock.advance(0)
    source.lastError = 'manifests.yaml:3: invalid YAML'
    expect(loop!.readiness()).to.deep.equal({
      ready: false,
      reason: 'source failing; the rules of the last sync stay in place',
      lastError: 'manifests.yaml:3: invalid YAML',
    })
    source.lastError = undefined
    expect(loop!.readiness()).to.deep.equal({ready: true})
  })

  it('resyncs periodically, counting from the last sync', async () => {
    await startLoop({resyncIntervalMs: 60_000})
    await clock.advance(150_000)
    expect(sync.startTimes()).to.deep.equal([0, 60_000, 120_000])
    source.change()
    await clock.advance(100_000)
    expect(sync.startTimes()).to.deep.equal([0, 60_000, 120_000, 150_000, 210_000])
  })

  it('stop() waits for the sync in progress, stops the source and runs nothing after', async () => {
    sync.durationMs = 300
    await startLoop()
    await clock.advance(100)
    let stopped = false
    const stopping = loop!.stop().then(() => (stopped = true))
    await clock.advance(100)
    expect(stopped, 'still syncing').to.equal(false)
    expect(source.stopped).to.equal(true)
    source.change()
    await clock.advance(200)
    await stopping
    expect(stopped).to.equal(true)
    await clock.advance(300_000)
    expect(sync.calls).to.have.length(1)
    expect(clock.pending()).to.equal(0)
    loop = undefined
  })

  it('calls afterSync with each successful report; its failure is logged and changes nothing else', async () => {
    const seen: SyncReport[] = []
    const first = report([verdict('web', true, ['198.18.0.10'])], 9)
    sync.outcomes = [first, new Error('apply failed')]
    let fail = true
    await startLoop({
      afterSync: (r) => {
        seen.push(r)
        if (fail) throw new Error('status patch: 409 Conflict')
      },
    })
    await clock.advance(0)
    expect(seen).to.deep.equal([first])
    expect(loop!.readiness()).to.deep.equal({ready: true})
    expect(logLines.find((l) => l.level === 'warn')).to.include({msg: 'status writeback failed; the next sync writes again', error: 'status patch: 409 Conflict'})
    fail = false
    await clock.advance(1000)
    source.change()
    await clock.advance(0)
    expect(seen, 'not after a failed sync').to.have.length(1)
    await clock.advance(1000)
    expect(seen).to.have.length(2)
  })

  it('feeds each outcome to the metrics', async () => {
    const metrics = new SmartnatMetrics()
    sync.durationMs = 250
    sync.outcomes = [
      report([verdict('a', true, ['198.18.0.10']), verdict('b', false, []), verdict('c', true, []), verdict('d', true, ['198.18.0.11'])], 42),
      new Error('boom'),
    ]
    await startLoop({observer: metrics})
    await clock.advance(250)
    source.change()
    await clock.advance(250)
    expect(metrics.syncErrors.get()).to.equal(1)
    expect(metrics.lastSuccessfulSync.get()).to.equal((T0 + 250) / 1000)
    expect(metrics.mappings.get({state: 'configured'})).to.equal(2)
    expect(metrics.mappings.get({state: 'invalid'})).to.equal(1)
    expect(metrics.mappings.get({state: 'not_local'})).to.equal(1)
    expect(metrics.rulesProgrammed.get()).to.equal(42)
    expect(metrics.kernelWrites.get({kind: 'rules'})).to.equal(3)
    expect(metrics.render()).to.include('smartnat_sync_duration_seconds_count 2\n').and.include('smartnat_sync_duration_seconds_bucket{le="0.25"} 2\n')
  })

  describe('status writeback after the pass', () => {
    /** A status writer that records what it is handed and answers only when the test says so. */
    class PendingWriter {
      readonly reports: SyncReport[] = []
      readonly signals: AbortSignal[] = []
      private answers: {resolve: () => void; reject: (error: Error) => void}[] = []
      /** Once set, every write answers at once. */
      answerAtOnce = false

      readonly write = (r: SyncReport, signal: AbortSignal): Promise<void> => {
        this.reports.push(r)
        this.signals.push(signal)
        if (this.answerAtOnce) return Promise.resolve()
        return new Promise<void>((resolve, reject) => this.answers.push({resolve, reject}))
      }

      /** Which passes' reports it was handed, by the state each applied. */
      passes(): unknown[] {
        return this.reports.map((r) => r.kernelState)
      }

      succeedAll(): void {
        for (const answer of this.answers.splice(0)) answer.resolve()
      }

      failAll(error: Error): void {
        for (const answer of this.answers.splice(0)) answer.reject(error)
      }
    }

    it('a writer that never answers holds up no pass: later changes still apply, one writeback at a time, the latest report next', async () => {
      const writer = new PendingWriter()
      const metrics = new SmartnatMetrics()
      await startLoop({afterSync: writer.write, writebackDeadlineMs: 10_000, observer: metrics})
      await clock.advance(1000)
      expect(writer.passes()).to.deep.equal(['applied by pass 1'])
      for (let i = 0; i < 3; i++) {
        source.change()
        await clock.advance(1000)
      }
      expect(sync.startTimes(), 'every change applied while the first writeback hangs').to.deep.equal([0, 1000, 2000, 3000])
      expect(writer.passes(), 'one writeback in flight').to.have.length(1)
      await clock.advance(6000)
      // At its deadline the first writeback is aborted; of the three reports that came meanwhile, only the last is written.
      expect(writer.signals[0]!.aborted).to.equal(true)
      expect(writer.passes()).to.deep.equal(['applied by pass 1', 'applied by pass 4'])
      expect(logLines.find((l) => l.level === 'warn')).to.include({msg: 'status writeback abandoned; the next sync writes again', error: 'status writeback timed out after 10s'})
      expect(metrics.writebackFailures.get({reason: 'timeout'})).to.equal(1)
      expect(loop!.liveness()).to.deep.equal({alive: true})
    })

    it('a writeback that fails is retried with the next pass, which is not skipped though nothing changed', async () => {
      source.current = {mappings: [{metadata: {namespace: 'shop', name: 'api', generation: 1}}], services: [], endpointSlices: []}
      const failures = [new Error('status patch: 500 Internal Server Error')]
      const written: unknown[] = []
      await startLoop({
        afterSync: (r) => {
          written.push(r.kernelState)
          const failure = failures.shift()
          if (failure) throw failure
        },
      })
      await clock.advance(1000)
      source.notify()
      await clock.advance(1000)
      source.notify()
      await clock.advance(1000)
      expect(sync.startTimes(), 'the pass after the failed writeback runs; the one after the written one is skipped').to.deep.equal([0, 1000])
      expect(written).to.deep.equal(['applied by pass 1', 'applied by pass 2'])
    })

    it('a pass like the last is skipped while that one’s statuses are written; should they fail, a pass skipped meanwhile runs to write again', async () => {
      const writer = new PendingWriter()
      await startLoop({afterSync: writer.write})
      await clock.advance(100)
      // Its statuses coming back while the rest are written: the same verdicts would only be handed over again.
      source.notify()
      await clock.advance(100)
      expect(sync.startTimes(), 'skipped while pass 1 is written').to.deep.equal([0])
      writer.failAll(new Error('status patch: 500 Internal Server Error'))
      await clock.advance(100)
      expect(sync.startTimes(), 'the skipped pass runs once the writeback failed').to.deep.equal([0, 200])
      expect(writer.passes()).to.deep.equal(['applied by pass 1', 'applied by pass 2'])
      // A writeback that fails with no pass skipped meanwhile starts none: the next change or resync writes again.
      writer.failAll(new Error('status patch: 500 Internal Server Error'))
      await clock.advance(1000)
      expect(sync.startTimes()).to.deep.equal([0, 200])
      source.notify()
      await clock.advance(100)
      expect(sync.startTimes(), 'unsettled by the failure: the next pass runs').to.deep.equal([0, 200, 1300])
      writer.succeedAll()
      await clock.advance(100)
      source.notify()
      await clock.advance(100)
      expect(sync.startTimes(), 'the last pass written: the next is skipped').to.deep.equal([0, 200, 1300])
    })

    it('a change on the host is never skipped, though the snapshot is the same', async () => {
      const host = new FakeHostChanges()
      await startLoop({hostChanges: host})
      await clock.advance(1000)
      source.notify()
      await clock.advance(1000)
      expect(sync.startTimes(), 'nothing changed: skipped').to.deep.equal([0])
      host.change()
      await clock.advance(1000)
      expect(sync.startTimes(), 'an address added on the host').to.deep.equal([0, 2000])
    })

    it('a change on the host while a pass runs is not lost: the pass may have read the host before it', async () => {
      const host = new FakeHostChanges()
      sync.durationMs = 500
      await startLoop({hostChanges: host})
      await clock.advance(100)
      host.change()
      await clock.advance(2000)
      expect(sync.startTimes()).to.deep.equal([0, 500])
    })

    it('stop() lets the writeback in progress end, for a few seconds at most, and starts no other', async () => {
      const writer = new PendingWriter()
      await startLoop({afterSync: writer.write, writebackDeadlineMs: 60_000})
      await clock.advance(0)
      source.change()
      await clock.advance(100)
      let stopped = false
      const stopping = loop!.stop().then(() => (stopped = true))
      await clock.advance(STOP_GRACE_MS - 1)
      expect(stopped).to.equal(false)
      await clock.advance(1)
      await stopping
      expect(stopped).to.equal(true)
      expect(writer.signals[0]!.aborted).to.equal(true)
      expect(writer.passes(), 'the report waiting behind it is dropped').to.deep.equal(['applied by pass 1'])
      loop = undefined
    })

    it('stop() returns as soon as the writeback in progress ends', async () => {
      const writer = new PendingWriter()
      await startLoop({afterSync: writer.write})
      await clock.advance(0)
      let stopped = false
      const stopping = loop!.stop().then(() => (stopped = true))
      await clock.advance(100)
      expect(stopped).to.equal(false)
      writer.succeedAll()
      await stopping
      expect(writer.signals[0]!.aborted).to.equal(false)
      expect(clock.pending(), 'no timer left behind').to.equal(0)
      loop = undefined
    })
  })

  it('tells /healthcheck when the last pass succeeded: the start until one has, then each success, never a failure', async () => {
    sync.durationMs = 250
    await startLoop({backoff: {initialMs: 1000, maxMs: 1000}})
    expect(loop!.lastSucceededAt(), 'no pass yet: when the loop was made').to.equal(T0)
    await clock.advance(250)
    expect(loop!.lastSucceededAt(), 'when the first pass ended').to.equal(T0 + 250)
    sync.outcomes = [new Error('iptables-restore: exit 4')]
    source.change()
    await clock.advance(250)
    expect(sync.calls, 'the change made a pass, which failed').to.have.length(2)
    expect(loop!.lastSucceededAt(), 'a failure leaves it').to.equal(T0 + 250)
    await clock.advance(5000)
    expect(sync.calls, 'its retry succeeded').to.have.length(3)
    expect(loop!.lastSucceededAt(), 'when the retry ended').to.equal(sync.calls[2]!.at + 250)
  })

  describe('readiness and liveness over time', () => {
    it('is not ready once no pass has completed for twice the resync interval, and dead once a pass runs past the stall limit', async () => {
      await startLoop({resyncIntervalMs: 10_000})
      await clock.advance(0)
      sync.outcomes = ['hang']
      source.change()
      await clock.advance(20_000)
      expect(loop!.readiness()).to.deep.equal({ready: true})
      await clock.advance(1)
      expect(loop!.readiness()).to.deep.equal({ready: false, reason: 'no sync has completed for 20s, more than twice the resync interval (10s)'})
      expect(loop!.liveness(), 'a pass may be slow for a while').to.deep.equal({alive: true})
      // The stall limit: the larger of 2 min and twice the longer of the resync interval and the longest backoff (30 s).
      // It began at 100 ms, the minimum interval after the first.
      await clock.advance(100_100)
      expect(loop!.liveness()).to.deep.equal({alive: false, reason: 'a sync pass has been running for 120s; the limit is 120s'})
    })

    it('is dead when the loop stops scheduling passes', async () => {
      await startLoop({resyncIntervalMs: 60_000})
      await clock.advance(0)
      clock.losesTimers = true
      source.change()
      await clock.advance(120_000)
      expect(loop!.liveness()).to.deep.equal({alive: true})
      await clock.advance(1)
      expect(loop!.liveness()).to.deep.equal({alive: false, reason: 'no sync pass has started for 120s; the limit is 120s'})
      expect(sync.calls).to.have.length(1)
    })

    it('stays alive through a long backoff, and the stall limit grows with the resync interval', async () => {
      sync.outcomes = Array.from({length: 10}, () => new Error('iptables-restore: exit 4'))
      await startLoop({resyncIntervalMs: 300_000, backoff: {initialMs: 1000, maxMs: 200_000}})
      await clock.advance(580_000)
      expect(sync.startTimes().slice(-2), 'capped backoff').to.deep.equal([255_000, 455_000])
      expect(loop!.liveness()).to.deep.equal({alive: true})
    })

    it('is not ready while statuses wait longer than twice the resync interval, and ready once they are written', async () => {
      let answering = false
      await startLoop({
        resyncIntervalMs: 10_000,
        writebackDeadlineMs: 8000,
        afterSync: () => (answering ? undefined : new Promise<void>(() => {})),
      })
      await clock.advance(20_000)
      expect(loop!.readiness(), 'the periodic passes complete').to.deep.equal({ready: true})
      await clock.advance(1)
      expect(loop!.readiness()).to.deep.equal({
        ready: false,
        reason: 'Mapping statuses not written for 20s, more than twice the resync interval (10s): status writeback timed out after 8s',
      })
      answering = true
      await clock.advance(10_000)
      expect(loop!.readiness()).to.deep.equal({ready: true})
    })
  })

  describe('mass removal', () => {
    const names = (count: number) => Array.from({length: count}, (_, i) => `m-${String(i + 1).padStart(2, '0')}`)
    const mappings = (count: number) => names(count).map((name) => ({metadata: {namespace: 'default', name}}))
    /** Mappings the fake kernel programs. */
    let kernel: Set<string>
    let metrics: SmartnatMetrics

    /** A pass that programs the snapshot's Mappings, asking the guard as syncOnce does. */
    const guardedPass: WatchLoopOptions['sync'] = async (load, options) => {
      const next = new Set((await load()).mappings.map((m) => `${m.metadata.namespace}/${m.metadata.name}`))
      const removal = measureRemoval(kernel, next)
      const mass = options.removalGuard !== undefined && isMassRemoval(removal, options.removalGuard.policy)
      if (mass && !options.removalGuard!.allows(removal)) throw new MassRemovalError(removal, options.removalGuard!.policy)
      kernel = next
      return {...report([], 7), ...(mass ? {massRemoval: removal} : {})}
    }

    beforeEach(async () => {
      kernel = new Set()
      metrics = new SmartnatMetrics()
      source.current = {mappings: mappings(20), services: [], endpointSlices: []}
      await startLoop({sync: guardedPass, observer: metrics, resyncIntervalMs: 60_000, massRemoval: {policy: DEFAULT_REMOVAL_POLICY, delayMs: 120_000}})
      await clock.advance(0)
      expect(kernel.size).to.equal(20)
    })

    const shrinkTo = (count: number) => {
      source.current = {...source.current, mappings: mappings(count)}
      source.notify()
    }
    const warnings = () => logLines.filter((l) => l.level === 'warn').map((l) => l.msg)

    it('holds a pass that removes 17 of 20: the kernel stays, not ready with the reason, a warning with the counts, the metrics', async () => {
      await clock.advance(10_000)
      shrinkTo(3)
      await clock.advance(0)
      expect(kernel.size).to.equal(20)
      expect(loop!.readiness()).to.deep.equal({
        ready: false,
        reason: `mass removal held: the source would remove 17 of the 20 Mappings programmed here (default/m-04, default/m-05, default/m-06, default/m-07, default/m-08 and 12 more), more than --max-removal 50%; applied at ${new Date(T0 + 130_000).toISOString()} if it persists`,
      })
      expect(logLines.find((l) => l.msg === 'mass removal held; the rules stay as they are')).to.include({
        level: 'warn',
        programmed: 20,
        removed: 17,
        remaining: 3,
        maxRemoval: '50%',
        appliesAt: new Date(T0 + 130_000).toISOString(),
      })
      expect(metrics.heldRemoval.get()).to.equal(17)
      expect(metrics.heldPasses.get()).to.equal(1)
      expect(metrics.syncErrors.get(), 'a held pass is no failed pass').to.equal(0)
    })

    it('applies the same removal once it has lasted the delay, and is ready again', async () => {
      await clock.advance(10_000)
      shrinkTo(3)
      // The resync 60 s later still holds it, and does not warn again.
      await clock.advance(60_000)
      expect(kernel.size).to.equal(20)
      expect(metrics.heldPasses.get()).to.equal(2)
      expect(warnings()).to.deep.equal(['mass removal held; the rules stay as they are'])
      await clock.advance(60_000)
      expect(kernel.size).to.equal(3)
      expect(loop!.readiness()).to.deep.equal({ready: true})
      expect(metrics.heldRemoval.get()).to.equal(0)
      expect(logLines.find((l) => l.msg === 'mass removal applied after being held')).to.include({programmed: 20, removed: 17, heldSince: new Date(T0 + 10_000).toISOString()})
    })

    it('lets the source come back before the delay: nothing was removed, ready again', async () => {
      shrinkTo(3)
      await clock.advance(1000)
      shrinkTo(20)
      await clock.advance(1000)
      expect(kernel.size).to.equal(20)
      expect(loop!.readiness()).to.deep.equal({ready: true})
      expect(logLines.map((l) => l.msg)).to.include('mass removal no longer asked for; nothing was removed while it was held')
      // Held again later, the wait starts from the beginning.
      shrinkTo(0)
      await clock.advance(119_000)
      expect(kernel.size).to.equal(20)
    })

    it('starts the wait again when other Mappings are about to go', async () => {
      shrinkTo(3)
      await clock.advance(100_000)
      shrinkTo(4)
      await clock.advance(60_000)
      expect(kernel.size, '160 s after the first shrink, 60 s after this one').to.equal(20)
      await clock.advance(60_000)
      expect(kernel.size).to.equal(4)
    })

    it('applies a removal below the floor or the share at once', async () => {
      shrinkTo(11)
      await clock.advance(1000)
      expect(kernel.size, '9 removed').to.equal(11)
      shrinkTo(2)
      await clock.advance(1000)
      expect(kernel.size, '9 of 11 removed').to.equal(2)
      expect(metrics.heldPasses.get()).to.equal(0)
    })
  })
})

/** A kernel of two parts, `a` (what the changes set) and `b` (what drift damages), behind a backend whose reads end when the test says so. */
class SlowReadKernel {
  kernel = {a: 'v0', b: 'ok'}
  desired = {a: 'v0', b: 'ok'}
  /** What happened, in order: reads beginning (with the picture they took), and writes. */
  readonly log: string[] = []
  private reads: (() => void)[] = []
  readonly backend = inertBackend({
    render: () => this.desired,
    read: () =>
      new Promise((resolve) => {
        const picture = {...this.kernel}
        this.log.push(`read began: ${shown(picture)}`)
        this.reads.push(() => resolve(picture))
      }),
    apply: async (desired, options: ApplyOptions = {}) => {
      const actual = (options.assumeActual !== undefined && !options.full ? options.assumeActual : await options.kernelRead) as Record<string, string>
      const wanted = desired as Record<string, string>
      const parts = Object.keys(wanted).filter((part) => wanted[part] !== actual[part])
      if (parts.length === 0) return NOTHING_CHANGED
      for (const part of parts) (this.kernel as Record<string, string>)[part] = wanted[part]!
      this.log.push(`wrote ${parts.map((part) => `${part}=${wanted[part]}`).join(' ')}${options.assumeActual === undefined ? ' (from a read)' : ' (trusting)'}`)
      return {changed: true, written: {sets: 0, chains: 0, rules: parts.length, routes: 0}, changedEndpoints: []}
    },
  })

  /** Reads begun and not yet ended. */
  get pendingReads(): number {
    return this.reads.length
  }

  /** Ends every read in progress. */
  endReads(): void {
    for (const end of this.reads.splice(0)) end()
  }
}

function shown(state: {a: string; b: string}): string {
  return `a=${state.a} b=${state.b}`
}

describe('watch loop: a kernel read gives way to a change', () => {
  const IP_ADDR = JSON.stringify([{ifindex: 2, ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.10', prefixlen: 24}]}])
  let clock: FakeClock
  let source: FakeSource
  let kernel: SlowReadKernel
  let loop: WatchLoop
  let metrics: SmartnatMetrics

  beforeEach(async () => {
    clock = new FakeClock()
    source = new FakeSource()
    kernel = new SlowReadKernel()
    metrics = new SmartnatMetrics()
    const runner = new RecordingRunner((call) => (call.command === 'ip' ? {stdout: IP_ADDR} : call.command === 'sysctl' ? {stdout: '2\n2\n'} : {}))
    const sync = syncPass({runner, backend: kernel.backend}, {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth1$/})
    loop = new WatchLoop({source, sync, clock, minIntervalMs: 100, resyncIntervalMs: 60_000, observer: metrics})
    kernel.desired = {a: 'v1', b: 'ok'}
    await loop.start()
    // The first pass reads the kernel: it has no state to trust, so it never gives way.
    await clock.advance(0)
    expect(kernel.pendingReads).to.equal(1)
    kernel.endReads()
    await clock.advance(100)
    expect(kernel.log).to.deep.equal(['read began: a=v0 b=ok', 'wrote a=v1 (from a read)'])
    kernel.log.length = 0
  })

  afterEach(async () => {
    const stopping = loop.stop()
    kernel.endReads()
    await clock.advance(600_000)
    kernel.endReads()
    await stopping
  })

  /** A change on the API side: the source holds a new Mapping, and the render sets part `a` to `value`. */
  function change(value: string): void {
    kernel.desired = {...kernel.desired, a: value}
    source.change()
  }

  it('applies a change that arrives during the periodic read before the read ends, then reads again, repairing the drift the discarded read saw', async () => {
    kernel.kernel.b = 'drifted'
    await clock.advance(60_000)
    expect(kernel.log).to.deep.equal(['read began: a=v1 b=drifted'])
    change('v2')
    await clock.advance(100)
    expect(kernel.pendingReads, 'the periodic read has not ended').to.equal(1)
    expect(kernel.log).to.deep.equal(['read began: a=v1 b=drifted', 'wrote a=v2 (trusting)'])
    // The read that overlapped with that write is not used, and the next waits for it to end: two never overlap.
    await clock.advance(1000)
    expect(kernel.log).to.have.length(2)
    kernel.endReads()
    await clock.advance(100)
    expect(kernel.log.slice(2), 'the discarded read wrote nothing; the kernel is read again').to.deep.equal(['read began: a=v2 b=drifted'])
    kernel.endReads()
    await clock.advance(100)
    expect(kernel.log.slice(3)).to.deep.equal(['wrote b=ok (from a read)'])
    expect(kernel.kernel).to.deep.equal({a: 'v2', b: 'ok'})
    expect(metrics.readsGivenWay.get(), 'the read that gave way, counted').to.equal(1)
  })

  it('does not give way to what changes nothing it planned from (a status coming back, the same snapshot)', async () => {
    await clock.advance(60_000)
    source.notify()
    await clock.advance(100)
    kernel.endReads()
    await clock.advance(100)
    expect(kernel.log).to.deep.equal(['read began: a=v1 b=ok'])
    expect(kernel.pendingReads).to.equal(0)
    expect(metrics.readsGivenWay.get()).to.equal(0)
  })

  it(`gives way at most ${MAX_READ_GIVE_WAYS} times in a row: under changes that never stop, the read then goes through and repairs drift`, async () => {
    kernel.kernel.b = 'drifted'
    await clock.advance(60_000)
    let version = 2
    let trustingWrites = 0
    for (let round = 0; round < MAX_READ_GIVE_WAYS + 2; round++) {
      change(`v${version++}`)
      await clock.advance(50)
      change(`v${version++}`)
      await clock.advance(100)
      trustingWrites = kernel.log.filter((line) => line.endsWith('(trusting)')).length
      kernel.endReads()
      await clock.advance(100)
    }
    const reads = kernel.log.filter((line) => line.startsWith('read began'))
    const readWrites = kernel.log.filter((line) => line.endsWith('(from a read)'))
    expect(reads, 'the periodic read, then one more per time it gave way').to.have.length(MAX_READ_GIVE_WAYS + 1)
    expect(readWrites).to.deep.equal([`wrote a=v${2 * MAX_READ_GIVE_WAYS + 1} b=ok (from a read)`])
    expect(trustingWrites).to.be.at.least(MAX_READ_GIVE_WAYS)
    expect(kernel.kernel).to.deep.equal({a: kernel.desired.a, b: 'ok'})
    expect(metrics.readsGivenWay.get()).to.equal(MAX_READ_GIVE_WAYS)
  })
})
