/**
 * Opens as many new TCP connections as it can, `concurrency` at a time, from `source` to
 * `target:port`, resetting each one as soon as it is established (so neither side keeps TIME_WAIT
 * state). It stays up between bursts, so a benchmark can alternate two targets without paying a
 * process start each time: every line `SECONDS` on stdin runs one burst and answers with one line
 * `{"connected":N,"failed":N,"seconds":S}`. It exits when stdin closes, or after LIFETIME seconds.
 *
 *   node --import tsx bench/tcp-connect-load.ts SOURCE TARGET PORT CONCURRENCY LIFETIME
 */
import {connect} from 'node:net'
import {createInterface} from 'node:readline'

const [source, target, portText, concurrencyText, lifetimeText] = process.argv.slice(2)
const concurrency = Number(concurrencyText)
const lifetime = Number(lifetimeText)
if (!source || !target || !(concurrency >= 1 && concurrency <= 1024) || !(lifetime > 0 && lifetime <= 3600)) {
  throw new Error('usage: tcp-connect-load.ts SOURCE TARGET PORT CONCURRENCY(<=1024) LIFETIME(<=3600)')
}

interface Burst {
  connected: number
  failed: number
  seconds: number
}

/** One burst: connections until `seconds` have passed, then the in-flight ones are let finish. */
function burst(seconds: number): Promise<Burst> {
  let connected = 0
  let failed = 0
  let open = 0
  const started = performance.now()
  const deadline = started + seconds * 1000
  return new Promise((resolve) => {
    const next = (): void => {
      if (performance.now() >= deadline) {
        if (open === 0) resolve({connected, failed, seconds: (performance.now() - started) / 1000})
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
    for (let i = 0; i < concurrency; i++) next()
  })
}

// A hard stop, whatever the controlling process does.
setTimeout(() => process.exit(0), lifetime * 1000).unref()
for await (const line of createInterface({input: process.stdin})) {
  const seconds = Number(line)
  if (!(seconds > 0 && seconds <= 30)) throw new Error(`burst of ${JSON.stringify(line)} seconds: must be 0..30`)
  console.log(JSON.stringify(await burst(seconds)))
}
