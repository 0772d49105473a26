/**
 * Bundles the CLI with esbuild into dist/ (a step of `npm run build`, after tsc has checked it): the
 * entry bin/run.js imports (dist/cli/main.js) and one file per command in dist/commands/, where
 * oclif's manifest expects them, sharing chunks in dist/chunks/, with source maps. Node.js loads a
 * few large files much faster than hundreds of small ones (docs/benchmarks.md, "Start-up").
 */
import {readdirSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {build} from 'esbuild'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DIST = join(ROOT, 'dist')

const commands = readdirSync(join(ROOT, 'src', 'commands')).filter((file) => file.endsWith('.ts')).map((file) => join(ROOT, 'src', 'commands', file))

await build({
  absWorkingDir: ROOT,
  entryPoints: [join(ROOT, 'src', 'cli', 'main.ts'), ...commands],
  outbase: join(ROOT, 'src'),
  outdir: DIST,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  // Stack traces need only the mappings; the sources are not in the package.
  sourcesContent: false,
  // The Kubernetes client is large and loaded only on the paths that reach the API; oclif asks for
  // typescript, ts-node and tsx only to run a plugin from its sources.
  external: ['@kubernetes/client-node', 'typescript', 'ts-node', 'tsx'],
  // The CommonJS packages inside (oclif and its dependencies) call require() for Node's own modules.
  banner: {js: "import {createRequire as __smartnatCreateRequire} from 'node:module'; const require = __smartnatCreateRequire(import.meta.url);"},
  logLevel: 'warning',
})
