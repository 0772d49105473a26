import * as Flags from '@oclif/core/flags'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, leaseFlags, leaseSettings, lockFlags, planFlags, removalFlags, rtTablesFlag, sourceFlags, sourceOptions} from '../cli/flags.js'
import {runWithProgress} from '../cli/progress.js'
import {syncRequest} from '../cli/requests.js'
import {syncLines} from '../cli/verdicts.js'
import {MassRemovalError} from '../lib/app/errors.js'
import {openSyncSource, runSync, type SyncOutput, type SyncSource} from '../lib/app/sync.js'

/** Exit code of a sync refused by the mass-removal guard. */
const MASS_REMOVAL_EXIT = 6

export default class Sync extends SmartnatCommand {
  static override summary = 'Make this host’s NAT match the Mappings, once.'

  static override description = `Reads Mappings, the Services they name and those Services' EndpointSlices, keeps the addresses assigned to this host's external interfaces, and applies the whole NAT state atomically (one transaction per tool), writing nothing when the kernel already matches. Without --from-file, Mappings come from the Kubernetes API and each one's status and Events are written back. Run it from cron, or use "smartnat watch" to keep syncing. Invalid Mappings are reported and leave every other Mapping alone; with --strict they make the exit code 3. So does a fault of the host that keeps some addresses from being served (an external interface whose gateway --gw-offset cannot place, a forward chain that drops smartnat's connections): it is a warning, every other interface and Mapping is programmed, and the Mappings concerned are told why. A sync that would remove more than --max-removal of the Mappings programmed on this host (and at least 10), as an emptied or cut-short source would, changes nothing and exits with code 6 unless --allow-mass-removal is given.`

  static override examples = [
    {description: 'Show what would be programmed, without root and without touching the kernel', command: '<%= config.bin %> <%= command.id %> --from-file examples/ --dry-run --assume-addresses 198.18.0.10,198.18.0.11'},
    {description: 'Apply manifests from a directory', command: 'sudo <%= config.bin %> <%= command.id %> --from-file /etc/smartnat/mappings/'},
    {description: 'A summary for scripts', command: 'sudo <%= config.bin %> <%= command.id %> --from-file mappings.yaml --json'},
    {description: 'Take over from the Go SmartNat controller (stopped first) without interrupting its Mappings', command: 'sudo <%= config.bin %> <%= command.id %> --migrate'},
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...sourceFlags,
    ...leaseFlags,
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
    migrate: Flags.boolean({
      summary: 'Also remove what the Go SmartNat controller installed, in the same transaction (iptables) or right after the nftables table is in place; stop that controller first.',
      exclusive: ['dry-run'],
    }),
    ...rtTablesFlag,
  }

  async run(): Promise<SyncOutput> {
    const {flags} = await this.parseWithConfig(Sync)
    const source = await this.source(flags)
    let request
    try {
      request = syncRequest(flags)
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    const {output, warnings} = await runSync(source, request, (steps) => runWithProgress(steps, {quiet: this.jsonEnabled(), log: (line) => this.log(line)})).catch(
      (error: unknown) => {
        if (!(error instanceof MassRemovalError)) throw error
        this.error(`${error.message}. If the source is right, run again with --allow-mass-removal.`, {exit: MASS_REMOVAL_EXIT})
      },
    )
    for (const warning of warnings) this.warn(warning)
    if (!this.jsonEnabled()) for (const line of syncLines(output)) this.log(line)

    for (const fault of output.faults) this.warn(fault)
    if (flags.strict && output.invalid + output.faulty > 0) {
      const said = [output.invalid > 0 ? `${output.invalid} Mapping(s) invalid` : '', output.faulty > 0 ? `${output.faulty} Mapping(s) not served on every address` : '']
      this.error(said.filter(Boolean).join('; '), {exit: 3})
    }
    return output
  }

  /** Files or the API; a source that cannot be opened ends the command at once with code 2. */
  private async source(flags: Parameters<typeof sourceOptions>[0] & Parameters<typeof leaseSettings>[0]): Promise<SyncSource> {
    let source: SyncSource
    try {
      source = await openSyncSource({...sourceOptions(flags), lease: leaseSettings(flags)})
    } catch (error) {
      // Nothing in the flags or the kubeconfig changes by trying again: a distinct exit code, at once.
      this.error((error as Error).message, {exit: 2})
    }
    for (const warning of source.warnings) this.warn(warning)
    return source
  }
}
