// One-shot TCP/UDP client with a hard deadline; prints one JSON result per request, one per line:
//   {"ok":true,"line":"pod=198.19.200.11 proto=tcp port=8080 from=198.18.4.1"}
//   {"ok":false,"error":"timeout"|"refused"|"unreachable"|"reset"|"error","message":"..."}
// Usage: node echo-client.mjs tcp|udp SRC_IP|- DST_IP PORT TIMEOUT_MS COUNT
// Every request uses a new socket, hence a new source port and a new conntrack entry.
import {echoRequest} from './echo-probe.mjs'

const [proto, source, host, portText, timeoutText, countText] = process.argv.slice(2)
const port = Number(portText)
const timeoutMs = Number(timeoutText)
const count = Number(countText ?? '1')
if (!['tcp', 'udp'].includes(proto) || !host || !(port > 0) || !(timeoutMs > 0) || !(count >= 1)) {
  process.stderr.write('usage: echo-client.mjs tcp|udp SRC_IP|- DST_IP PORT TIMEOUT_MS COUNT\n')
  process.exit(2)
}
const localAddress = source === '-' ? undefined : source

for (let i = 0; i < count; i++) {
  const result = await echoRequest({protocol: proto, host, port, localAddress, timeoutMs})
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
process.exit(0)
