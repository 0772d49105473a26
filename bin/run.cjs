#!/usr/bin/env node
// The bundled CLI (npm run build): --version and COMMAND --help without oclif, the rest through the
// CLI script. CommonJS: an ES module entry costs every start Node's ES module loader (about 7 ms here,
// 10 % of `node -e 0`; docs/benchmarks.md, "Start-up").
// With DEBUG set oclif prints every error's stack: map its frames to src/ (costs about 25 ms, so only then).
if (process.env.DEBUG) process.setSourceMapsEnabled(true)
require('../dist/cli/start.cjs')
