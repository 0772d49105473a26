/**
 * Where a change's time goes, for `npm run bench:watch -- --breakdown`: from the API call to the
 * pass starting, the pass's steps before its first kernel write (snapshot, host and plan; render;
 * the removal guard and the backend's diff), each kernel tool's runs, and the rest of the pass after
 * its last write (forward check, conntrack cleanup: not in the latency, but a change arriving then
 * waits for it). Medians per kind of change.
 */
import type {Backend} from '../src/lib/backend/backend.js'
import type {CountedCall} from './netns.js'
import {median, printTable} from './report.js'

/** When one pass of the loop started and ended, and when it rendered (with a timed backend). */
export interface PassTimes {
  startedAt: number
  endedAt: number
  renderStartedAt?: number
  renderEndedAt?: number
}

/** The parts of one change's time, in ms; `tools` sums each tool's write runs (runs at once overlap). */
export interface ChangeParts {
  toPass: number
  plan: number
  render: number
  diff: number
  tools: Map<string, number>
  writes: number
  afterLastWrite: number
  total: number
}

/** The times of the passes, and a backend whose render they note; the benchmark opts in, so a run without --breakdown times nothing more. */
export class PassClock {
  private running: PassTimes | undefined

  /** `backend`, its render noted in the pass running. */
  timed(backend: Backend): Backend {
    return {
      ...backend,
      render: (model) => {
        const started = performance.now()
        const desired = backend.render(model)
        if (this.running) Object.assign(this.running, {renderStartedAt: started, renderEndedAt: performance.now()})
        return desired
      },
    }
  }

  /** Runs a pass, noting its times. */
  async around<T>(pass: () => Promise<T>): Promise<{value: T; times: PassTimes}> {
    const times: PassTimes = {startedAt: performance.now(), endedAt: NaN}
    this.running = times
    try {
      return {value: await pass(), times}
    } finally {
      times.endedAt = performance.now()
      this.running = undefined
    }
  }
}

/** The parts of a change sent at `at` and applied by the pass of `times`, whose kernel writes are `writes` (none: undefined). */
export function changeParts(at: number, times: PassTimes, writes: readonly CountedCall[]): ChangeParts | undefined {
  if (writes.length === 0 || times.renderStartedAt === undefined || times.renderEndedAt === undefined) return undefined
  const firstStart = Math.min(...writes.map((call) => call.endedAt - call.ms))
  const lastEnd = Math.max(...writes.map((call) => call.endedAt))
  const tools = new Map<string, number>()
  for (const call of writes) tools.set(call.command, (tools.get(call.command) ?? 0) + call.ms)
  return {
    toPass: times.startedAt - at,
    plan: times.renderStartedAt - times.startedAt,
    render: times.renderEndedAt - times.renderStartedAt,
    diff: firstStart - times.renderEndedAt,
    tools,
    writes: lastEnd - firstStart,
    afterLastWrite: times.endedAt - lastEnd,
    total: lastEnd - at,
  }
}

/** Prints the medians of each kind's parts; a tool's median is over the changes that ran it. */
export function printBreakdown(kinds: readonly {name: string; parts: readonly ChangeParts[]}[]): void {
  const tools = [...new Set(kinds.flatMap((kind) => kind.parts.flatMap((p) => [...p.tools.keys()])))].sort()
  const of = (parts: readonly ChangeParts[], pick: (p: ChangeParts) => number | undefined) => {
    const values = parts.map(pick).filter((v): v is number => v !== undefined)
    return values.length === 0 ? '-' : median(values)
  }
  printTable(
    ['change', 'API call to pass', 'snapshot, host, plan', 'render', 'guard, diff', ...tools.map((t) => `${t} runs`), 'first write to last', 'after the last write', 'API call to kernel'],
    kinds.map(({name, parts}) => [
      name,
      of(parts, (p) => p.toPass),
      of(parts, (p) => p.plan),
      of(parts, (p) => p.render),
      of(parts, (p) => p.diff),
      ...tools.map((tool) => of(parts, (p) => p.tools.get(tool))),
      of(parts, (p) => p.writes),
      of(parts, (p) => p.afterLastWrite),
      of(parts, (p) => p.total),
    ]),
  )
}
