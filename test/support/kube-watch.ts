/**
 * `smartnat watch` against the test API server from a namespace of the lab, as the Kubernetes end-to-end
 * tests start it: a folder of its own for the kubeconfig and the lock, /readyz and /metrics on a free port,
 * its log (stdout, one JSON object a line) kept for the tests to read and for a failed wait to show.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {ApiServer} from './apiserver/index.js'
import {eventually} from './e2e.js'
import {freePort, httpGet} from './http.js'
import type {Lab, LabNamespace} from './lab.js'
import {killSmartnat, startSmartnat, type RunningCli} from './smartnat-cli.js'

export interface KubeWatchOptions {
  /** The lab namespace it runs in (default host). */
  netns?: LabNamespace
  /** SIGKILLed after this long however the tests go (default 110 s). */
  timeoutMs?: number
}

/** Where its kubeconfig comes from: the test API server's own, or the text of one (through a proxy, or to another server). */
export type KubeconfigSource = ApiServer | string

export interface KubeWatch {
  readonly cli: RunningCli
  /** Its folder, removed by stop(): a test may keep files of its own there (kubectl's cache). */
  readonly dir: string
  /** Its kubeconfig, pointing at the test API server (kubectl may use it too). */
  readonly kubeconfig: string
  readonly lockFile: string
  /** The port of its /readyz and /metrics. */
  readonly port: number
  /** What it has logged on stdout so far. */
  readonly log: string
  /** Settles as `check` does; a failure's message gets the last 30 lines of the log. */
  withOutput<T>(check: Promise<T>): Promise<T>
  /** Waits (20 s at most) for /readyz to answer 200. */
  ready(): Promise<void>
  /** SIGKILLs it if it still runs, waits for it to exit and removes its folder. */
  stop(): Promise<void>
}

/** Starts `smartnat watch --kubeconfig K --netns NS --lock-file L --metrics-addr A FLAGS...` against the server `source` names. */
export async function startKubeWatch(lab: Lab, source: KubeconfigSource, flags: string[], options: KubeWatchOptions = {}): Promise<KubeWatch> {
  const dir = await mkdtemp(join(tmpdir(), 'smartnat-kube-watch-'))
  const kubeconfig = join(dir, 'kubeconfig')
  const lockFile = join(dir, 'smartnat.lock')
  await writeFile(kubeconfig, typeof source === 'string' ? source : source.kubeconfig(), {mode: 0o600})
  const port = await freePort()
  const cli = startSmartnat(
    ['watch', '--kubeconfig', kubeconfig, '--netns', lab.ns(options.netns ?? 'host'), '--lock-file', lockFile, '--metrics-addr', `127.0.0.1:${port}`, ...flags],
    {timeoutMs: options.timeoutMs ?? 110_000},
  )
  let log = ''
  cli.child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()))
  const withOutput = <T>(check: Promise<T>): Promise<T> => check.catch((error: Error) => {
    throw new Error(`${error.message}\n--- watch log ---\n${log.split('\n').slice(-30).join('\n')}`)
  })
  return {
    cli,
    dir,
    kubeconfig,
    lockFile,
    port,
    get log() {
      return log
    },
    withOutput,
    ready: async () => {
      await withOutput(eventually('/readyz 200', 20_000, async () => ((await httpGet(port, '/readyz')).status === 200 ? true : undefined)))
    },
    stop: async () => {
      await killSmartnat(cli)
      await rm(dir, {recursive: true, force: true})
    },
  }
}
