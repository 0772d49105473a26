/**
 * An esbuild plugin that makes oclif's modules require what they use when they first use it, not
 * when they load. oclif's CommonJS (TypeScript's output) requires its whole graph at the top of each
 * module (help, plugin discovery, globbing, spinners, ...), while running one command touches a
 * fraction of it: in the bundle, evaluating those modules cost more CPU than Node.js takes to start
 * (docs/benchmarks.md, "Start-up"). TypeScript reaches an import only through the variable it binds
 * (`foo_1.bar`, `(0, foo_1.bar)()`), so binding a getter instead changes nothing but the moment the
 * module is evaluated.
 */
import {readFile} from 'node:fs/promises'

import type {Plugin} from 'esbuild'

// `const foo_1 = require("./foo");`, with __importDefault or __importStar around the require.
const TOP_LEVEL_REQUIRE = /^(?:const|let|var) ([A-Za-z_$][\w$]*) = ((?:__importDefault|__importStar)?\(?require\((["'])[^"']+\3\)\)?);$/gm

// A line comment, a block comment, or a single- or double-quoted string on one line.
const SKIPPED = String.raw`(\/\/[^\n]*|\/\*[\s\S]*?\*\/|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")`

/** The module's source with every top-level require bound lazily; the names it rebound, for checks. */
export function lazyRequires(source: string): {source: string; names: string[]} {
  const names: string[] = []
  const bindings: string[] = []
  // The bindings stand aside while the uses are renamed: they hold the names themselves, in the require()s too.
  let rewritten = source.replace(TOP_LEVEL_REQUIRE, (_line, name: string, expression: string) => {
    names.push(name)
    bindings.push(`var ${name}$lazy; function ${name}$get() { return ${name}$lazy ??= ${expression}; }`)
    return `\0${bindings.length - 1}\0`
  })
  for (const name of names) {
    // Comments and quoted strings are matched first and kept, so that only code is renamed.
    const use = new RegExp(`${SKIPPED}|(?<![\\w$.])${name.replace(/\$/g, '\\$')}(?![\\w$])`, 'g')
    rewritten = rewritten.replace(use, (match, skipped: string | undefined) => skipped ?? `(${name}$get())`)
  }
  return {source: rewritten.replace(/\0(\d+)\0/g, (_placeholder, index: string) => bindings[Number(index)]!), names}
}

/** Applies lazyRequires to the files whose path matches `filter`. */
export function lazyRequirePlugin(filter: RegExp): Plugin {
  return {
    name: 'lazy-require',
    setup(builder) {
      builder.onLoad({filter}, async (args) => ({contents: lazyRequires(await readFile(args.path, 'utf8')).source, loader: 'js'}))
    },
  }
}
