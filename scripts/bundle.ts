/**
 * Bundles the CLI with esbuild into dist/ (a step of `npm run build`, after tsc has checked it): the
 * entry bin/run.cjs requires, dist/cli/start.cjs (CommonJS: an ES module entry costs every start
 * Node's ES module loader), and the ES modules it imports with DEBUG set: dist/cli/main.js (oclif)
 * and one file per command in dist/commands/, where oclif's manifest expects them, sharing chunks in
 * dist/chunks/, with source maps. Node.js loads a few large files much faster than hundreds of small
 * ones (docs/benchmarks.md, "Start-up").
 *
 * With --script (the last step of `npm run build`, after the manifest and the rendered help, which it
 * embeds): the CLI script (src/cli/cli-script.ts), dist/cli/smartnat.cjs, with its code cache
 * dist/cli/smartnat.cache, made by running it (scripts/code-cache.ts). bin/run.cjs runs
 * commands through it; the ES modules remain for oclif's manifest, the tests and DEBUG.
 *
 * With --sea (after `npm run build`): the input of the single executable (scripts/sea-executable.ts),
 * two CommonJS files in dist-sea/: start.cjs, the answers without oclif, and smartnat.cjs, the CLI
 * script. A Node.js single executable runs one script that can require only Node's own modules, so
 * everything is inside, the Kubernetes client included, as in the package's script; what bin/run.cjs
 * reads from the package (package.json, dist/help.json) comes from the module `smartnat-sea:help`.
 * Both scripts get each plugin's package.json and manifest from the module `smartnat-sea:plugins`
 * this script generates (src/cli/sea-embedded.d.ts). */
import {readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {build, type BuildOptions, type Plugin} from 'esbuild'

import {CLI_CACHE, CLI_SCRIPT} from '../src/cli/cli-script.js'
import {asciiOnly} from './ascii-only.js'
import {makeCodeCache} from './code-cache.js'
import {lazyRequirePlugin} from './lazy-require.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DIST = join(ROOT, 'dist')
/** Where the single executable's script is written. */
const SEA_DIST = join(ROOT, 'dist-sea')

/** oclif's modules, evaluated when first used (scripts/lazy-require.ts). */
const OCLIF_LAZY = lazyRequirePlugin(/[\\/]node_modules[\\/]@oclif[\\/]core[\\/]lib[\\/].*\.js$/)

/**
 * node-fetch (the Kubernetes client's HTTP) imports whatwg-url for its URL only where Node.js has none,
 * and Node.js always has one; loaded, the package's IDNA table (tr46) is 1.5 MB of the daemon's live
 * heap (docs/benchmarks.md, "What the daemon keeps beyond its parts"). Node's own url module stands in.
 */
const NODE_URL_FOR_WHATWG_URL: Plugin = {
  name: 'smartnat-whatwg-url',
  setup(builder) {
    builder.onResolve({filter: /^whatwg-url$/}, () => ({path: 'whatwg-url', namespace: 'smartnat-node-url'}))
    builder.onLoad({filter: /.*/, namespace: 'smartnat-node-url'}, () => ({contents: "module.exports = require('node:url')", loader: 'js'}))
  },
}

const commands = readdirSync(join(ROOT, 'src', 'commands')).filter((file) => file.endsWith('.ts')).map((file) => join(ROOT, 'src', 'commands', file))

async function bundleForNpm(): Promise<void> {
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
  // V8 keeps the source of every module it loads for as long as the process lives, and one
  // character beyond ASCII (in a comment) makes it keep a file at two bytes a character: without
  // comments and indentation the daemon holds 12 MB less. The source maps keep stack traces usable.
  minifyWhitespace: true,
  // oclif asks for typescript, ts-node and tsx only to run a plugin from its sources. The Kubernetes
  // client is inside, in a chunk loaded only on the paths that reach the API: bundled, only the parts
  // of it smartnat uses are kept, and the daemon holds 40 MB less (docs/benchmarks.md, "Memory at
  // 10,000 Mappings").
  external: ['typescript', 'ts-node', 'tsx'],
  // The CommonJS packages inside (oclif and its dependencies) call require() for Node's own modules.
  // Through process.getBuiltinModule: an ES module import of node:module would cost its facade at every start.
  banner: {js: "const require = process.getBuiltinModule('node:module').createRequire(import.meta.url);"},
  plugins: [OCLIF_LAZY, NODE_URL_FOR_WHATWG_URL],
  logLevel: 'warning',
})
// The entry, alone: what it imports with DEBUG set (./main.js) is the bundle above.
await build({
  absWorkingDir: ROOT,
  entryPoints: [join(ROOT, 'src', 'cli', 'start.ts')],
  outfile: join(DIST, 'cli', 'start.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  sourcesContent: false,
  external: ['./main.js'],
  // node:url is loaded at every start anyway.
  banner: {js: "const __smartnatStartUrl = require('node:url').pathToFileURL(__filename).href;"},
  define: {'import.meta.url': '__smartnatStartUrl'},
  logLevel: 'warning',
})
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T
}

