// Probes NATed endpoints without pause: every --interval-ms, for each target, a new TCP connection
// ("ping\n" -> one answer line) or a UDP exchange on a new socket, each with its own deadline, so a
// hung request never delays the next one. Prints "ready" once probing, then one JSON line per failure:
//   {"at":1712345678901,"target":"tcp:198.18.0.10:8080","error":"timeout","message":"no answer within 1000 ms"}
// and, when stdin ends (the test is done or gone) or a bound is reached, one summary line:
//   {"summary":{"tcp:198.18.0.10:8080":{"attempts":412,"failures":0}}}
// An answer that does not start with --expect (default "pod=") is a failure too.
// Usage: node traffic-monitor.mjs --source IP --interval-ms 50 --timeout-ms 1000 --max-seconds 300 --max-attempts 10000
//          --target tcp:IP:PORT [--target udp:IP:PORT ...]
import {echoRequest} from './echo-probe.mjs'

const options = {source: undefined, intervalMs: 50, timeoutMs: 1000, maxSeconds: 300, maxAttempts: 10_000, expect: 'pod=', targets: []}
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]]
  if (value === undefined) fail(`${flag} needs a value`)
  if (flag === '--source') options.source = value
  else if (flag === '--interval-ms') options.intervalMs = Number(value)
  else if (flag === '--timeout-ms') options.timeoutMs = Number(value)
  else if (flag === '--max-seconds') options.maxSeconds = Number(value)
  else if (flag === '--max-attempts') options.maxAttempts = Number(value)
  else if (flag === '--expect') options.expect = value
  else if (flag === '--target') {
    const match = /^(tcp|udp):([\d.]+):(\d+)$/.exec(value)
    if (!match) fail(`--target ${value}: expected tcp|udp:IP:PORT`)
    options.targets.push({name: value, protocol: match[1], ip: match[2], port: Number(match[3])})
  } else fail(`unknown flag ${flag}`)
}
for (const key of ['intervalMs', 'timeoutMs', 'maxSeconds', 'maxAttempts']) if (!(options[key] > 0)) fail(`--${key} must be a positive number`)
if (options.targets.length === 0) fail('no --target')

const stats = Object.fromEntries(options.targets.map((t) => [t.name, {attempts: 0, failures: 0}]))
const inFlight = new Set()
let stopping = false

const ticker = setInterval(tick, options.intervalMs)
const deadline = setTimeout(finish, options.maxSeconds * 1000)
process.stdin.on('end', finish)
process.stdin.on('error', finish)
process.stdin.resume()
process.stdout.write('ready\n')
tick()

function tick() {
  if (stopping) return
  for (const target of options.targets) {
    const counts = stats[target.name]
    if (counts.attempts >= options.maxAttempts) return finish()
    counts.attempts++
    const request = probe(target).then((result) => {
      inFlight.delete(request)
      if (result.ok && result.line.startsWith(options.expect)) return
      counts.failures++
      const problem = result.ok ? {error: 'wrong answer', message: result.line} : {error: result.error, message: result.message}
      process.stdout.write(`${JSON.stringify({at: result.startedAt, target: target.name, ...problem})}\n`)
    })
    inFlight.add(request)
  }
}

// Requests already sent are allowed their deadline, so a failure that is under way is still counted.
async function finish() {
  if (stopping) return
  stopping = true
  clearInterval(ticker)
  clearTimeout(deadline)
  await Promise.all(inFlight)
  process.stdout.write(`${JSON.stringify({summary: stats})}\n`, () => process.exit(0))
}

async function probe(target) {
  const startedAt = Date.now()
  const result = await echoRequest({protocol: target.protocol, host: target.ip, port: target.port, localAddress: options.source, timeoutMs: options.timeoutMs})
  return {...result, startedAt}
}

function fail(message) {
  process.stderr.write(`traffic-monitor: ${message}\n`)
  process.exit(2)
}
