/**
 * The test API server holding a synthetic cluster, in a process of its own (bench/apiserver-child.ts
 * starts it): a real kube-apiserver runs elsewhere, so its request handling, JSON, watch fan-out and
 * collections must not sit in the event loop and heap of the daemon a benchmark measures.
 * Once loaded it prints one line of JSON, `{"url":..,"kubeconfig":..}`; it ends when its stdin
 * closes (the benchmark ended, whichever way) and on SIGINT or SIGTERM.
 *
 *   node --import tsx bench/apiserver-process.ts COUNT service|direct
 */
import {startApiServer} from '../test/support/apiserver/index.js'
import {loadIntoApiServer, syntheticHost, syntheticSnapshot, type SyntheticMode} from './synthetic.js'

const CRD = new URL('../crds/mapping.yaml', import.meta.url).pathname

const [countText, mode] = process.argv.slice(2)
const count = Number(countText)
if (!Number.isInteger(count) || count < 1 || (mode !== 'service' && mode !== 'direct')) throw new Error('usage: apiserver-process.ts COUNT service|direct')

// Listened for before loading, so that a benchmark failing meanwhile does not leave this process
// behind; exiting closes the server's connections, which is all stopping it would do.
const end = () => process.exit(0)
process.stdin.once('end', end).once('close', end).once('error', end)
process.stdin.resume()
process.once('SIGINT', end).once('SIGTERM', end)

const server = await startApiServer({crds: [CRD]})
loadIntoApiServer(server, syntheticSnapshot(count, syntheticHost().addresses, mode as SyntheticMode))
process.stdout.write(`${JSON.stringify({url: server.url, kubeconfig: server.kubeconfig()})}\n`)
