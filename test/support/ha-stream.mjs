// One long-lived TCP connection or UDP flow that sends a numbered message every INTERVAL_MS and
// expects one answer per message (the echo server answers every line and every datagram), so a test
// can tell a failover that kept the connection from one that lost messages or reset it.
// Usage: node ha-stream.mjs tcp|udp DST_IP DST_PORT INTERVAL_MS MAX_SECONDS
// Prints "ready" once connected; when stdin ends or after MAX_SECONDS it stops sending, waits up to
// 2 s for the answers still due, and prints one JSON line:
//   {"sent":500,"received":500,"longestGapMs":212,"gapEndedAt":1712345678901,"lastAnswerAt":1712345679901,"error":null}
// longestGapMs is the longest time between two answers, gapEndedAt when it ended; error names what ended a TCP connection.
import {createSocket} from 'node:dgram'
import {connect} from 'node:net'

const [proto, dstIp, dstPortText, intervalText, maxText] = process.argv.slice(2)
const [dstPort, intervalMs, maxSeconds] = [dstPortText, intervalText, maxText].map(Number)
if (!['tcp', 'udp'].includes(proto) || !dstIp || !(dstPort > 0) || !(intervalMs > 0) || !(maxSeconds > 0)) {
  process.stderr.write('usage: ha-stream.mjs tcp|udp DST_IP DST_PORT INTERVAL_MS MAX_SECONDS\n')
  process.exit(2)
}

let sent = 0
let received = 0
let lastAnswer
let longestGapMs = 0
let gapEndedAt = null
let error = null
let ticker

const answered = () => {
  const now = Date.now()
  if (lastAnswer !== undefined && now - lastAnswer > longestGapMs) {
    longestGapMs = now - lastAnswer
    gapEndedAt = now
  }
  lastAnswer = now
  received++
}

let send
if (proto === 'tcp') {
  const socket = connect({host: dstIp, port: dstPort})
  socket.setEncoding('utf8')
  socket.setNoDelay(true)
  let buffered = ''
  socket.on('data', (chunk) => {
    buffered += chunk
    for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
      buffered = buffered.slice(newline + 1)
      answered()
    }
  })
  socket.on('error', (e) => (error ??= `${e.code ?? 'error'}: ${e.message}`))
  socket.on('close', () => {
    error ??= 'closed by the peer'
    clearInterval(ticker)
  })
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  send = (n) => socket.write(`ping seq=${n}\n`)
} else {
  const socket = createSocket('udp4')
  socket.on('message', answered)
  socket.on('error', () => {})
  await new Promise((resolve) => socket.connect(dstPort, dstIp, resolve))
  send = (n) => socket.send(`ping seq=${n}\n`)
}

process.stdout.write('ready\n')
ticker = setInterval(() => {
  if (error === null) send(++sent)
}, intervalMs)
const stopAt = setTimeout(finish, maxSeconds * 1000)
process.stdin.on('end', finish)
process.stdin.on('error', finish)
process.stdin.resume()

let finishing = false
async function finish() {
  if (finishing) return
  finishing = true
  clearInterval(ticker)
  clearTimeout(stopAt)
  const deadline = Date.now() + 2000
  while (received < sent && error === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  process.stdout.write(`${JSON.stringify({sent, received, longestGapMs, gapEndedAt, lastAnswerAt: lastAnswer ?? null, error})}\n`, () => process.exit(0))
}
