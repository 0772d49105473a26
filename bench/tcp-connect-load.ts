/**
 * Opens as many new TCP connections as it can for a bounded time, `concurrency` at a time, from
 * `source` to `target:port`, resetting each one as soon as it is established (so neither side keeps
 * TIME_WAIT state). Prints `{"connected":N,"failed":N,"seconds":S}`.
 *
 *   node --import tsx bench/tcp-connect-load.ts SOURCE TARGET PORT SECONDS CONCURRENCY
 */
import {connect} from 'node:net'

const [source, target, portText, secondsText, concurrencyText] = process.argv.slice(2)
const seconds = Number(secondsText)
const concurrency = Number(concurrencyText)
if (!source || !target || !(seconds > 0 && seconds <= 30) || !(concurrency >= 1 && concurrency <= 1024)) {
  throw new Error('usage: tcp-connect-load.ts SOURCE TARGET PORT SECONDS(<=30) CONCURRENCY(<=1024)')
}
let connected = 0
let failed = 0
let open = 0
const started = performance.now()
const deadline = started + seconds * 1000

function next(): void {
  if (performance.now() >= deadline) {
    if (open === 0) finish()
    return
  }
  open++
  const socket = connect({host: target, port: Number(portText), localAddress: source})
  socket.setTimeout(2000, () => socket.destroy(new Error('timeout')))
  socket.once('connect', () => {
    connected++
    socket.resetAndDestroy()
  })
  socket.once('error', () => {
    failed++
  })
  socket.once('close', () => {
    open--
    next()
  })
}

let done = false
function finish(): void {
  if (done) return
  done = true
  console.log(JSON.stringify({connected, failed, seconds: (performance.now() - started) / 1000}))
}

for (let i = 0; i < concurrency; i++) next()
// A hard stop in case a connection hangs past the per-socket timeout.
setTimeout(() => {
  finish()
  process.exit(0)
}, (seconds + 5) * 1000).unref()
