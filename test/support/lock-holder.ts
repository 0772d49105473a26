/**
 * Child process of the lock tests: `lock-holder.ts PATH PURPOSE hold` takes smartnat's lock, says
 * "held PID" and keeps it until it is killed or its stdin closes; `lock-holder.ts PATH PURPOSE journal
 * FILE ROUNDS` says "ready", waits for a line on stdin, then takes the lock ROUNDS times, writing
 * "in PID" and "out PID" to FILE around a pause inside, so that two holders at once would interleave;
 * `lock-holder.ts PATH PURPOSE drop` takes the lock, keeps no reference to it, has the garbage
 * collector run, says "held PID" and waits like `hold`.
 * Either way it gives up after a minute, so that no test leaves it behind.
 */
import {appendFileSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'
import {acquireLock, withLock} from '../../src/lib/host/lock.js'

const [path, purpose, mode, journal, rounds] = process.argv.slice(2)
if (!path || !purpose || (mode !== 'hold' && mode !== 'journal' && mode !== 'drop')) throw new Error('usage: lock-holder.ts PATH PURPOSE hold | drop | journal FILE ROUNDS')
setTimeout(() => process.exit(3), 60_000).unref()
const stdinClosed = new Promise((resolve) => process.stdin.once('end', resolve).once('close', resolve))
const firstLine = new Promise((resolve) => process.stdin.once('data', resolve))
process.stdin.resume()

if (mode === 'hold') {
  const lock = await acquireLock({path, purpose})
  process.stdout.write(`held ${process.pid}\n`)
  await stdinClosed
  await lock.release()
  process.exit(0)
} else if (mode === 'drop') {
  await acquireLock({path, purpose})
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  // A FileHandle nobody references is closed when collected; give the collector every chance.
  for (let i = 0; i < 5; i++) {
    gc()
    await sleep(20)
  }
  process.stdout.write(`held ${process.pid}\n`)
  await stdinClosed
  process.exit(0)
} else {
  process.stdout.write('ready\n')
  await firstLine
  for (let i = 0; i < Number(rounds); i++) {
    await withLock({path, purpose, waitMs: 30_000}, async () => {
      appendFileSync(journal!, `in ${process.pid}\n`)
      await sleep(20)
      appendFileSync(journal!, `out ${process.pid}\n`)
    })
  }
  process.exit(0)
}
