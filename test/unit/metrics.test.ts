import {expect} from 'chai'
import {Counter, Gauge, Histogram, SmartnatMetrics, formatNumber} from '../../src/lib/observe/metrics.js'
import type {MappingVerdict} from '../../src/lib/plan/model.js'

interface Family {
  help: string
  type: string
  samples: {name: string; labels: Record<string, string>; value: number}[]
}

/** A strict reader of the text exposition format 0.0.4: rejects any line it does not understand. */
function parseExposition(text: string): Map<string, Family> {
  expect(text.endsWith('\n'), 'ends with a newline').to.equal(true)
  const families = new Map<string, Family>()
  let current: string | undefined
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line)
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (help) {
      expect(families.has(help[1]!), `HELP for ${help[1]} appears once`).to.equal(false)
      families.set(help[1]!, {help: help[2]!, type: '', samples: []})
      current = help[1]
      continue
    }
    if (type) {
      expect(type[1], 'TYPE follows its HELP').to.equal(current)
      families.get(type[1]!)!.type = type[2]!
      continue
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    expect(sample, `sample line: ${JSON.stringify(line)}`).to.not.equal(null)
    const [, name, labelText, valueText] = sample!
    expect(current, `sample ${name} before any HELP`).to.not.equal(undefined)
    const family = families.get(current!)!
    const allowed = family.type === 'histogram' ? [`${current}_bucket`, `${current}_sum`, `${current}_count`] : [current]
    expect(allowed, `sample ${name} belongs to ${current}`).to.include(name)
    family.samples.push({name: name!, labels: parseLabels(labelText ?? ''), value: parseValue(valueText!)})
  }
  for (const [name, family] of families) expect(family.type, `${name} has a TYPE`).to.not.equal('')
  return families
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {}
  const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/y
  while (pair.lastIndex < text.length) {
    const match = pair.exec(text)
    expect(match, `labels: ${text}`).to.not.equal(null)
    labels[match![1]!] = match![2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c))
  }
  return labels
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  expect(text).to.match(/^-?\d+(\.\d+)?(e[+-]?\d+)?$/)
  return Number(text)
}

let names = 0
const verdict = (valid: boolean, configured: string[], notLocal: string[] = []): MappingVerdict => ({
  namespace: 'default',
  name: `m${++names}`,
  valid,
  invalid: valid ? 'no' : 'bad',
  configuredAddresses: Object.fromEntries(configured.map((a) => [a, {podIPs: []}])),
  notLocalAddresses: notLocal as MappingVerdict['notLocalAddresses'],
})

