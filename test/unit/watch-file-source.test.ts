import {expect} from 'chai'
import {mkdtemp, rename, rm, unlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {createRequire, syncBuiltinESMExports} from 'node:module'
import {join} from 'node:path'
import {createLogger} from '../../src/lib/observe/log.js'
import {FileWatchSource, type FileWatchOptions} from '../../src/lib/source/file-watch.js'

const mapping = (name: string, port: number) => `apiVersion: smartnat.aureacentral.com/v1alpha1
kind: Mapping
metadata:
  name: ${name}
spec:
  addresses: [198.18.0.10]
  serviceName: web
  ports:
    - port: ${port}
`

/** Waits for `condition`, looking every 10 ms; the test's own timeout ends a wait that never succeeds. */
async function eventually(what: string, condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10))
  expect(condition(), what).to.equal(true)
}

/**
 * Counts the reads of `path` while `body` runs: every read of the manifests starts with
 * node:fs's stat of the path (file or directory?), which is wrapped for the time.
 */
async function countingReads<T>(path: string, body: (reads: () => number) => Promise<T>): Promise<T> {
  const fsp = createRequire(import.meta.url)('node:fs') as typeof import('node:fs')
  const real = fsp.stat
  let reads = 0
  fsp.stat = ((...args: Parameters<typeof real>) => {
    if (args[0] === path) reads++
    return (real as (...a: unknown[]) => void)(...args)
  }) as typeof real
  syncBuiltinESMExports()
  try {
    return await body(() => reads)
  } finally {
    fsp.stat = real
    syncBuiltinESMExports()
  }
}

/** Timers and file-system watchers of this process, to see that a stopped source leaves none. */
const pendingWork = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'FSEventWrap').length

describe('file source that follows changes', function () {
  this.timeout(15_000)
  let dir: string
  let source: FileWatchSource | undefined
  let changes: number
  let warnings: Record<string, unknown>[]

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-watch-'))
    changes = 0
    warnings = []
  })

  afterEach(async () => {
    await source?.stop()
    source = undefined
    await rm(dir, {recursive: true, force: true})
  })

  async function start(path: string, options: FileWatchOptions = {}): Promise<FileWatchSource> {
    const logger = createLogger({write: (line) => warnings.push(JSON.parse(line) as Record<string, unknown>), level: 'warn'})
    source = new FileWatchSource(path, {logger, ...options})
    source.onChange(() => changes++)
    await source.start()
    return source
  }

  const names = () => source!.snapshot().mappings.map((m) => m.metadata.name)

  it('is synced after the first read and announces it', async () => {
    await writeFile(join(dir, 'a.yaml'), mapping('a', 80))
    await start(dir)
    expect(source!.health()).to.deep.equal({synced: true})
    expect(names()).to.deep.equal(['a'])
    expect(changes).to.equal(1)
  })

  it('sees a new file in the directory, a file replaced by rename and a removed file, without polling', async () => {
    await writeFile(join(dir, 'a.yaml'), mapping('a', 80))
    await start(dir, {pollIntervalMs: 3_600_000})
    await writeFile(join(dir, 'b.yaml'), mapping('b', 81))
    await eventually('b to appear', () => names().includes('b'))
    await writeFile(join(dir, 'a.yaml.tmp'), mapping('a2', 80))
    await rename(join(dir, 'a.yaml.tmp'), join(dir, 'a.yaml'))
    await eventually('a to become a2', () => names().join() === 'a2,b')
    await unlink(join(dir, 'b.yaml'))
    await eventually('b to go', () => names().join() === 'a2')
  })

  it('follows a single file replaced by rename, the way editors save', async () => {
    const file = join(dir, 'mappings.yaml')
    await writeFile(file, mapping('one', 80))
    await start(file, {pollIntervalMs: 3_600_000})
    await writeFile(`${file}.new`, mapping('two', 80))
    await rename(`${file}.new`, file)
    await eventually('two', () => names().join() === 'two')
    await writeFile(`${file}.new`, mapping('three', 80))
    await rename(`${file}.new`, file)
    await eventually('three', () => names().join() === 'three')
  })

  it('keeps the last good snapshot on a YAML error, says why in health, and recovers', async () => {
    const file = join(dir, 'm.yaml')
    await writeFile(file, mapping('good', 80))
    const readErrors: string[] = []
    await start(dir, {onReadError: (error) => readErrors.push(error)})
    const before = changes
    await writeFile(file, 'kind: Mapping\n  bad: [indent\n')
    await eventually('the error to show', () => source!.health().lastError !== undefined)
    expect(readErrors[0], 'every failed read is counted').to.equal(source!.health().lastError)
    expect(source!.health().synced).to.equal(true)
    expect(source!.health().lastError).to.match(new RegExp(`^${file.replace(/[.]/g, '\\.')}:\\d+: invalid YAML: `))
    expect(names()).to.deep.equal(['good'])
    expect(changes, 'a failed read is not a change').to.equal(before)
    expect(warnings.map((w) => w.msg)).to.deep.equal(['cannot read manifests; keeping the last good ones'])
    await writeFile(file, mapping('fixed', 80))
    await eventually('recovery', () => names().join() === 'fixed')
    expect(source!.health()).to.deep.equal({synced: true})
  })

  it('is not synced while the first read fails, and syncs when the file appears', async () => {
    const file = join(dir, 'later.yaml')
    await start(file, {pollIntervalMs: 50})
    expect(source!.health()).to.deep.include({synced: false})
    expect(source!.health().lastError).to.equal(`cannot read manifests from ${file}: no such file or directory`)
    expect(source!.snapshot()).to.deep.equal({mappings: [], services: [], endpointSlices: []})
    await writeFile(file, mapping('late', 80))
    await eventually('the first good read', () => source!.health().synced)
    expect(names()).to.deep.equal(['late'])
    expect(changes).to.equal(1)
  })

  it('the poll alone picks up a change, and an unchanged re-read is not a change', async () => {
    const file = join(dir, 'm.yaml')
    await writeFile(file, mapping('a', 80))
    await countingReads(file, async (reads) => {
      await start(file, {pollIntervalMs: 40, settleMs: 3_600_000})
      await eventually('four reads', () => reads() >= 4)
    })
    expect(changes, 'several polls of the same content').to.equal(1)
    await writeFile(file, mapping('b', 80))
    await eventually('the poll to see b', () => names().join() === 'b')
    expect(changes).to.equal(2)
  })

  it('hands out copies: a caller changing its snapshot changes nothing inside', async () => {
    await writeFile(join(dir, 'a.yaml'), mapping('a', 80))
    await start(dir)
    source!.snapshot().mappings.pop()
    expect(names()).to.deep.equal(['a'])
  })

  it('stop() ends watching: no timer or watcher is left to read later changes', async () => {
    await writeFile(join(dir, 'a.yaml'), mapping('a', 80))
    // Mocha arms its own timeout timer once the test has returned its promise.
    await new Promise((resolve) => setImmediate(resolve))
    const before = pendingWork()
    await start(dir, {pollIntervalMs: 20})
    expect(pendingWork(), 'the poll timer and the watcher').to.be.greaterThan(before)
    await source!.stop()
    expect(pendingWork()).to.equal(before)
    await writeFile(join(dir, 'b.yaml'), mapping('b', 80))
    expect(names()).to.deep.equal(['a'])
    expect(changes).to.equal(1)
  })
})
