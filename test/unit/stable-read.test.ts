import {expect} from 'chai'

import {readManifests} from '../../src/lib/source/file.js'
import {readStableManifests, type ManifestFs} from '../../src/lib/source/stable-read.js'

interface FileVersion {
  text: string
  mtimeMs: number
  ino?: number
  /** What a read returns, when it differs from `text` (a write landing between the stat and the read). */
  readAs?: string
}

/**
 * A file system whose content is a function of how many calls were made to it: each test says what
 * a reader sees at each step, so a write landing in the middle of a read is exact, not timed.
 */
class ScriptedFs implements ManifestFs {
  calls = 0

  constructor(
    private readonly files: Record<string, (call: number) => FileVersion | undefined>,
    private readonly dirs: Record<string, (call: number) => string[]> = {},
  ) {}

  async stat(path: string) {
    const call = this.calls++
    const dir = this.dirs[path]
    if (dir) return {size: 0, mtimeMs: 0, ino: 1, isDirectory: () => true}
    const version = this.files[path]?.(call)
    if (!version) throw Object.assign(new Error(`ENOENT: no such file or directory, stat '${path}'`), {code: 'ENOENT'})
    return {size: Buffer.byteLength(version.text), mtimeMs: version.mtimeMs, ino: version.ino ?? 2, isDirectory: () => false}
  }

  async readdir(path: string) {
    return this.dirs[path]!(this.calls++)
  }

  async readFile(path: string) {
    const version = this.files[path]?.(this.calls++)
    if (!version) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), {code: 'ENOENT'})
    return Buffer.from(version.readAs ?? version.text)
  }
}

const mapping = (name: string) => `apiVersion: smartnat.aureacentral.com/v1alpha1
kind: Mapping
metadata: {name: ${name}}
spec: {addresses: [198.18.0.10], serviceName: web, ports: [{port: 80}]}
`
const FULL = [mapping('a'), mapping('b'), mapping('c')].join('---\n')
const PREFIX = mapping('a')

