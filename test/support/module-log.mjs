/**
 * Preloaded with --import into a CLI run by a test: at exit, writes every module the process loaded
 * (ES modules through a load hook, CommonJS ones from require's cache) as a JSON list of file URLs
 * to the file named by SMARTNAT_TEST_MODULE_LOG.
 */
import {writeFileSync} from 'node:fs'
import {createRequire, register} from 'node:module'
import {pathToFileURL} from 'node:url'

const loaded = new Set()
const {port1, port2} = new MessageChannel()
port1.on('message', (url) => loaded.add(url))
port1.unref()
const hook = `let port
export function initialize(data) { port = data.port }
export async function load(url, context, next) { port.postMessage(url); return next(url, context) }`
register(`data:text/javascript,${encodeURIComponent(hook)}`, {parentURL: import.meta.url, data: {port: port2}, transferList: [port2]})

process.on('exit', () => {
  for (const file of Object.keys(createRequire(import.meta.url).cache)) loaded.add(pathToFileURL(file).href)
  const files = [...loaded].filter((url) => url.startsWith('file:'))
  writeFileSync(process.env.SMARTNAT_TEST_MODULE_LOG, JSON.stringify(files))
})
