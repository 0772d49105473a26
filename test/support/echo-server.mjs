// Answers every TCP line and every UDP datagram with one line naming itself and the peer it saw:
//   "<id> proto=tcp port=8080 from=198.18.4.1"
// Usage: node echo-server.mjs --id pod=198.19.200.11 --lifetime 300 --listen tcp:198.19.200.11:8080 --listen udp:198.19.200.11:5353
// Prints "ready" once every socket listens, and exits by itself after --lifetime seconds.
import {createSocket} from 'node:dgram'
import {createServer} from 'node:net'

const args = process.argv.slice(2)
let id = 'echo'
let lifetimeSeconds = 60
const listens = []
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]]
  if (value === undefined) fail(`${flag} needs a value`)
  if (flag === '--id') id = value
  else if (flag === '--lifetime') lifetimeSeconds = Number(value)
  else if (flag === '--listen') {
    const match = /^(tcp|udp):([\d.]+):(\d+)$/.exec(value)
    if (!match) fail(`--listen ${value}: expected tcp|udp:IP:PORT`)
    listens.push({proto: match[1], ip: match[2], port: Number(match[3])})
  } else fail(`unknown flag ${flag}`)
}
if (!(lifetimeSeconds > 0)) fail('--lifetime must be a positive number of seconds')
if (listens.length === 0) fail('nothing to listen on')

setTimeout(() => process.exit(0), lifetimeSeconds * 1000)

const answer = (proto, port, peer) => `${id} proto=${proto} port=${port} from=${peer}\n`

await Promise.all(listens.map((l) => (l.proto === 'tcp' ? listenTcp(l) : listenUdp(l))))
process.stdout.write('ready\n')

function listenTcp({ip, port}) {
  const server = createServer((socket) => {
    socket.setEncoding('utf8')
    socket.on('error', () => socket.destroy())
    let buffered = ''
    socket.on('data', (chunk) => {
      buffered += chunk
      for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
        buffered = buffered.slice(newline + 1)
        socket.write(answer('tcp', port, socket.remoteAddress))
      }
    })
    socket.on('end', () => socket.end())
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({host: ip, port}, resolve)
  })
}

function listenUdp({ip, port}) {
  const socket = createSocket('udp4')
  socket.on('message', (_message, peer) => socket.send(answer('udp', port, peer.address), peer.port, peer.address))
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, ip, resolve)
  })
}

function fail(message) {
  process.stderr.write(`echo-server: ${message}\n`)
  process.exit(2)
}
