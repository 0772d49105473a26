/**
 * What smartnat uses of the Kubernetes client, built on its own into dist/cli/kube-client.cjs for the
 * package's CLI script, which require()s it only on the paths that reach the API. Bundled, the client
 * keeps only these and what they need: a process that loads it takes about 40 MB less than one that
 * loads the package from node_modules, every API group and model included (docs/benchmarks.md, "Memory
 * at 10,000 Mappings"). test/unit/kube-client.test.ts checks that every name src/ takes is here.
 */
export {CoordinationV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig, Observable, PatchStrategy, V1MicroTime, setHeaderOptions} from '@kubernetes/client-node'
