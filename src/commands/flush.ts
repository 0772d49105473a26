import {createInterface} from 'node:readline/promises'

import * as Flags from '@oclif/core/flags'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, lockFlags, lockOptions} from '../cli/flags.js'
import {runnerOptions} from '../cli/requests.js'
import {flushedCount, flushHost, type FlushOutcome, type FlushReport} from '../lib/app/flush.js'

const KINDS: [keyof FlushReport['removed'], string][] = [
  ['jumps', 'rules in built-in chains'],
  ['chains', 'chains'],
  ['sets', 'ipsets'],
  ['ipRules', 'ip rules'],
  ['routes', 'routes'],
]

export default class Flush extends SmartnatCommand {
  static override summary = 'Remove everything smartnat installed on this host, and nothing else.'

  static override description = `Deletes what either backend installed: smartnat's jumps, its SNM- chains and ipsets, its nftables table (ip smartnat) and that backend's accept in iptables' FORWARD (comment smartnat-nftables), and its ip rules and routing tables (7001 to 7255). Rules, sets and routes that are not smartnat's are left exactly as they are. Running it again finds nothing to remove. Asks for confirmation on a terminal; scripts pass --yes. Mappings are not touched: the next "smartnat sync" installs everything again.`

  static override examples = [
    {description: 'Show what would be removed, without removing anything', command: 'sudo <%= config.bin %> <%= command.id %> --dry-run'},
    {description: 'Remove it all without asking (scripts, shutdown hooks)', command: 'sudo <%= config.bin %> <%= command.id %> --yes'},
    {description: 'What was removed, for scripts', command: 'sudo <%= config.bin %> <%= command.id %> --yes --json'},
  ]

  static override enableJsonFlag = true

  static override flags = {
    netns: hostFlags.netns,
    'command-timeout': hostFlags['command-timeout'],
    ...lockFlags,
    'dry-run': Flags.boolean({summary: 'List what would be removed; change nothing.'}),
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.'}),
  }

  async run(): Promise<FlushOutcome> {
    const {flags} = await this.parseWithConfig(Flush)
    const ask = !flags['dry-run'] && !flags.yes
    if (ask && !process.stdin.isTTY) {
      this.error('flush removes every rule smartnat installed and asks first, but stdin is not a terminal; pass --yes to flush without asking', {exit: 2})
    }
    const outcome = await flushHost(runnerOptions(flags), {
      dryRun: flags['dry-run'],
      lock: lockOptions(flags, 'flush'),
      ...(ask ? {confirm: (preview: FlushReport) => this.confirm(preview)} : {}),
    })
    if (!this.jsonEnabled()) this.describe(outcome)
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

  private describe(outcome: FlushOutcome): void {
    if (outcome.declined) return this.log('nothing removed')
    if (flushedCount(outcome) === 0) return this.log('nothing of smartnat’s is installed: nothing to remove')
    this.log(outcome.dryRun ? 'would remove:' : 'removed:')
    for (const line of reportLines(outcome)) this.log(line)
  }
}

function reportLines(report: FlushReport): string[] {
  return KINDS.filter(([kind]) => report.removed[kind].length > 0).flatMap(([kind, title]) => [
    `  ${title}:`,
    ...report.removed[kind].map((item) => `    ${item}`),
  ])
}
