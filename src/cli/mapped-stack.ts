/**
 * Stack traces of the CLI script that name the sources. The script is minified (scripts/bundle.ts):
 * its frames would name short functions at columns of a few long lines. V8 formats a stack when it
 * is first read; a frame in the script is then mapped through the script's source map, as Node.js's
 * --enable-source-maps does, which would read and parse the map at every start. The map is read at
 * the first stack that needs it: a run that prints no stack never reads it.
 */
import {basename, dirname, join} from 'node:path'

import type {SourceMap} from 'node:module'

/** How the script and its source map are read, when a stack first needs them. */
export interface ScriptFiles {
  map(): string
  script(): string
}

/**
 * Formats stacks from now on with the frames in `scriptFile` mapped through its source map, whose
 * sources are relative to `sourcesDir` (the script's directory unless given); a map that cannot be
 * read leaves them as V8 gives them.
 */
export function mapStackTraces(scriptFile: string, read: ScriptFiles, sourcesDir = dirname(scriptFile)): void {
  let loaded: {map: SourceMap; lines: string[]} | null | undefined
  const load = () => {
    if (loaded === undefined) {
      try {
        const {SourceMap} = process.getBuiltinModule('node:module')
        loaded = {map: new SourceMap(JSON.parse(read.map()) as ConstructorParameters<typeof SourceMap>[0]), lines: read.script().split('\n')}
      } catch {
        loaded = null
      }
    }
    return loaded
  }
  // V8 names a script compiled from a code cache as the cache's maker named it: the build's path, not
  // where the package or the executable was installed. A frame of a file of the script's name is its.
  const scriptName = basename(scriptFile)
  const inScript = (fileName: string | null) => fileName === scriptFile || (fileName !== null && basename(fileName) === scriptName)
  const frame = (site: NodeJS.CallSite): string => {
    const line = site.getLineNumber()
    const column = site.getColumnNumber()
    const script = inScript(site.getFileName()) && line !== null && column !== null ? load() : undefined
    const entry = script?.map.findEntry(line! - 1, column! - 1)
    if (!script || !entry || !('originalSource' in entry)) return String(site)
    const location = `${join(sourcesDir, entry.originalSource)}:${entry.originalLine + 1}:${entry.originalColumn + 1}`
    const name = functionName(script, site)
    const prefix = site.isAsync() ? 'async ' : site.isConstructor() ? 'new ' : ''
    return name ? `${prefix}${name} (${location})` : `${prefix}${location}`
  }
  Error.prepareStackTrace = (error: Error, sites: NodeJS.CallSite[]) => {
    let head: string
    try {
      head = Error.prototype.toString.call(error)
    } catch {
      head = '<error>'
    }
    return head + sites.map((site) => `\n    at ${frame(site)}`).join('')
  }
}

/** How far past a function's start its name may be: `async function* `. */
const NAME_WITHIN = 16

/**
 * The source's name of the function a frame is in: the map names the minified name where the
 * function declares it, a few characters past the function's start (`async function xoe(`), or
 * just before it for a function assigned to a variable (`Pv=e=>`); a method's or property's name
 * was never minified, and an arrow function passed along has none.
 */
function functionName({map, lines}: {map: SourceMap; lines: string[]}, site: NodeJS.CallSite): string | undefined {
  const short = site.getFunctionName() ?? undefined
  const line = site.getEnclosingLineNumber()
  const column = site.getEnclosingColumnNumber()
  if (short === undefined || line === null || column === null) return short
  const text = lines[line - 1] ?? ''
  const start = column - 1
  const assigned = start - short.length - 1
  let at = text.indexOf(short, start)
  if (text.slice(assigned, start) === `${short}=`) at = assigned
  else if (at < 0 || at - start > NAME_WITHIN || /[\w$]/.test(text[at + short.length] ?? '')) return short
  return (map.findEntry(line - 1, at) as {name?: string}).name ?? short
}
