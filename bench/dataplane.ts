/**
 * Data-plane benchmark (root): new TCP connections per second through the host's DNAT to the
 * last-added Mapping, with 10,000 Mappings loaded vs 1, for both backends with and without --snat,
 * and for the original controller's layout (one rule with its own set match per Mapping in a
 * single chain).
 *
 *   client ns: c0 198.18.0.1/24 (the host's gateway), source 198.18.X.2/32 on lo
 *      |
 *   host ns:   ext1 198.18.0.10..109/24, cl0 198.18.4.1/24, ip_forward=1
 *      |
 *   node ns:   n0 198.18.4.2/24, the Service VIP /32 on lo, a TCP sink on VIP:servicePort
 *
 * The machine is small and shared, so the two sizes are measured side by side: both topologies
 * stand at once, and short bursts alternate between them (1, 10,000, 10,000, 1, ...). Each pair of
 * neighbouring bursts gives one ratio, which slow changes in the machine's load hardly move; the
 * ratios' median and range are reported. Rates still follow whatever else the machine runs, so the
 * targets are judged on CPU time per connection instead: the load generator's, the sink's and the
 * softirq threads' (packets are NATed in the context of the process that sends them), which other
 * work on the machine does not change. Its ratio is the rate ratio a machine doing nothing else
 * would show.
 *
 *   npm run bench:dataplane [-- --rounds N --pairs N --seconds S --only TEXT --first]
 *
 * --first measures the first-added Mapping instead, found after the fewest rules: the gap to the
 * last-added one is what walking rules costs.
 */
import {parseArgs} from 'node:util'
import {dataplaneTargets, printDataplane, runDataplane, type Config} from './dataplane-rig.js'
import {runKernelBenchmark} from './netns.js'
import {printTargets} from './report.js'

const CONFIGS: Config[] = [
  {label: 'smartnat iptables', layout: 'iptables', snat: false, target: 0.8},
  {label: 'smartnat iptables --snat', layout: 'iptables', snat: true, target: 0.8},
  {label: 'smartnat nftables', layout: 'nftables', snat: false, target: 0.95},
  {label: 'smartnat nftables --snat', layout: 'nftables', snat: true, target: 0.95},
  {label: 'original layout', layout: 'original', snat: false},
]

async function main(): Promise<boolean> {
  const {values} = parseArgs({
    options: {
      rounds: {type: 'string', default: '2'},
      pairs: {type: 'string', default: '5'},
      seconds: {type: 'string', default: '2'},
      only: {type: 'string'},
      first: {type: 'boolean', default: false},
    },
  })
  const rounds = Number(values.rounds)
  const pairs = Number(values.pairs)
  const seconds = Number(values.seconds)
  if (!(rounds >= 1 && rounds <= 10 && pairs >= 1 && pairs <= 20 && seconds > 0 && seconds <= 10)) throw new Error('--rounds 1..10, --pairs 1..20, --seconds 0..10')
  const configs = CONFIGS.filter((c) => values.only === undefined || c.label.includes(values.only))
  const options = {rounds, pairs, seconds, first: values.first, count: 10_000}
  const rows = printDataplane(await runDataplane(configs, options), options)
  const original = rows.find((r) => r.config.layout === 'original')
  const iptables = rows.find((r) => r.config.layout === 'iptables' && !r.config.snat)
  if (original && iptables) {
    console.log(`smartnat iptables / original layout at 10,000: ${(iptables.many / original.many).toFixed(1)}x`)
  }
  return printTargets(dataplaneTargets(rows, options.count))
}

await runKernelBenchmark(() => main())