describe('metrics exposition', () => {
  it('exports every smartnat metric with HELP and TYPE before any sync', () => {
    const families = parseExposition(new SmartnatMetrics().render())
    expect(Object.fromEntries([...families].map(([name, f]) => [name, f.type]))).to.deep.equal({
      smartnat_sync_duration_seconds: 'histogram',
      smartnat_last_successful_sync_timestamp_seconds: 'gauge',
      smartnat_mappings: 'gauge',
      smartnat_rules_programmed: 'gauge',
      smartnat_api_errors_total: 'counter',
      smartnat_sync_errors_total: 'counter',
      smartnat_kernel_writes_total: 'counter',
      smartnat_status_writeback_failures_total: 'counter',
      smartnat_removal_held: 'gauge',
      smartnat_removals_held_total: 'counter',
      smartnat_manifest_read_errors_total: 'counter',
      smartnat_conntrack_cleanup_failures_total: 'counter',
      smartnat_kernel_reads_given_way_total: 'counter',
    })
    expect(families.get('smartnat_status_writeback_failures_total')!.samples.map((s) => [s.labels.reason, s.value])).to.deep.equal([
      ['error', 0],
      ['timeout', 0],
    ])
    expect(families.get('smartnat_mappings')!.samples.map((s) => [s.labels.state, s.value])).to.deep.equal([
      ['configured', 0],
      ['deleting', 0],
      ['faulty', 0],
      ['invalid', 0],
      ['not_local', 0],
    ])
    expect(families.get('smartnat_last_successful_sync_timestamp_seconds')!.samples).to.deep.equal([
      {name: 'smartnat_last_successful_sync_timestamp_seconds', labels: {}, value: 0},
    ])
  })

  it('records syncs: cumulative buckets, +Inf equal to the count, sum, verdict counts and writes', () => {
    const metrics = new SmartnatMetrics()
    const durations = [0.003, 0.02, 0.02, 0.7, 45]
    const written = {sets: 2, chains: 3, rules: 10, routes: 1}
    for (const seconds of durations.slice(0, 4)) {
      metrics.syncSucceeded({
        seconds,
        finishedAt: 1_700_000_123_456,
        verdicts: [
          verdict(true, ['198.18.0.10']),
          verdict(true, ['198.18.0.11'], ['198.18.9.9']),
          verdict(false, []),
          {...verdict(false, []), deleting: '2026-01-02T03:04:05Z'},
          verdict(true, [], ['198.18.9.9']),
          {...verdict(true, ['198.18.0.12']), faults: {'198.18.2.10': 'interface eth2: --gw-offset 1 gives 198.18.2.10, which is this host\'s own address'}},
        ],
        rulesProgrammed: 17,
        written,
      })
    }
    metrics.syncFailed(durations[4]!)
    metrics.apiError({kind: 'Service', verb: 'list', code: 'timeout'})
    metrics.apiError({kind: 'Service', verb: 'list', code: 'timeout'})
    metrics.apiError({kind: 'Mapping', verb: 'patch', code: '409'})
    const families = parseExposition(metrics.render())

    const histogram = families.get('smartnat_sync_duration_seconds')!.samples
    const buckets = histogram.filter((s) => s.name.endsWith('_bucket'))
    const bounds = buckets.map((b) => parseValue(b.labels.le!))
    expect(bounds.at(-1)).to.equal(Infinity)
    for (let i = 1; i < buckets.length; i++) {
      expect(bounds[i]!, 'le increases').to.be.greaterThan(bounds[i - 1]!)
      expect(buckets[i]!.value, 'buckets are cumulative').to.be.at.least(buckets[i - 1]!.value)
    }
    for (const bucket of buckets) {
      expect(bucket.value, `le=${bucket.labels.le}`).to.equal(durations.filter((d) => d <= parseValue(bucket.labels.le!)).length)
    }
    const count = histogram.find((s) => s.name === 'smartnat_sync_duration_seconds_count')!.value
    const sum = histogram.find((s) => s.name === 'smartnat_sync_duration_seconds_sum')!.value
    expect(buckets.at(-1)!.value).to.equal(count)
    expect(count).to.equal(5)
    expect(sum).to.be.closeTo(45.743, 1e-9)

    const value = (name: string, labels: Record<string, string> = {}) =>
      families.get(name)!.samples.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels))?.value
    expect(value('smartnat_last_successful_sync_timestamp_seconds')).to.equal(1_700_000_123.456)
    expect(value('smartnat_mappings', {state: 'configured'})).to.equal(2)
    expect(value('smartnat_mappings', {state: 'invalid'})).to.equal(1)
    expect(value('smartnat_mappings', {state: 'not_local'})).to.equal(1)
    expect(value('smartnat_mappings', {state: 'faulty'})).to.equal(1)
    expect(value('smartnat_mappings', {state: 'deleting'})).to.equal(1)
    expect(value('smartnat_rules_programmed')).to.equal(17)
    expect(value('smartnat_sync_errors_total')).to.equal(1)
    expect(value('smartnat_api_errors_total', {kind: 'Service', verb: 'list', code: 'timeout'})).to.equal(2)
    expect(value('smartnat_api_errors_total', {kind: 'Mapping', verb: 'patch', code: '409'})).to.equal(1)
    expect(value('smartnat_kernel_writes_total', {kind: 'rules'})).to.equal(40)
    expect(value('smartnat_kernel_writes_total', {kind: 'routes'})).to.equal(4)
  })

  it('records held mass removals until a sync applies, and failed manifest reads', () => {
    const metrics = new SmartnatMetrics()
    metrics.removalHeld(17)
    metrics.removalHeld(15)
    metrics.manifestReadError()
    expect([metrics.heldRemoval.get(), metrics.heldPasses.get(), metrics.manifestReadErrors.get()]).to.deep.equal([15, 2, 1])
    metrics.syncSucceeded({seconds: 0.1, finishedAt: 1_700_000_000_000, verdicts: [], rulesProgrammed: 0, written: {sets: 0, chains: 0, rules: 0, routes: 0}})
    expect([metrics.heldRemoval.get(), metrics.heldPasses.get()]).to.deep.equal([0, 2])
  })

  it('counts the kernel reads that gave way to a change', () => {
    const metrics = new SmartnatMetrics()
    metrics.readGaveWay()
    metrics.readGaveWay()
    expect(metrics.readsGivenWay.get()).to.equal(2)
    const family = parseExposition(metrics.render()).get('smartnat_kernel_reads_given_way_total')!
    expect(family.type).to.equal('counter')
    expect(family.samples.map((sample) => sample.value)).to.deep.equal([2])
  })

  it('escapes label values and HELP text as the format requires', () => {
    const gauge = new Gauge('x_info', 'Line one\nback\\slash')
    gauge.set(1, {path: 'C:\\dir "quoted"\nnext'})
    const lines = gauge.render()
    expect(lines).to.deep.equal(['# HELP x_info Line one\\nback\\\\slash', '# TYPE x_info gauge', 'x_info{path="C:\\\\dir \\"quoted\\"\\nnext"} 1'])
    const families = parseExposition(`${lines.join('\n')}\n`)
    expect(families.get('x_info')!.samples[0]!.labels).to.deep.equal({path: 'C:\\dir "quoted"\nnext'})
  })

  it('counters refuse to go down; histogram buckets must increase', () => {
    expect(() => new Counter('c_total', 'c').inc(-1)).to.throw('counter c_total: cannot add -1')
    expect(() => new Histogram('h', 'h', [1, 1])).to.throw('histogram h: buckets must increase')
  })

  it('spells special values the way Prometheus reads them', () => {
    expect([Infinity, -Infinity, NaN, 0.25, 3].map(formatNumber)).to.deep.equal(['+Inf', '-Inf', 'NaN', '0.25', '3'])
  })
})
