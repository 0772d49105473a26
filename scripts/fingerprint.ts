/**
 * Fingerprints what `smartnat sync --dry-run` prints, as text and as --json, for the examples and a
 * synthetic cluster of 2,000 Mappings, on both backends, with and without --snat. A restructuring
 * that must not change behaviour prints the same lines before and after:
 *
 *   npm run build && npx tsx scripts/fingerprint.ts > before.txt
 *   ... change ...
 *   npm run build && npx tsx scripts/fingerprint.ts | diff before.txt -
 *
 * Runs the built CLI (bin/run.cjs) in fresh processes; needs no root and touches no kernel.
 */
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdirSync, writeFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

import yaml from 'js-yaml'

import {syntheticHost, syntheticSnapshot} from '../bench/synthetic.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const WORK = fileURLToPath(new URL('../tmp/fingerprint/', import.meta.url))
const SYNTHETIC_COUNT = 2000

function main(): void {
  mkdirSync(WORK, {recursive: true})
  const {host} = syntheticHost()
  const snapshot = syntheticSnapshot(SYNTHETIC_COUNT, host.interfaces.flatMap((i) => i.addresses.map((a) => a.address)))
  const synthetic = `${WORK}synthetic.yaml`
  const documents = [...snapshot.mappings, ...snapshot.services, ...snapshot.endpointSlices]
  writeFileSync(synthetic, documents.map((d) => yaml.dump(d, {noRefs: true, lineWidth: -1})).join('---\n'))
  const syntheticAddresses = host.interfaces.flatMap((i) => i.addresses.map((a) => `${a.address}/${a.prefixLength}@${i.name}`)).join(',')

  const inputs = [
    {name: 'examples', path: `${ROOT}examples`, addresses: '198.18.0.10,198.18.0.11,198.18.0.12'},
    {name: `synthetic-${SYNTHETIC_COUNT}`, path: synthetic, addresses: syntheticAddresses},
  ]
  for (const input of inputs) {
    for (const backend of ['iptables', 'nftables']) {
      for (const snat of [false, true]) {
        for (const json of [false, true]) {
          const args = ['sync', '--dry-run', '--from-file', input.path, '--assume-addresses', input.addresses, '--backend', backend]
          if (snat) args.push('--snat')
          if (json) args.push('--json')
          const result = spawnSync(process.execPath, [`${ROOT}bin/run.cjs`, ...args], {encoding: 'utf8', maxBuffer: 1 << 30, env: {...process.env, NO_COLOR: '1'}})
          if (result.status !== 0) throw new Error(`smartnat ${args.join(' ')} exited ${result.status}: ${result.stderr}`)
          const digest = createHash('sha256').update(result.stdout).digest('hex')
          console.log(`${digest}  ${input.name} ${backend}${snat ? ' --snat' : ''}${json ? ' --json' : ''} (${result.stdout.length} bytes)`)
        }
      }
    }
  }
}

main()
