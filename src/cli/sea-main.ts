/**
 * The single executable's entry (`scripts/bundle.ts --sea`): bin/run.js's CLI, reading the package's
 * files (package.json, the manifest, the rendered help) from what the build put inside it, not from disk.
 */
import {PLUGINS, RENDERED_HELP} from 'smartnat-sea:embedded'

import {answerWithoutOclif} from './fast-start.js'

async function main(): Promise<void> {
  const root = PLUGINS[0]!.pjson
  if (answerWithoutOclif(process.argv.slice(2), {packageInfo: () => ({name: root.name, version: root.version}), renderedHelp: () => RENDERED_HELP})) return
  // Imported only now, as bin/run.js does: the bundle evaluates a module when it is first imported.
  const {runEmbeddedOclif} = await import('./sea-oclif.js')
  await runEmbeddedOclif(PLUGINS)
}

void main()
