import {Flags} from '@oclif/core'
import {Listr} from 'listr2'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, lockFlags, planFlags, sourceFlags, sourceOptions, syncSettings} from '../cli/flags.js'
import {summarizeVerdict, verdictLines, type MappingSummary} from '../cli/verdicts.js'
import {createBackend, type Backend, type Payload, type WriteCounts} from '../lib/backend/backend.js'
import {parseAssumedAddresses} from '../lib/host/assumed.js'
import {readHostInterfaces} from '../lib/host/interfaces.js'
import {withLock} from '../lib/host/lock.js'
import {ExecRunner} from '../lib/host/runner.js'
import {oneShotSource, type OneShotSource} from '../lib/source/oneshot.js'
import {dryRun, syncSteps} from '../lib/sync/once.js'
import type {Publisher, PublishResult} from '../lib/sync/publish.js'

interface SyncOutput {
  dryRun: boolean
  mappings: MappingSummary[]
  configured: number
  invalid: number
  changed?: boolean
  written?: WriteCounts
  conntrackDeleted?: number
  statusesWritten?: number
  eventsCreated?: number
  scripts?: Payload[]
}

export default class Sync extends SmartnatCommand {
  static override summary = 'Make this host’s NAT match the Mappings, once.'

  static override description = `Reads Mappings, the Services they name and those Services' EndpointSlices, keeps the addresses assigned to this host's external interfaces, and applies the whole NAT state atomically (one transaction per tool), writing nothing when the kernel already matches. Without --from-file, Mappings come from the Kubernetes API and each one's status and Events are written back. Run it from cron, or use "smartnat watch" to keep syncing. Invalid Mappings are reported and leave every other Mapping alone; with --strict they make the exit code 3.`

  static override examples = [
    {description: 'Show what would be programmed, without root and without touching the kernel', command: '<%= config.bin %> <%= command.id %> --from-file examples/ --dry-run --assume-addresses 198.18.0.10,198.18.0.11'},
    {description: 'Apply manifests from a directory', command: 'sudo <%= config.bin %> <%= command.id %> --from-file /etc/smartnat/mappings/'},
    {description: 'A summary for scripts', command: 'sudo <%= config.bin %> <%= command.id %> --from-file mappings.yaml --json'},
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...sourceFlags,
    ...hostFlags,
    ...planFlags,
    ...lockFlags,
    'dry-run': Flags.boolean({summary: 'Print verdicts and the scripts a real sync would apply; needs no root, touches nothing.'}),
    'assume-addresses': Flags.string({
      summary: 'With --dry-run: use these host addresses instead of the machine’s; LEN defaults to 24, IF to eth1.',
      helpValue: 'IP[/LEN][@IF],...',
      dependsOn: ['dry-run'],
    }),
    strict: Flags.boolean({summary: 'Exit with code 3 when any Mapping is invalid.'}),
    full: Flags.boolean({summary: 'Rewrite every chain and set smartnat owns, even where the kernel already matches.'}),
  }

  async run(): Promise<SyncOutput> {
    const {flags} = await this.parseWithConfig(Sync)
    const source = await this.source(flags)
    const settings = syncSettings(flags)
    const runner = new ExecRunner({timeoutSeconds: flags['command-timeout'], ...(flags.netns ? {netns: flags.netns} : {})})
    const backend = createBackend(flags.backend, runner)

    const output = flags['dry-run']
      ? await this.dryRun(source, flags['assume-addresses'], runner, backend, settings)
      : await withLock({path: flags['lock-file'], waitMs: flags['lock-wait'] * 1000, purpose: 'sync'}, () => this.apply(source, runner, backend, settings, flags.full))

    if (flags.strict && output.invalid > 0) this.error(`${output.invalid} Mapping(s) invalid`, {exit: 3})
    return output
  }

  /** Files or the API; with the API, verdicts go back as Mapping statuses and Events. */
  private async source(flags: Parameters<typeof sourceOptions>[0]): Promise<OneShotSource & {publisher?: Publisher}> {
    let source: OneShotSource
    try {
      source = await oneShotSource(sourceOptions(flags))
    } catch (error) {
      // Nothing in the flags or the kubeconfig changes by trying again: a distinct exit code, at once.
      this.error((error as Error).message, {exit: 2})
    }
    for (const warning of source.warnings) this.warn(warning)
    if (!source.kubeConfig) return source
    const {kubePublisher} = await import('../lib/sync/publish.js')
    return {...source, publisher: kubePublisher(source.kubeConfig, undefined, source.api)}
  }

  private async dryRun(
    source: OneShotSource & {publisher?: Publisher},
    assumed: string | undefined,
    runner: ExecRunner,
    backend: Backend,
    settings: ReturnType<typeof syncSettings>,
  ): Promise<SyncOutput> {
    const snapshot = await source.load()
    const host = assumed ? parseAssumedAddresses(assumed) : await readHostInterfaces(runner, settings.interfacesPattern)
    const report = dryRun(snapshot, host, settings, backend)
    const mappings = report.plan.verdicts.map(summarizeVerdict)
    if (!this.jsonEnabled()) {
      for (const line of verdictLines(report.plan.verdicts)) this.log(line)
      for (const payload of report.payloads) this.log(`\n# ${payload.command}\n${payload.text.trimEnd()}`)
    }
    return {dryRun: true, mappings, ...counts(mappings), scripts: report.payloads}
  }

  private async apply(
    source: OneShotSource & {publisher?: Publisher},
    runner: ExecRunner,
    backend: Backend,
    settings: ReturnType<typeof syncSettings>,
    full: boolean,
  ): Promise<SyncOutput> {
    const {steps, report} = syncSteps({runner, backend}, () => source.load(), settings, {full})
    let published: PublishResult | undefined
    if (source.publisher) {
      const {publisher} = source
      steps.push({title: 'Write Mapping statuses and Events', run: async () => void (published = await publisher.publish(report()))})
    }
    if (!this.jsonEnabled() && process.stdout.isTTY) {
      await new Listr(steps.map((step) => ({title: step.title, task: () => step.run()})), {exitOnError: true}).run()
    } else {
      for (const step of steps) {
        if (!this.jsonEnabled()) this.log(`- ${step.title}`)
        await step.run()
      }
    }
    const result = report()
    const mappings = result.plan.verdicts.map(summarizeVerdict)
    const {changed, written} = result.applied
    for (const error of published?.errors ?? []) this.warn(error.message)
    if (!this.jsonEnabled()) {
      for (const line of verdictLines(result.plan.verdicts)) this.log(line)
      const dropped = `${result.conntrackDeleted} stale connection${result.conntrackDeleted === 1 ? '' : 's'} dropped`
      this.log(
        changed
          ? `applied: ${written.chains} chains, ${written.rules} rules, ${written.sets} sets, ${written.routes} routes written; ${dropped}`
          : `kernel already up to date: nothing written${result.conntrackDeleted > 0 ? `; ${dropped}` : ''}`,
      )
    }
    return {
      dryRun: false,
      mappings,
      ...counts(mappings),
      changed,
      written,
      conntrackDeleted: result.conntrackDeleted,
      ...(published ? {statusesWritten: published.status.patched, eventsCreated: published.eventsCreated} : {}),
    }
  }
}

function counts(mappings: MappingSummary[]): {configured: number; invalid: number} {
  return {
    configured: mappings.filter((m) => m.valid && Object.keys(m.configuredAddresses).length > 0).length,
    invalid: mappings.filter((m) => !m.valid).length,
  }
}
