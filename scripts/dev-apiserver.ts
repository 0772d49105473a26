/** Runs the test Kubernetes API server on loopback with crds/ loaded, for trying smartnat and kubectl by hand. */
import {readdirSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {startApiServer} from '../test/support/apiserver/index.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const {values} = parseArgs({
  options: {
    port: {type: 'string', default: '0'},
    kubeconfig: {type: 'string', default: join(root, 'tmp', 'dev-apiserver.kubeconfig')},
    namespace: {type: 'string', default: 'default'},
    verbose: {type: 'boolean', short: 'v', default: false},
    help: {type: 'boolean', short: 'h', default: false},
  },
})

if (values.help) {
  console.log('usage: npm run dev:apiserver -- [--port N] [--kubeconfig FILE] [--namespace NS] [--verbose]')
  process.exit(0)
}

const port = Number(values.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port ${values.port}: must be an integer 0..65535`)
  process.exit(2)
}

const crdDir = join(root, 'crds')
const crds = readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(crdDir, f))
const server = await startApiServer({port, crds, log: values.verbose ? (line) => console.log(line) : undefined})
const kubeconfig = resolve(values.kubeconfig)
await mkdir(dirname(kubeconfig), {recursive: true})
await server.writeKubeconfig(kubeconfig, {namespace: values.namespace})

console.log(`Kubernetes API server listening on ${server.url} (CRDs: ${crds.map((f) => f.slice(root.length + 1)).join(', ') || 'none'})`)
console.log(`kubeconfig written to ${kubeconfig}`)
console.log('')
console.log(`  export KUBECONFIG=${kubeconfig}`)
console.log('  kubectl apply -f examples/')
console.log('  kubectl get mappings,services,endpointslices -A')
console.log('')
console.log('State lives in memory only. Ctrl-C stops the server.')

const shutdown = () => {
  server.stop().then(() => process.exit(0), () => process.exit(1))
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
