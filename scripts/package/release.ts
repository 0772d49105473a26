/**
 * `npm run package`: the single executable, the .deb and the OCI image (an OCI archive and a
 * docker-archive) in dist-release/, after `npm run build` and `npm run build:sea`.
 */
import {copyFileSync, mkdirSync} from 'node:fs'
import {arch} from 'node:os'
import {join} from 'node:path'

import {buildDeb} from './deb.js'
import {buildImage} from './image.js'
import {RELEASE_DIR, executablePath} from './paths.js'

mkdirSync(RELEASE_DIR, {recursive: true})
const executable = join(RELEASE_DIR, `smartnat-linux-${arch()}`)
copyFileSync(executablePath(), executable)
console.log(executable)
console.log(buildDeb())
const {ociArchive, dockerArchive, compressedBytes} = buildImage()
console.log(`${ociArchive}\n${dockerArchive}\nimage: ${(compressedBytes / 1e6).toFixed(1)} MB compressed (its layers and configuration as a registry stores them)`)
