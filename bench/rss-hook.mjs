// Loaded with `node --import` into a process whose peak RSS a benchmark wants: writes it (in kB) to
// the file SMARTNAT_BENCH_RSS_FILE names when the process exits.
import {writeFileSync} from 'node:fs'

process.on('exit', () => {
  if (process.env.SMARTNAT_BENCH_RSS_FILE) writeFileSync(process.env.SMARTNAT_BENCH_RSS_FILE, String(process.resourceUsage().maxRSS))
})
