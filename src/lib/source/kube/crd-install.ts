/** The command that installs smartnat's Mapping CRD; apart from crd.ts, so that writing a status loads no Kubernetes client to name it. */
import {existsSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

// Where each installation keeps the CRD, relative to a directory above the code: the package or
// repository root (crds/), or /usr for the .deb, whose executable is /usr/bin/smartnat.
const CRD_PLACES = [['crds', 'mapping.yaml'], ['share', 'smartnat', 'crds', 'mapping.yaml']]

/**
 * The CRD file shipped with the installation whose code is in `start`, looked for upwards, since a
 * bundled build or the single executable sits at another depth than the sources.
 */
export function shippedCrd(start = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = start
  for (let depth = 0; depth < 6; depth++) {
    const file = CRD_PLACES.map((place) => join(dir, ...place)).find((candidate) => existsSync(candidate))
    if (file) return file
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
