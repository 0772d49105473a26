/** Where the release artifacts come from and go (`npm run package`, scripts/package/). */
import {readFileSync} from 'node:fs'
import {arch} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const RELEASE_DIR = join(ROOT, 'dist-release')
/** Debian's and OCI's name for this machine's architecture (the executable is built for it). */
export const DEB_ARCH = arch() === 'x64' ? 'amd64' : arch()

/** The single executable `npm run build:sea` made. */
export function executablePath(): string {
  return join(ROOT, 'dist-sea', `smartnat-linux-${arch()}`)
}

/** package.json's version. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {version: string}).version
}
