/** A sync's steps shown as they run: listr2's live list on a terminal, one plain line per step elsewhere. */
import type {SyncStep} from '../lib/app/sync.js'

export interface ProgressOptions {
  /** --json: stdout carries only the result, so no progress at all. */
  quiet: boolean
  /** Writes one line to stdout. */
  log: (line: string) => void
}

/** Runs `steps` in order, showing each; the first failure stops the rest and is thrown. */
export async function runWithProgress(steps: SyncStep[], options: ProgressOptions): Promise<void> {
  if (!options.quiet && process.stdout.isTTY) {
    // listr2 takes tens of milliseconds to import; only a terminal shows its list.
    const {Listr} = await import('listr2')
    await new Listr(steps.map((step) => ({title: step.title, task: () => step.run()})), {exitOnError: true}).run()
    return
  }
  for (const step of steps) {
    if (!options.quiet) options.log(`- ${step.title}`)
    await step.run()
  }
}
