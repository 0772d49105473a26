/** Stack traces of a minified script, mapped to its sources (src/cli/mapped-stack.ts): a script built here by esbuild as the CLI's is. */
import {expect} from 'chai'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Script} from 'node:vm'

import {build} from 'esbuild'

import {mapStackTraces} from '../../src/cli/mapped-stack.js'

// Line 3 throws, at column 11 (`new`); an arrow function of line 8 calls it; line 10's calls planAll.
const SOURCE = `export function parseMapping(port: number): number {
  if (port > 65535) {
    throw new Error('port out of range')
  }
  return port
}
export function planAll(ports: number[]): number[] {
  return ports.map((port) => parseMapping(port))
}
export const checkAll = (ports: number[]): number => planAll(ports).length
`

describe('stack traces of the minified CLI script', () => {
  let dir: string
  let scriptFile: string
  let checkAll: (ports: number[]) => number
  let elsewhere: (ports: number[]) => number
  const savedPrepare = Error.prepareStackTrace

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'smartnat-mapped-stack-'))
    mkdirSync(join(dir, 'src'))
    mkdirSync(join(dir, 'dist'))
    writeFileSync(join(dir, 'src', 'plan.ts'), SOURCE)
    scriptFile = join(dir, 'dist', 'plan.cjs')
    await build({entryPoints: [join(dir, 'src', 'plan.ts')], outfile: scriptFile, bundle: true, format: 'iife', globalName: 'plan', minify: true, sourcemap: 'external', sourcesContent: false, logLevel: 'error'})
    const exports = new Script(`${readFileSync(scriptFile, 'utf8')}; plan`, {filename: scriptFile}).runInThisContext() as {checkAll: typeof checkAll}
    checkAll = exports.checkAll
    // As V8 names a script compiled from a code cache made elsewhere: by the path it had where the cache was made.
    const built = new Script(`${readFileSync(scriptFile, 'utf8')}; plan`, {filename: '/build/smartnat/dist/plan.cjs'}).runInThisContext() as {checkAll: typeof checkAll}
    elsewhere = built.checkAll
  })
  afterEach(() => {
    Error.prepareStackTrace = savedPrepare
  })
  after(() => rmSync(dir, {recursive: true, force: true}))

  const thrown = (): Error => {
    try {
      checkAll([80, 70_000])
    } catch (error) {
      return error as Error
    }
    throw new Error('expected a throw')
  }

  it('names the functions, files, lines and columns of the sources, and leaves other frames as V8 gives them', () => {
    let reads = 0
    mapStackTraces(scriptFile, {
      map: () => {
        reads++
        return readFileSync(`${scriptFile}.map`, 'utf8')
      },
      script: () => readFileSync(scriptFile, 'utf8'),
    })
    const error = thrown()
    expect(reads, 'read before a stack is').to.equal(0)
    const lines = error.stack!.split('\n')
    expect(lines[0]).to.equal('Error: port out of range')
    expect(lines[1]).to.equal(`    at parseMapping (${join(dir, 'src', 'plan.ts')}:3:11)`)
    const source = join(dir, 'src', 'plan.ts')
    expect(lines).to.include(`    at ${source}:8:30`)
    expect(lines).to.include(`    at planAll (${source}:8:16)`)
    expect(lines).to.include(`    at checkAll (${source}:10:54)`)
    expect(lines.some((line) => /mapped-stack\.test\.ts:\d+:\d+\)$/.test(line))).to.equal(true)
    expect(lines.some((line) => line.includes('plan.cjs'))).to.equal(false)
    expect(thrown().stack).to.include(`${join(dir, 'src', 'plan.ts')}:3:11`)
    expect(reads, 'the map is read once').to.equal(1)
  })

  it('maps the frames of the script named by the path it was built at, to the sources beside where it is', () => {
    mapStackTraces(scriptFile, {map: () => readFileSync(`${scriptFile}.map`, 'utf8'), script: () => readFileSync(scriptFile, 'utf8')})
    let stack = ''
    try {
      elsewhere([70_000])
    } catch (error) {
      stack = (error as Error).stack!
    }
    expect(stack.split('\n')[1]).to.equal(`    at parseMapping (${join(dir, 'src', 'plan.ts')}:3:11)`)
  })

  it('leaves the frames as V8 gives them when the map cannot be read', () => {
    mapStackTraces(scriptFile, {
      map: () => {
        throw new Error('no map')
      },
      script: () => readFileSync(scriptFile, 'utf8'),
    })
    const lines = thrown().stack!.split('\n')
    expect(lines[0]).to.equal('Error: port out of range')
    expect(lines[1]).to.match(new RegExp(`^    at \\w+ \\(${scriptFile.replaceAll('/', '\\/').replaceAll('.', '\\.')}:\\d+:\\d+\\)$`))
  })
})
