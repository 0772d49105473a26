#!/usr/bin/env node
// The bundled CLI (npm run build): --version and COMMAND --help without oclif, the rest through it.
// With DEBUG set oclif prints every error's stack: map its frames to src/ (costs about 25 ms, so only then).
if (process.env.DEBUG) process.setSourceMapsEnabled(true)
await import('../dist/cli/main.js')
