// One long-lived TCP connection or UDP flow (one socket on a fixed source address:port) to an echo
// server, asked on demand: every line on stdin sends "ping\n" on it and prints one JSON result,
//   {"ok":true,"line":"pod=198.19.200.11 proto=tcp port=8080 from=198.18.4.1"}
//   {"ok":false,"error":"timeout"|"refused"|"unreachable"|"reset"|"closed"|"error","message":"..."}
// Usage: node held-connection.mjs tcp|udp SRC_IP SRC_PORT DST_IP DST_PORT TIMEOUT_MS LIFETIME_SECONDS
// Prints "ready" once the TCP connection is up (at once for UDP); exits when stdin ends or after its lifetime.
import {createSocket} from 'node:dgram'
import {connect} from 'node:net'
import {createInterface} from 'node:readline'

const [proto, srcIp, srcPortText, dstIp, dstPortText, timeoutText, lifetimeText] = process.argv.slice(2)
const [srcPort, dstPort, timeoutMs, lifetimeSeconds] = [srcPortText, dstPortText, timeoutText, lifetimeText].map(Number)
if (!['tcp', 'udp'].includes(proto) || !srcIp || !dstIp || !(srcPort > 0) || !(dstPort > 0) || !(timeoutMs > 0) || !(lifetimeSeconds > 0)) {
  process.stderr.write('usage: held-connection.mjs tcp|udp SRC_IP SRC_PORT DST_IP DST_PORT TIMEOUT_MS LIFETIME_SECONDS\n')
  process.exit(2)
}
setTimeout(() => process.exit(0), lifetimeSeconds * 1000).unref()

const kinds = {ECONNREFUSED: 'refused', EHOSTUNREACH: 'unreachable', ENETUNREACH: 'unreachable', ECONNRESET: 'reset', EPIPE: 'reset'}
const failure = (error) => ({ok: false, error: kinds[error.code] ?? 'error', message: `${error.code ?? ''} ${error.message}`.trim()})

// What ended the connection, once it has ended: every later ask reports it.
let ended
// The ask waiting for its answer.
let pending
const settle = (result) => {
  const resolve = pending
  pending = undefined
  resolve?.(result)
}

let send
if (proto === 'tcp') {
  const socket = connect({host: dstIp, port: dstPort, localAddress: srcIp, localPort: srcPort})
  socket.setEncoding('utf8')
  let buffered = ''
  socket.on('data', (chunk) => {
    buffered += chunk
    for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
      settle({ok: true, line: buffered.slice(0, newline)})
      buffered = buffered.slice(newline + 1)
    }
  })
  socket.on('error', (error) => {
    ended ??= failure(error)
    settle(ended)
  })
  socket.on('close', () => {
    ended ??= {ok: false, error: 'closed', message: 'the connection was closed'}
    settle(ended)
  })
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  }).catch((error) => {
    process.stderr.write(`held-connection: cannot connect: ${error.message}\n`)
    process.exit(1)
  })
  send = () => socket.write('ping\n')
} else {
  const socket = createSocket('udp4')
  socket.on('message', (message) => settle({ok: true, line: message.toString('utf8').replace(/\n$/, '')}))
  socket.on('error', (error) => settle(failure(error)))
  await new Promise((resolve) => socket.bind(srcPort, srcIp, resolve))
  // Connected, the socket reports ICMP errors (port unreachable) as error events.
  await new Promise((resolve) => socket.connect(dstPort, dstIp, resolve))
  send = () => socket.send('ping\n')
}
process.stdout.write('ready\n')

for await (const _line of createInterface({input: process.stdin})) {
  const result = ended ?? (await new Promise((resolve) => {
    const timer = setTimeout(() => settle({ok: false, error: 'timeout', message: `no answer within ${timeoutMs} ms`}), timeoutMs)
    pending = (value) => {
      clearTimeout(timer)
      resolve(value)
    }
    send()
  }))
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
process.exit(0)