describe('reading manifest files whole', () => {
  let sleeps: number[]
  let clock: number
  // Time moves only by the waits of the reader, far from the files' modification times unless a test says otherwise.
  const sleep = async (ms: number) => {
    sleeps.push(ms)
    clock += ms
  }
  const now = () => clock
  beforeEach(() => {
    sleeps = []
    clock = 1_000_000
  })

  it('reads a file that holds still once, without waiting', async () => {
    const fs = new ScriptedFs({'/m.yaml': () => ({text: FULL, mtimeMs: 1})})
    expect(await readStableManifests('/m.yaml', {fs, sleep, now})).to.deep.equal([{file: '/m.yaml', text: FULL}])
    expect(sleeps).to.deep.equal([])
  })

  it('reads again when the file is written during the read, and takes the whole file', async () => {
    // Calls: 0 stat(path), 1 stat, 2 readFile, 3 stat: the writer is halfway at call 1 and done at call 3.
    const fs = new ScriptedFs({'/m.yaml': (call) => (call >= 1 && call < 3 ? {text: PREFIX, mtimeMs: 1} : {text: FULL, mtimeMs: 2})})
    const snapshot = await readManifests('/m.yaml', {fs, sleep, now})
    expect(snapshot.mappings.map((m) => m.metadata.name)).to.deep.equal(['a', 'b', 'c'])
    expect(sleeps).to.deep.equal([50])
  })

  it('reads again when the bytes read are not the size the file had (a write within the same mtime tick)', async () => {
    const fs = new ScriptedFs({'/m.yaml': (call) => (call === 2 ? {text: FULL, mtimeMs: 1, readAs: PREFIX} : {text: FULL, mtimeMs: 1})})
    expect(await readStableManifests('/m.yaml', {fs, sleep, now})).to.deep.equal([{file: '/m.yaml', text: FULL}])
    expect(sleeps).to.deep.equal([50])
  })

  it('reads again when a file is renamed over during the read (another inode)', async () => {
    const fs = new ScriptedFs({'/m.yaml': (call) => ({text: FULL, mtimeMs: 1, ino: call < 3 ? 7 : 8})})
    await readStableManifests('/m.yaml', {fs, sleep, now})
    expect(sleeps).to.deep.equal([50])
  })

  it('reads a directory again when its list of files changed during the read', async () => {
    const fs = new ScriptedFs(
      {'/d/a.yaml': () => ({text: mapping('a'), mtimeMs: 1}), '/d/b.yaml': () => ({text: mapping('b'), mtimeMs: 1})},
      {'/d': (call) => (call < 5 ? ['a.yaml'] : ['a.yaml', 'b.yaml', 'notes.txt'])},
    )
    const snapshot = await readManifests('/d', {fs, sleep, now})
    expect(snapshot.mappings.map((m) => m.metadata.name)).to.deep.equal(['a', 'b'])
    expect(sleeps).to.deep.equal([50])
  })

  it('reads a directory again when one of its files went away between the listing and the read', async () => {
    const fs = new ScriptedFs({'/d/a.yaml': () => ({text: mapping('a'), mtimeMs: 1})}, {'/d': (call) => (call < 2 ? ['a.yaml', 'gone.yaml'] : ['a.yaml'])})
    expect((await readManifests('/d', {fs, sleep, now})).mappings).to.have.length(1)
    expect(sleeps).to.deep.equal([50])
  })

  it('gives up after five reads of files that never hold still, saying which file and that something writes it', async () => {
    const fs = new ScriptedFs({'/m.yaml': (call) => ({text: FULL, mtimeMs: call})})
    const error = await readStableManifests('/m.yaml', {fs, sleep, now}).catch((e: unknown) => e)
    expect(error).to.be.an('error').with.property('message', 'cannot read manifests from /m.yaml: /m.yaml changed while it was read on each of 5 reads; is something still writing it?')
    expect(sleeps).to.deep.equal([50, 100, 200, 400])
  })

  it('reads again, after a wait, a file modified moments ago: its writer may have truncated it and not written yet', async () => {
    // Truncated at 999,950 and written at 1,000,020: the first read sees an empty file that holds still.
    const fs = new ScriptedFs({'/m.yaml': () => (clock < 1_000_020 ? {text: '', mtimeMs: 999_950} : {text: FULL, mtimeMs: 1_000_020})})
    clock = 1_000_000
    expect(await readStableManifests('/m.yaml', {fs, sleep, now})).to.deep.equal([{file: '/m.yaml', text: FULL}])
    // 1,000,050: modified 30 ms before; 1,000,150: 130 ms before, quiet.
    expect(sleeps).to.deep.equal([50, 100])
  })

  it('trusts a modification time ahead of its clock (a file server’s skew) rather than waiting for it forever', async () => {
    const fs = new ScriptedFs({'/m.yaml': () => ({text: FULL, mtimeMs: 5_000_000})})
    expect(await readStableManifests('/m.yaml', {fs, sleep, now})).to.have.length(1)
    expect(sleeps).to.deep.equal([])
  })

  it('names a missing path at once', async () => {
    const error = await readStableManifests('/absent.yaml', {fs: new ScriptedFs({}), sleep}).catch((e: unknown) => e)
    expect(error).to.be.an('error').with.property('message', 'cannot read manifests from /absent.yaml: no such file or directory')
  })

  it('a stable file that does not parse fails with its name and line', async () => {
    const fs = new ScriptedFs({'/m.yaml': () => ({text: `${PREFIX}---\nkind: Mapping\nspec: {ports: [{port: 8`, mtimeMs: 1})})
    const error = await readManifests('/m.yaml', {fs, sleep, now}).catch((e: unknown) => e)
    expect(error).to.be.an('error').with.property('message').that.matches(/^\/m\.yaml:8: invalid YAML: /)
  })
})
