// One-shot TCP/UDP client with a hard deadline; prints one JSON result per request, one per line:
//   {"ok":true,"line":"pod=198.19.200.11 proto=tcp port=8080 from=198.18.4.1"}
//   {"ok":false,"error":"timeout"|"refused"|"unreachable"|"reset"|"error","message":"..."}
// Usage: node echo-client.mjs tcp|udp SRC_IP|- DST_IP PORT TIMEOUT_MS COUNT
// Every request uses a new socket, hence a new source port and a new conntrack entry.
import {createSocket} from 'node:dgram'
import {connect} from 'node:net'

const [proto, source, host, portText, timeoutText, countText] = process.argv.slice(2)
const port = Number(portText)
const timeoutMs = Number(timeoutText)
const count = Number(countText ?? '1')
if (!['tcp', 'udp'].includes(proto) || !host || !(port > 0) || !(timeoutMs > 0) || !(count >= 1)) {
  process.stderr.write('usage: echo-client.mjs tcp|udp SRC_IP|- DST_IP PORT TIMEOUT_MS COUNT\n')
  process.exit(2)
}
const localAddress = source === '-' ? undefined : source
// Closes the socket of the request in flight once it is answered or timed out.
let cleanup = () => {}

for (let i = 0; i < count; i++) {
  const result = await withDeadline(proto === 'tcp' ? tcpRequest() : udpRequest())
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
process.exit(0)

function tcpRequest() {
  return new Promise((resolve) => {
    const socket = connect({host, port, ...(localAddress ? {localAddress} : {})})
    cleanup = () => socket.destroy()
    let buffered = ''
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write('ping\n'))
    socket.on('data', (chunk) => {
      buffered += chunk
      const newline = buffered.indexOf('\n')
      if (newline !== -1) {
        socket.destroy()
        resolve({ok: true, line: buffered.slice(0, newline)})
      }
    })
    socket.on('error', (error) => resolve(failure(error)))
    socket.on('close', () => resolve({ok: false, error: 'reset', message: 'connection closed without an answer'}))
  })
}

function udpRequest() {
  return new Promise((resolve) => {
    const socket = createSocket('udp4')
    cleanup = () => socket.close()
    socket.on('error', (error) => resolve(failure(error)))
    socket.on('message', (message) => resolve({ok: true, line: message.toString('utf8').replace(/\n$/, '')}))
    // A connected socket turns ICMP errors into error events, so "refused" and "unreachable" are reported.
    socket.bind({port: 0, ...(localAddress ? {address: localAddress} : {})}, () =>
      socket.connect(port, host, () => socket.send('ping\n')),
    )
  })
}

async function withDeadline(request) {
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ok: false, error: 'timeout', message: `no answer within ${timeoutMs} ms`}), timeoutMs)
  })
  const result = await Promise.race([request, timeout])
  clearTimeout(timer)
  try {
    cleanup()
  } catch {
    // already closed
  }
  return result
}

function failure(error) {
  const kinds = {ECONNREFUSED: 'refused', EHOSTUNREACH: 'unreachable', ENETUNREACH: 'unreachable', ECONNRESET: 'reset'}
  return {ok: false, error: kinds[error.code] ?? 'error', message: `${error.code ?? ''} ${error.message}`.trim()}
}
