/** oclif's side of the CLI's entry, in a module of its own so that the answers without oclif never load it. */
// execute alone, not @oclif/core's index: the command imports the rest when it runs.
import {execute} from '@oclif/core/execute'

/** Runs the command line through oclif, from the package root that holds the bundle. */
export async function runOclif(): Promise<void> {
  await execute({dir: import.meta.url})
}
