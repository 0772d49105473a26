import * as Errors from '@oclif/core/errors'
import * as Flags from '@oclif/core/flags'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, lockFlags, planFlags, sourceFlags} from '../cli/flags.js'
import {inspectRequest} from '../cli/requests.js'
import {errorChain} from '../lib/app/errors.js'
import {DEFAULT_CONNTRACKD_CONFIG, hostStatus, toolVersionsPath, type StatusReport} from '../lib/app/status.js'
import {outputPaint} from '../lib/format/columns.js'
import {statusDocument, statusLines} from '../lib/status/format.js'

// FTFW sends at least one message a second: a peer unheard for 1.5 s is not there.
const SYNC_SAMPLE_MS = 1500

export default class Status extends SmartnatCommand {
  static override summary = 'This host’s NAT at a glance: prerequisites, interfaces, and every Mapping’s state, drift and counters.'

  static override description = `Plans the Mappings like a sync would, reads what the kernel holds, and compares the two rule by rule and set entry by set entry, telling each difference to the Mapping it concerns. Writes nothing. Without root the kernel cannot be read and only the desired state is shown.

Mappings of every namespace are listed unless -n NAMESPACE narrows them: a host serves all namespaces alike.

--backend says which backend's rules to read; the nftables backend's rules keep no packet counters, so its PACKETS column shows -.

With --floating-addresses (an HA pair), it also shows per floating address whether this host is active (keepalived assigned it here) or standby, and whether conntrackd's sync works: its sync link is up and the peer was heard within 1.5 s (read from \`conntrackd -s link\` twice).

Exit codes, for monitoring: 0 all is well; 3 drift (the kernel differs from the desired state; the next sync repairs it); 4 a prerequisite fails (missing tool, ip_forward off, strict rp_filter on an external interface, an external interface whose gateway --gw-offset cannot place, a forward chain whose drop policy drops smartnat's traffic); 5 the kernel's rules cannot be read (not root); 6 an HA pair's connection sync is not healthy, so a failover would drop established connections. When several apply, 4 wins over 5, 5 over 3, and 3 over 6. Invalid Mappings are listed with their reason but do not change the exit code.`

  static override examples = [
    {description: 'Everything, from manifests', command: 'sudo <%= config.bin %> <%= command.id %> --from-file /etc/smartnat/mappings/'},
    {description: 'One namespace, with endpoints, allowed sources and byte counters', command: 'sudo <%= config.bin %> <%= command.id %> -f mappings/ -n shop -o wide'},
    {description: 'For monitoring: exit code and JSON', command: 'sudo <%= config.bin %> <%= command.id %> -f mappings/ --json'},
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...sourceFlags,
    ...hostFlags,
    ...planFlags,
    'lock-file': lockFlags['lock-file'],
    namespace: Flags.string({char: 'n', summary: 'Only Mappings of this namespace.', helpValue: 'NAMESPACE', exclusive: ['all-namespaces']}),
    'all-namespaces': Flags.boolean({char: 'A', summary: 'Mappings of every namespace (the default).'}),
    output: Flags.string({char: 'o', summary: 'Output format.', options: ['wide', 'json', 'yaml']}),
    'conntrackd-config': Flags.string({
      summary: 'With --floating-addresses: conntrackd’s configuration file, which names the control socket its sync statistics are read from.',
      env: 'SMARTNAT_CONNTRACKD_CONFIG',
      default: DEFAULT_CONNTRACKD_CONFIG,
      helpValue: 'PATH',
    }),
  }

  async run(): Promise<StatusReport> {
    const {flags} = await this.parseWithConfig(Status)
    let request
    try {
      request = inspectRequest(flags)
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    const {report, exitCode} = await hostStatus({
      ...request,
      lockPath: flags['lock-file'],
      toolVersions: toolVersionsPath(flags['lock-file']),
      conntrackd: {config: flags['conntrackd-config'], sampleMs: SYNC_SAMPLE_MS},
      ...(flags.namespace === undefined ? {} : {namespace: flags.namespace}),
    }).catch((error: unknown) => this.error(errorChain(error)))

    // Under --json oclif prints the returned report, but only when run() returns; a failing code throws.
    if (this.jsonEnabled()) {
      if (exitCode !== 0) this.logJson(report)
    } else if (flags.output === 'json' || flags.output === 'yaml') this.log(statusDocument(report, flags.output))
    else for (const line of statusLines(report, {paint: outputPaint(), wide: flags.output === 'wide'})) this.log(line)

    if (exitCode !== 0) this.exit(exitCode)
    return report
  }

  // The report is printed already, JSON included; a non-zero exit only carries the code.
  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
    if (error instanceof Errors.ExitError) throw error
    return super.catch(error)
  }
}
