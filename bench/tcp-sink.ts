/**
 * A TCP server that accepts connections and drops them at once; exits by itself after a lifetime.
 *
 *   node --import tsx bench/tcp-sink.ts ADDRESS PORT LIFETIME_SECONDS
 */
import {createServer} from 'node:net'

const [host, portText, lifetimeText] = process.argv.slice(2)
const server = createServer((socket) => {
  socket.on('error', () => {})
  socket.destroy()
})
server.listen({host, port: Number(portText), backlog: 4096}, () => console.log('listening'))
setTimeout(() => process.exit(0), Number(lifetimeText) * 1000).unref()