interface PluginManifest {
  commands: Record<string, {relativePath: string[]}>
}

/** The module `smartnat-sea:help`: package.json's name and version, and the rendered help. */
function helpModule(): string {
  const {name, version} = readJson<{name: string; version: string}>(join(ROOT, 'package.json'))
  return `export const PACKAGE = ${JSON.stringify({name, version})}\nexport const RENDERED_HELP = ${readFileSync(join(DIST, 'help.json'), 'utf8')}\n`
}

/** The module `smartnat-sea:plugins`: each plugin's package.json, manifest and command imports. */
function pluginsModule(): string {
  const rootPjson = readJson<{oclif: {plugins: string[]}}>(join(ROOT, 'package.json'))
  const roots = [ROOT, ...rootPjson.oclif.plugins.map((name) => join(ROOT, 'node_modules', name))]
  const plugins = roots.map((root) => {
    const manifest = readJson<PluginManifest>(join(root, 'oclif.manifest.json'))
    const commands = Object.entries(manifest.commands).map(([id, {relativePath}]) => {
      // The package runs dist/commands/ID.js; the executable bundles the command from its source.
      const file = root === ROOT ? join(ROOT, 'src', 'commands', `${relativePath.at(-1)!.replace(/\.js$/, '')}.ts`) : join(root, ...relativePath)
      return `${JSON.stringify(id)}: () => import(${JSON.stringify(file)})`
    })
    return `{pjson: ${readFileSync(join(root, 'package.json'), 'utf8')}, manifest: ${JSON.stringify(manifest)}, commands: {${commands.join(', ')}}}`
  })
  return `export const PLUGINS = [${plugins.join(',\n')}]\n`
}

/**
 * What oclif's config takes from wsl-utils at every start: whether this Linux is WSL, which names the
 * platform in the version line. Every WSL kernel names Microsoft in its release, and there is-wsl
 * answers (inside a container it says no); on any other Linux is-wsl would read /proc/version and
 * look for WSL's paths to find a WSL with a custom kernel (about 1.4 ms of a start, with the module
 * loads). The whole wsl-utils package also loads PowerShell helpers, node:fs/promises and
 * node:child_process (about 2 ms); those are needed only on Windows, where the real module answers.
 */
function wslUtilsModule(): string {
  return `import {release} from 'node:os'\nexport const isWsl = process.platform === 'linux' && release().toLowerCase().includes('microsoft') ? require('is-wsl').default : false\nexport async function powerShellPath() { return (await import('wsl-utils')).powerShellPath() }\n`
}

/**
 * What chalk's supports-color takes from node:tty at every start: whether stdout and stderr are
 * terminals. node:tty loads node:net (about 2.5 ms with it); the process's own stdout and stderr,
 * made anyway to print, know it already (a stream is a tty.WriteStream exactly when its descriptor
 * is a terminal). Any other descriptor is asked of node:tty.
 */
function ttyModule(): string {
  return `export function isatty(fd) { return fd === 1 ? process.stdout.isTTY === true : fd === 2 ? process.stderr.isTTY === true : require('node:tty').isatty(fd) }\nexport default {isatty}\n`
}

const embedded: Plugin = {
  name: 'smartnat-sea-embedded',
  setup(builder) {
    const modules: Record<string, () => string> = {'smartnat-sea:help': helpModule, 'smartnat-sea:plugins': pluginsModule, 'wsl-utils': wslUtilsModule, 'smartnat-sea:tty': ttyModule}
    builder.onResolve({filter: /^smartnat-sea:/}, (args) => ({path: args.path, namespace: 'smartnat-sea'}))
    // oclif's import of wsl-utils gets the module above; that module's own import gets the package.
    builder.onResolve({filter: /^wsl-utils$/}, (args) => (args.namespace === 'smartnat-sea' ? undefined : {path: args.path, namespace: 'smartnat-sea'}))
    // chalk's supports-color (a vendored copy inside chalk) gets the module above for node:tty.
    builder.onResolve({filter: /^node:tty$/}, (args) =>
      /[\\/]chalk[\\/]source[\\/]vendor[\\/]supports-color[\\/]/.test(args.importer) ? {path: 'smartnat-sea:tty', namespace: 'smartnat-sea'} : undefined,
    )
    builder.onLoad({filter: /.*/, namespace: 'smartnat-sea'}, (args) => ({contents: modules[args.path]!(), loader: 'js', resolveDir: ROOT}))
  },
}

/** The CLI script with its own names, for profiling: `SMARTNAT_READABLE_SCRIPT=1 npm run build`. */
const READABLE_SCRIPT = process.env.SMARTNAT_READABLE_SCRIPT === '1'

