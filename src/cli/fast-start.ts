/**
 * `smartnat --version` and `smartnat [COMMAND] --help` without oclif: importing and configuring oclif
 * takes longer than Node.js takes to start, and these are the starts a shell or a script makes most.
 * The version line is oclif's (`name/version platform-arch node-version`); the help is what oclif
 * printed for each command when `npm run build` rendered it (scripts/oclif-manifest.ts), as it prints
 * it to a pipe: 80 columns, no colour. Whenever oclif could print something else (a terminal's width
 * or colours, WSL's platform name, another argument) the answer is left to oclif.
 */
// Node's own modules as CommonJS: importing node:fs as an ES module reads every export, and
// fs.ReadStream then loads node:stream, about 5 ms of every start.
const {readFileSync} = process.getBuiltinModule('node:fs')
const {arch, release} = process.getBuiltinModule('node:os')

/** dist/help.json: oclif's help text by command id ('' for the root), rendered at build. */
export interface RenderedHelp {
  help: Record<string, string>
}

export const RENDERED_HELP_FILE = 'help.json'

// What makes oclif's colour library (ansis) colour a pipe: any of these, unless NO_COLOR is set.
const COLOUR_ENV = ['FORCE_COLOR', 'COLORTERM', 'CI', 'TF_BUILD', 'TEAMCITY_VERSION', 'PM2_HOME', 'NEXT_RUNTIME']

/** Where the answers go and what they come from; the process's own unless a test gives others. */
export interface FastStartContext {
  env: NodeJS.ProcessEnv
  stdout: NodeJS.WriteStream
  renderedHelp: () => RenderedHelp | undefined
  /** package.json's name and version: the installed package's, or those built into the single executable. */
  packageInfo: () => PackageInfo
}

/** What the version line names. */
export interface PackageInfo {
  name: string
  version: string
}

/** Prints the version or a command's rendered help and returns true, or returns false for oclif to answer. */
export function answerWithoutOclif(argv: string[], context: Partial<FastStartContext> = {}): boolean {
  const {env = process.env, renderedHelp = readRenderedHelp, packageInfo = readPackageInfo} = context
  // process.stdout is made when first asked for (node:stream and the pipe or file behind it, about 3.5 ms): not before an answer is printed here.
  const stdout = () => context.stdout ?? process.stdout
  if (argv.length === 1 && argv[0] === '--version') return printVersion(stdout(), packageInfo)
  const helpFor = argv.length === 0 || (argv.length === 1 && argv[0] === '--help') ? '' : argv.length === 2 && argv[1] === '--help' ? argv[0]! : undefined
  if (helpFor === undefined || helpFor.startsWith('-') || !printedAsRendered(env, stdout())) return false
  const text = renderedHelp()?.help[helpFor]
  if (text === undefined) return false
  stdout().write(text)
  return true
}

function printVersion(stdout: NodeJS.WriteStream, packageInfo: () => PackageInfo): boolean {
  // oclif names the platform "wsl" under WSL (is-wsl); leave that case to it.
  if (process.platform !== 'linux' || release().toLowerCase().includes('microsoft')) return false
  const {name, version} = packageInfo()
  stdout.write(`${name}/${version} ${process.platform}-${arch() === 'ia32' ? 'x86' : arch()} node-${process.version}\n`)
  return true
}

/** True when oclif would print help as the build rendered it: not to a terminal, 80 columns, no colour. */
function printedAsRendered(env: NodeJS.ProcessEnv, stdout: NodeJS.WriteStream): boolean {
  if (stdout.isTTY || env.OCLIF_COLUMNS !== undefined) return false
  return Boolean(env.NO_COLOR) || !COLOUR_ENV.some((name) => name in env)
}

function readPackageInfo(): PackageInfo {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as PackageInfo
}

function readRenderedHelp(): RenderedHelp | undefined {
  try {
    return JSON.parse(readFileSync(new URL(`../${RENDERED_HELP_FILE}`, import.meta.url), 'utf8')) as RenderedHelp
  } catch (error) {
    // A build without the rendered help (tsc alone) still runs: oclif answers.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}
