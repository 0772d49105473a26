/**
 * Probes addresses with one TCP connection each, all at once: every line `PORT ADDRESS...` on stdin
 * answers with one line `{"connected":N,"failed":["ADDRESS",...]}`, each connection reset once
 * established and given up after 300 ms (in a namespace lab a connection that works takes well under a millisecond). Exits when stdin closes, or after LIFETIME seconds.
 *
 *   node --import tsx bench/tcp-probe.ts LIFETIME
 */
import {connect} from 'node:net'
import {createInterface} from 'node:readline'

const lifetime = Number(process.argv[2])
if (!(lifetime > 0 && lifetime <= 3600)) throw new Error('usage: tcp-probe.ts LIFETIME(<=3600)')

function probe(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({host: address, port})
    socket.setTimeout(300, () => socket.destroy(new Error('timeout')))
    socket.once('connect', () => {
      socket.resetAndDestroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

// A hard stop, whatever the controlling process does.
setTimeout(() => process.exit(0), lifetime * 1000).unref()
for await (const line of createInterface({input: process.stdin})) {
  const [portText, ...addresses] = line.trim().split(/\s+/)
  const port = Number(portText)
  if (!(Number.isInteger(port) && port > 0 && port < 65536) || addresses.length === 0 || addresses.length > 1000) throw new Error(`probe ${JSON.stringify(line)}: PORT ADDRESS... (at most 1000)`)
  const results = await Promise.all(addresses.map((address) => probe(address, port)))
  console.log(JSON.stringify({connected: results.filter(Boolean).length, failed: addresses.filter((_, i) => !results[i])}))
}
