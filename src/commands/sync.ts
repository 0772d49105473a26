import {Flags} from '@oclif/core'
import {Listr} from 'listr2'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, lockFlags, lockOptions, planFlags, removalFlags, removalPolicy, sourceFlags, sourceOptions, syncSettings} from '../cli/flags.js'
import {summarizeVerdict, verdictLines, type MappingSummary} from '../cli/verdicts.js'
import type {Backend, Payload, WriteCounts} from '../lib/backend/backend.js'
import {createBackend} from '../lib/backend/registry.js'
import {forwardDropProblem} from '../lib/backend/forward.js'
import {parseAssumedAddresses} from '../lib/host/assumed.js'
import {readHostInterfaces} from '../lib/host/interfaces.js'
import {withLock} from '../lib/host/lock.js'
import {ExecRunner} from '../lib/host/runner.js'
import {oneShotSource, type OneShotSource} from '../lib/source/oneshot.js'
import {describeRemoval, MassRemovalError, oneShotGuard, type RemovalGuard} from '../lib/sync/guard.js'
import {describePending} from '../lib/sync/conntrack-cleanup.js'
import type {Plan} from '../lib/plan/model.js'
import {dryRun, syncSteps} from '../lib/sync/once.js'
import type {Publisher, PublishResult} from '../lib/sync/publish.js'

interface SyncOutput {
  dryRun: boolean
  mappings: MappingSummary[]
  configured: number
  invalid: number
  /** Valid Mappings with an address this host has but cannot serve (see `faults`). */
  faulty: number
  /** What keeps this host from serving some addresses: an interface it cannot route replies out of, a forward chain that drops. */
  faults: string[]
  changed?: boolean
  written?: WriteCounts
  conntrackDeleted?: number
  /** Why dropping connections to vanished targets failed (the rules were applied). */
  conntrackError?: string
  statusesWritten?: number
  eventsCreated?: number
  /** Programmed Mappings this sync removed although they were more than --max-removal (with --allow-mass-removal). */
  massRemoval?: {programmed: number; removed: string[]}
  scripts?: Payload[]
}

/** Exit code of a sync refused by the mass-removal guard. */
const MASS_REMOVAL_EXIT = 6

export default class Sync extends SmartnatCommand {
  static override summary = 'Make this host’s NAT match the Mappings, once.'

  static override description = `Reads Mappings, the Services they name and those Services' EndpointSlices, keeps the addresses assigned to this host's external interfaces, and applies the whole NAT state atomically (one transaction per tool), writing nothing when the kernel already matches. Without --from-file, Mappings come from the Kubernetes API and each one's status and Events are written back. Run it from cron, or use "smartnat watch" to keep syncing. Invalid Mappings are reported and leave every other Mapping alone; with --strict they make the exit code 3. So does a fault of the host that keeps some addresses from being served (an external interface whose gateway --gw-offset cannot place, a forward chain that drops smartnat's connections): it is a warning, every other interface and Mapping is programmed, and the Mappings concerned are told why. A sync that would remove more than --max-removal of the Mappings programmed on this host (and at least 10), as an emptied or cut-short source would, changes nothing and exits with code 6 unless --allow-mass-removal is given.`

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
    ...removalFlags,
    'allow-mass-removal': Flags.boolean({summary: 'Apply even when the sync removes more than --max-removal of the Mappings programmed here (the source was emptied on purpose).'}),
    'dry-run': Flags.boolean({summary: 'Print verdicts and the scripts a real sync would apply; needs no root, touches nothing.'}),
    'assume-addresses': Flags.string({
      summary: 'With --dry-run: use these host addresses instead of the machine’s; LEN defaults to 24, IF to eth1.',
      helpValue: 'IP[/LEN][@IF],...',
      dependsOn: ['dry-run'],
    }),
    strict: Flags.boolean({summary: 'Exit with code 3 when any Mapping is invalid or any address cannot be served.'}),
    full: Flags.boolean({summary: 'Rewrite every chain and set smartnat owns, even where the kernel already matches.'}),
  }

  async run(): Promise<SyncOutput> {
    const {flags} = await this.parseWithConfig(Sync)
    const source = await this.source(flags)
    let settings, guard
    try {
      settings = syncSettings(flags)
      guard = oneShotGuard(removalPolicy(flags), flags['allow-mass-removal'])
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    const runner = new ExecRunner({timeoutSeconds: flags['command-timeout'], ...(flags.netns ? {netns: flags.netns} : {})})
    const backend = createBackend(flags.backend, runner, {forwardAccept: flags['forward-accept']})

    const output = flags['dry-run']
      ? await this.dryRun(source, flags['assume-addresses'], runner, backend, settings)
      : await withLock(lockOptions(flags, 'sync'), () => this.apply(source, runner, backend, settings, flags.full, guard)).catch(
          (error: unknown) => {
            if (!(error instanceof MassRemovalError)) throw error
            this.error(`${error.message}. If the source is right, run again with --allow-mass-removal.`, {exit: MASS_REMOVAL_EXIT})
          },
        )

    for (const fault of output.faults) this.warn(fault)
    if (flags.strict && output.invalid + output.faulty > 0) {
      const said = [output.invalid > 0 ? `${output.invalid} Mapping(s) invalid` : '', output.faulty > 0 ? `${output.faulty} Mapping(s) not served on every address` : '']
      this.error(said.filter(Boolean).join('; '), {exit: 3})
    }
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
    return {dryRun: true, mappings, ...counts(mappings), faults: interfaceFaults(report.plan), scripts: report.payloads}
  }

  private async apply(
    source: OneShotSource & {publisher?: Publisher},
    runner: ExecRunner,
    backend: Backend,
    settings: ReturnType<typeof syncSettings>,
    full: boolean,
    removalGuard: RemovalGuard,
  ): Promise<SyncOutput> {
    const {steps, report} = syncSteps({runner, backend}, () => source.load(), settings, {full, removalGuard})
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
    if (result.conntrackError !== undefined) {
      // The rules are in place, so the sync succeeds; but the next sync no longer sees what changed.
      const left = result.pendingCleanup ? `\nleft in place: ${describePending(result.pendingCleanup)}; they last until their clients give up or conntrack times them out` : ''
      this.warn(`rules applied, but connections to vanished targets were not dropped: ${result.conntrackError}${left}`)
    }
    if (!this.jsonEnabled()) {
      for (const line of verdictLines(result.plan.verdicts)) this.log(line)
      if (result.massRemoval) this.log(`removed ${describeRemoval(result.massRemoval)}, as --allow-mass-removal allows`)
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
      faults: [...interfaceFaults(result.plan), ...result.forward.drops.map(forwardDropProblem)],
      changed,
      written,
      conntrackDeleted: result.conntrackDeleted,
      ...(result.conntrackError === undefined ? {} : {conntrackError: result.conntrackError}),
      ...(published ? {statusesWritten: published.status.patched, eventsCreated: published.eventsCreated} : {}),
      ...(result.massRemoval ? {massRemoval: result.massRemoval} : {}),
    }
  }
}

function counts(mappings: MappingSummary[]): {configured: number; invalid: number; faulty: number} {
  return {
    configured: mappings.filter((m) => m.valid && Object.keys(m.configuredAddresses).length > 0).length,
    invalid: mappings.filter((m) => !m.valid).length,
    faulty: mappings.filter((m) => Object.keys(m.faults).length > 0).length,
  }
}

function interfaceFaults(planned: Plan): string[] {
  return planned.interfaceFaults.map((fault) => `${fault.reason}; no Mapping is served on its addresses`)
}
