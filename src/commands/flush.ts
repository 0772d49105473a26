import {createInterface} from 'node:readline/promises'

import * as Flags from '@oclif/core/flags'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, lockFlags, lockOptions, rtTablesFlag} from '../cli/flags.js'
import {runnerOptions} from '../cli/requests.js'
import {flushedCount, flushHost, flushLegacy, type FlushOutcome, type FlushReport, type LegacyReport} from '../lib/app/flush.js'

const KINDS: [keyof LegacyReport['removed'], string][] = [
  ['jumps', 'rules in built-in chains'],
  ['chains', 'chains'],
  ['rules', 'rules in chains named as smartnat’s'],
  ['sets', 'ipsets'],
  ['ipRules', 'ip rules'],
  ['routes', 'routes'],
  ['rtTables', 'rt_tables entries'],
]

export default class Flush extends SmartnatCommand {
  static override summary = 'Remove everything smartnat installed on this host, and nothing else.'

  static override description = `Deletes what either backend installed: smartnat's jumps, its SNM- chains and ipsets, its nftables table (ip smartnat) and that backend's accept in iptables' FORWARD (comment smartnat-nftables), and its ip rules and routing tables (7001 to 7255). Rules, sets and routes that are not smartnat's are left exactly as they are. Running it again finds nothing to remove. Asks for confirmation on a terminal; scripts pass --yes. Mappings are not touched: the next "smartnat sync" installs everything again. With --legacy it removes what the Go SmartNat controller installed instead (docs/operations.md, "Removing the Go controller's rules"), and nothing of smartnat's.`

  static override examples = [
    {description: 'Show what would be removed, without removing anything', command: 'sudo <%= config.bin %> <%= command.id %> --dry-run'},
    {description: 'Remove it all without asking (scripts, shutdown hooks)', command: 'sudo <%= config.bin %> <%= command.id %> --yes'},
    {description: 'What was removed, for scripts', command: 'sudo <%= config.bin %> <%= command.id %> --yes --json'},
    {description: 'Show what the Go SmartNat controller left on this host', command: 'sudo <%= config.bin %> <%= command.id %> --legacy --dry-run'},
  ]

  static override enableJsonFlag = true

  static override flags = {
    netns: hostFlags.netns,
    'command-timeout': hostFlags['command-timeout'],
    ...lockFlags,
    'dry-run': Flags.boolean({summary: 'List what would be removed; change nothing.'}),
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.'}),
    legacy: Flags.boolean({
      summary: 'Remove what the Go SmartNat controller installed instead (its chains, jumps, ipsets, ip rules, routing tables and rt_tables entries); nothing of smartnat’s.',
    }),
    ...rtTablesFlag,
  }

  async run(): Promise<FlushOutcome> {
    const {flags} = await this.parseWithConfig(Flush)
    const ask = !flags['dry-run'] && !flags.yes
    if (ask && !process.stdin.isTTY) {
      const what = flags.legacy ? 'flush --legacy removes every rule the Go controller installed' : 'flush removes every rule smartnat installed'
      this.error(`${what} and asks first, but stdin is not a terminal; pass --yes to flush without asking`, {exit: 2})
    }
    const request = {dryRun: flags['dry-run'], lock: lockOptions(flags, 'flush'), ...(ask ? {confirm: (preview: FlushReport) => this.confirm(preview)} : {})}
    const outcome = flags.legacy
      ? await flushLegacy(runnerOptions(flags), {rtTables: flags['rt-tables']}, request)
      : await flushHost(runnerOptions(flags), request)
    if (!this.jsonEnabled()) this.describe(outcome, flags.legacy ? 'the Go controller’s' : 'smartnat’s')
    return outcome
  }

  private async confirm(preview: FlushReport): Promise<boolean> {
    for (const line of reportLines(preview)) process.stderr.write(`${line}\n`)
    const prompt = createInterface({input: process.stdin, output: process.stderr})
    try {
      const answer = await prompt.question(`Remove these ${flushedCount(preview)} objects? [y/N] `)
      return /^y(es)?$/i.test(answer.trim())
    } finally {
      prompt.close()
    }
  }

  private describe(outcome: FlushOutcome, whose: string): void {
    if (outcome.declined) return this.log('nothing removed')
    if (flushedCount(outcome) === 0) return this.log(`nothing of ${whose} is installed: nothing to remove`)
    this.log(outcome.dryRun ? 'would remove:' : 'removed:')
    for (const line of reportLines(outcome)) this.log(line)
  }
}

function reportLines(report: FlushReport): string[] {
  const removed: Partial<LegacyReport['removed']> = report.removed
  return KINDS.flatMap(([kind, title]) => {
    const items = removed[kind] ?? []
    return items.length === 0 ? [] : [`  ${title}:`, ...items.map((item) => `    ${item}`)]
  })
}
