// One request to an echo server (echo-server.mjs), on a new socket and with its own deadline: a TCP
// connection that sends "ping\n" and reads one answer line, or a UDP datagram on a new connected
// socket and its answer. Never rejects; resolves to
//   {ok: true, line: "pod=198.19.200.11 proto=tcp port=8080 from=198.18.4.1"}
//   {ok: false, error: "timeout"|"refused"|"unreachable"|"reset"|"error", message: "..."}
import {createSocket} from 'node:dgram'
import {connect} from 'node:net'

/** protocol: 'tcp' | 'udp'; localAddress: optional source address. */
export async function echoRequest({protocol, host, port, localAddress, timeoutMs}) {
  let close = () => {}
  const request = new Promise((resolve) => {
    if (protocol === 'tcp') {
      const socket = connect({host, port, ...(localAddress ? {localAddress} : {})})
      close = () => socket.destroy()
      let buffered = ''
      socket.setEncoding('utf8')
      socket.on('connect', () => socket.write('ping\n'))
      socket.on('data', (chunk) => {
        buffered += chunk
        const newline = buffered.indexOf('\n')
        if (newline !== -1) resolve({ok: true, line: buffered.slice(0, newline)})
      })
      socket.on('error', (error) => resolve(failure(error)))
      socket.on('close', () => resolve({ok: false, error: 'reset', message: 'connection closed without an answer'}))
    } else {
      const socket = createSocket('udp4')
      close = () => socket.close()
      socket.on('error', (error) => resolve(failure(error)))
      socket.on('message', (message) => resolve({ok: true, line: message.toString('utf8').replace(/\n$/, '')}))
      // A connected socket turns ICMP errors into error events, so "refused" and "unreachable" are reported.
      socket.bind({port: 0, ...(localAddress ? {address: localAddress} : {})}, () => socket.connect(port, host, () => socket.send('ping\n')))
    }
  })
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ok: false, error: 'timeout', message: `no answer within ${timeoutMs} ms`}), timeoutMs)
  })
  const result = await Promise.race([request, timeout])
  clearTimeout(timer)
  try {
    close()
  } catch {
    // already closed
  }
  return result
}

function failure(error) {
  const kinds = {ECONNREFUSED: 'refused', EHOSTUNREACH: 'unreachable', ENETUNREACH: 'unreachable', ECONNRESET: 'reset'}
  return {ok: false, error: kinds[error.code] ?? 'error', message: `${error.code ?? ''} ${error.message}`.trim()}
}
