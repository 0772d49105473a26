/** A named stage of a sync, so a caller can show progress (listr2 on a TTY, plain lines otherwise). */
export interface SyncStep {
  title: string
  run(): Promise<void>
}
