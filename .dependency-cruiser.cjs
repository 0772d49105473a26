/**
 * The layers of docs/architecture.md, checked by `npm run lint`. A rule names what must never
 * happen; each message says which layer rule a violation breaks.
 */
const LIB = '^src/lib/'

/** The folders of src/lib from the top down (docs/architecture.md): each imports only those below it. */
const LAYERS = [['app'], ['status', 'explain'], ['inspect', 'format'], ['sync'], ['source'], ['observe'], ['backend'], ['routing'], ['host'], ['allocate'], ['plan'], ['mapping'], ['net']]

const downwardOnly = LAYERS.slice(1).map((layer, i) => ({
  name: 'layers-downward',
  comment: `lib/${layer.join(', lib/')} may not import the layers above it (${LAYERS.slice(0, i + 1).flat().join(', ')}).`,
  severity: 'error',
  from: {path: `${LIB}(${layer.join('|')})/`},
  to: {path: `${LIB}(${LAYERS.slice(0, i + 1).flat().join('|')})/`},
}))

module.exports = {
  forbidden: [
    ...downwardOnly,
    {
      name: 'no-cycles',
      comment: 'Modules form a tree of layers: no import cycle, at any length.',
      severity: 'error',
      from: {path: '^src/'},
      to: {circular: true},
    },
    {
      name: 'pure-core',
      comment: 'net, mapping, plan and allocate are pure (no I/O, no clock): they import one another and node:crypto or @noble/hashes (owned names are hashes), nothing else.',
      severity: 'error',
      from: {path: `${LIB}(net|mapping|plan|allocate)/`},
      to: {pathNot: [`${LIB}(net|mapping|plan|allocate)/`, '^crypto$', '^node:crypto$', '^node_modules/@noble/hashes/']},
    },
    {
      name: 'plan-below-everything',
      comment: 'mapping and net never import plan.',
      severity: 'error',
      from: {path: `${LIB}(net|mapping)/`},
      to: {path: `${LIB}plan/`},
    },
    {
      name: 'only-host-runs-processes',
      comment: 'Processes are started only by src/lib/host (the one command runner and the lock); everything else runs commands through an injected Runner.',
      severity: 'error',
      from: {path: '^src/', pathNot: `${LIB}host/`},
      to: {path: '^(node:)?child_process$'},
    },
    {
      name: 'lib-below-cli',
      comment: 'The library never imports the command line: src/lib does not import src/commands or src/cli.',
      severity: 'error',
      from: {path: LIB},
      to: {path: '^src/(commands|cli)/'},
    },
    {
      name: 'backend-folders-private',
      comment: 'A backend folder is entered only through the backend registry: nothing outside src/lib/backend/NAME/ imports from it.',
      severity: 'error',
      from: {path: '^src/', pathNot: [`${LIB}backend/registry\\.ts$`, `${LIB}backend/(iptables|nftables)/`]},
      to: {path: `${LIB}backend/(iptables|nftables)/`},
    },
    {
      name: 'backends-independent',
      comment: 'One backend never imports another: what both need lives beside them (src/lib/backend/*.ts, src/lib/routing).',
      severity: 'error',
      from: {path: `${LIB}backend/(iptables|nftables)/`},
      to: {path: `${LIB}backend/(iptables|nftables)/`, pathNot: `${LIB}backend/$1/`},
    },
    {
      name: 'routing-below-backends',
      comment: 'Reply routing (ip rule / ip route) is one module both backends use; it knows no backend.',
      severity: 'error',
      from: {path: `${LIB}routing/`},
      to: {path: `${LIB}backend/`},
    },
    {
      name: 'explain-and-status-apart',
      comment: 'explain and status are two views of one inspection: neither imports the other.',
      severity: 'error',
      from: {path: `${LIB}(explain|status)/`},
      to: {path: `${LIB}(explain|status)/`, pathNot: `${LIB}$1/`},
    },
    {
      name: 'commands-are-thin',
      comment: 'Commands turn flags into one library call and print: they import src/cli, the facade (src/lib/app) and formatting only.',
      severity: 'error',
      from: {path: '^src/commands/'},
      to: {path: '^src/', pathNot: ['^src/cli/', `${LIB}app/`, `${LIB}format/`, `${LIB}(explain|status)/format\\.ts$`]},
    },
  ],
  options: {
    doNotFollow: {path: 'node_modules'},
    tsPreCompilationDeps: true,
    tsConfig: {fileName: 'tsconfig.json'},
    enhancedResolveOptions: {extensions: ['.ts', '.js']},
  },
}
