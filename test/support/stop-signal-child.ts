/**
 * Child process of signals.test.ts: while a child process of its own runs (execa hooks signal-exit
 * then, as listr2's terminal renderer does), it sends itself SIGTERM, waits for stopSignal, and
 * exits normally, saying so.
 */
import {setTimeout as sleep} from 'node:timers/promises'
import {execa} from 'execa'
import {stopSignal} from '../../src/cli/signals.js'

const stop = stopSignal()
const sleeper = execa('sleep', ['10'])
sleeper.catch(() => undefined)
await sleep(200)
process.kill(process.pid, 'SIGTERM')
const signal = await stop.received
// Shutting down takes a while, as a daemon's does; a second signal meanwhile changes nothing.
await sleep(200)
process.kill(process.pid, 'SIGINT')
await sleep(200)
sleeper.kill()
stop.dispose()
console.log(`stopped by ${signal}`)
