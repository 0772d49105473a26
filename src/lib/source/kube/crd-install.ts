/** The command that installs smartnat's Mapping CRD; apart from crd.ts, so that writing a status loads no Kubernetes client to name it. */
import {existsSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/**
 * The CRD file shipped with this installation: `crds/mapping.yaml` at the root of the package or
 * repository this code runs from, looked for upwards, since a bundled build sits at another depth than the sources.
 */
function shippedCrd(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let depth = 0; depth < 6; depth++) {
    const file = join(dir, 'crds', 'mapping.yaml')
    if (existsSync(file)) return file
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  return undefined
}

/** The command that installs smartnat's CRD over the Go controller's: the shipped file by its full path when it is there. */
export function crdInstallCommand(): string {
  return `kubectl apply -f ${shippedCrd() ?? 'crds/mapping.yaml'}`
}
