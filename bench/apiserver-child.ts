/**
 * The test API server in a child process (bench/apiserver-process.ts), and a client that changes
 * objects in it over HTTP as kubectl would. The child ends when this process stops it, exits (its
 * stdin closes with this process, also on SIGINT or a crash), or after LOAD_TIMEOUT_MS without loading.
 */
import {spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import type {SyntheticMode} from './synthetic.js'

const ENTRY = fileURLToPath(new URL('apiserver-process.ts', import.meta.url))
const LOAD_TIMEOUT_MS = 300_000
const STOP_TIMEOUT_MS = 10_000

export interface ApiServerProcess {
  url: string
  /** A kubeconfig (YAML) whose current context points at the server. */
  kubeconfig: string
  pid: number
  /** Ends the child and resolves once it has exited (killing it should it not exit within 10 s). */
  stop(): Promise<void>
}

/** Starts the test API server holding `count` synthetic Mappings (with their Services and EndpointSlices) in a process of its own. */
export async function startApiServerProcess(count: number, mode: SyntheticMode): Promise<ApiServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, String(count), mode], {stdio: ['pipe', 'pipe', 'pipe']})
  const killAtExit = () => child.kill('SIGKILL')
  process.once('exit', killAtExit)
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', killAtExit)
      resolve()
    }),
  )
  // Writing to or closing the stdin of a child that has exited must not crash the benchmark.
  child.stdin.on('error', () => undefined)
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const stop = async () => {
    child.stdin.end()
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let stdout = ''
      const timer = setTimeout(() => reject(new Error(`the API server process did not load ${count} Mappings within ${LOAD_TIMEOUT_MS / 1000} s`)), LOAD_TIMEOUT_MS)
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString()
        const end = stdout.indexOf('\n')
        if (end === -1) return
        clearTimeout(timer)
        resolve(stdout.slice(0, end))
      })
      void exited.then(() => {
        clearTimeout(timer)
        reject(new Error(`the API server process exited before it was ready: ${stderr.trim()}`))
      })
    })
    const {url, kubeconfig} = JSON.parse(line) as {url: string; kubeconfig: string}
    return {url, kubeconfig, pid: child.pid!, stop}
  } catch (error) {
    await stop()
    throw error
  }
}

/** Sends one request to the API server as kubectl would (JSON body), failing with the server's answer unless it is a success. */
export async function apiRequest(url: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<void> {
  const headers = method === 'PATCH' ? {'Content-Type': 'application/merge-patch+json'} : {'Content-Type': 'application/json'}
  const response = await fetch(`${url}${path}`, {method, headers, ...(body === undefined ? {} : {body: JSON.stringify(body)})})
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
}