const SCRIPT_OPTIONS: BuildOptions = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Beside the script (smartnat.cjs.map, an asset of the single executable), read only to format a
  // stack trace (src/cli/mapped-stack.ts): frames then name the sources' functions, files and lines.
  sourcemap: 'external',
  sourcesContent: false,
  minifyWhitespace: true,
  // Less to read, compile and deserialize at every start (1.43 MB -> 0.98 MB). Without keepNames:
  // giving every function its name back at load cost a dry-run sync about 4 ms, and a stack trace
  // takes the sources' names from the source map. A CPU profile shows the short names, so
  // SMARTNAT_READABLE_SCRIPT=1 builds the script readable.
  minifySyntax: !READABLE_SCRIPT,
  minifyIdentifiers: !READABLE_SCRIPT,
  // import.meta.url names the script, or the executable (src/lib/source/kube/crd-install.ts looks for crds/ above it).
  define: {'import.meta.url': '__smartnatScriptUrl'},
  plugins: [embedded, OCLIF_LAZY, NODE_URL_FOR_WHATWG_URL],
  logLevel: 'warning',
}

/** The Kubernetes client as the CLI script require()s it, beside the script. */
const KUBE_CLIENT = 'kube-client.cjs'

/** The CLI script's imports of the Kubernetes client go to KUBE_CLIENT. */
const kubeClientPlugin: Plugin = {
  name: 'smartnat-kube-client',
  setup(builder) {
    builder.onResolve({filter: /^@kubernetes\/client-node$/}, () => ({path: `./${KUBE_CLIENT}`, external: true}))
  },
}

/** Builds what smartnat uses of the Kubernetes client (src/cli/kube-client.ts) into `outfile`, as CommonJS. */
async function bundleKubeClient(outfile: string): Promise<void> {
  // Not minified: loaded only by the commands that reach the API, whose start has no target, it keeps
  // the daemon's heap as measured (docs/benchmarks.md, "Memory at 10,000 Mappings").
  await build({
    ...SCRIPT_OPTIONS,
    entryPoints: [join(ROOT, 'src', 'cli', 'kube-client.ts')],
    outfile,
    plugins: [NODE_URL_FOR_WHATWG_URL],
    define: {},
    minifySyntax: false,
    minifyIdentifiers: false,
    sourcemap: false,
  })
}

/** Builds the CLI script (src/cli/cli-script.ts) into `outfile`: everything inside but what `external` names. */
async function bundleCliScript(outfile: string, external: string[] = [], plugins: Plugin[] = []): Promise<void> {
  await build({
    ...SCRIPT_OPTIONS,
    plugins: [...(SCRIPT_OPTIONS.plugins ?? []), ...plugins],
    entryPoints: [join(ROOT, 'src', 'cli', 'sea-cli.ts')],
    outfile,
    banner: {js: `(function (require, __smartnatScriptUrl, __smartnatRoot) {\n'use strict';`},
    footer: {js: '})'},
    // oclif asks for these only to run a plugin from its TypeScript sources, which neither the package nor the executable does.
    external: ['typescript', 'ts-node', 'tsx', ...external],
  })
  // The one character it escapes (a regular expression of ansis) lengthens its line by 5: frames
  // past it on that line map 5 columns off, which still names the right function.
  writeFileSync(outfile, asciiOnly(readFileSync(outfile, 'utf8')))
}

async function bundleForSea(): Promise<void> {
  // The entry: the answers without oclif, and the loader of the rest.
  const executableUrl = 'const __smartnatScriptUrl = require("node:url").pathToFileURL(process.execPath).href;'
  await build({...SCRIPT_OPTIONS, entryPoints: [join(ROOT, 'src', 'cli', 'sea-main.ts')], outfile: join(SEA_DIST, 'start.cjs'), banner: {js: executableUrl}, sourcemap: false})
  // The rest, run by src/cli/sea-loader.ts with Node's own modules only.
  await bundleCliScript(join(SEA_DIST, CLI_SCRIPT))
}

if (process.argv.includes('--sea')) await bundleForSea()
else if (process.argv.includes('--script')) {
  // After the manifest and the rendered help, which it embeds; its code cache is the running Node.js's.
  // The Kubernetes client stays out of the script: reading and compiling it would cost every start, and
  // only the paths that reach the API require() it, from a file of its own with only what smartnat uses.
  await bundleKubeClient(join(DIST, 'cli', KUBE_CLIENT))
  await bundleCliScript(join(DIST, 'cli', CLI_SCRIPT), [], [kubeClientPlugin])
  makeCodeCache(process.execPath, join(DIST, 'cli', CLI_SCRIPT), join(DIST, 'cli', CLI_CACHE))
} else await bundleForNpm()
