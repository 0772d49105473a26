/** What runner tests ask of the processes they start: how a run failed, and whether a process is still there. */
import {expect} from 'chai'
import {CommandError} from '../../src/lib/host/runner.js'

/** The CommandError `promise` rejects with; fails the test when it resolves or rejects with something else. */
export async function commandError(promise: Promise<unknown>): Promise<CommandError> {
  try {
    await promise
  } catch (error) {
    expect(error).to.be.instanceOf(CommandError)
    return error as CommandError
  }
  throw new Error('expected the command to fail')
}

/** Whether a process with this pid exists (signal 0 checks without sending). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
