/** A named stage of a sync, so a caller can show progress (listr2 on a TTY, plain lines otherwise). */
export interface SyncStep {
  title: string
  run(): Promise<void>
}

/** Runs `steps` one after the other, silently; the first failure stops the rest and is thrown. */
export async function runInOrder(steps: readonly SyncStep[]): Promise<void> {
  for (const step of steps) await step.run()
}
