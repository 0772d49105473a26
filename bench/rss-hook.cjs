// Loaded with `node --require` into a process whose peak RSS a benchmark wants: writes it (in kB) to
// the file SMARTNAT_BENCH_RSS_FILE names when the process exits. CommonJS, as the CLI it is loaded
// into: `--import` of an ES module sets up Node's ES module loading in a process that otherwise does
// not (0.7 MB more peak RSS for `smartnat sync --from-file ... --dry-run`, 51.4 against 50.7 MB).
const {writeFileSync} = require('node:fs')

process.on('exit', () => {
  if (process.env.SMARTNAT_BENCH_RSS_FILE) writeFileSync(process.env.SMARTNAT_BENCH_RSS_FILE, String(process.resourceUsage().maxRSS))
})
