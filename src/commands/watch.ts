import * as Flags from '@oclif/core/flags'

import {SmartnatCommand} from '../cli/base.js'
import {exitIfLingering, stopSignal} from '../cli/signals.js'
import {DEFAULT_METRICS_ADDRESS, hostFlags, LOG_LEVELS, leaseFlags, lockFlags, planFlags, removalFlags, sourceFlags} from '../cli/flags.js'
import {watchRequest} from '../cli/requests.js'
import {errorText} from '../lib/app/errors.js'
import {runWatch} from '../lib/app/watch.js'

export default class Watch extends SmartnatCommand {
  static override summary = 'Keep this host’s NAT matching the Mappings, as a daemon.'

  static override description = `Syncs whenever the Mappings, Services or EndpointSlices change (promptly when idle, at most once per --min-sync-interval under churn) and every --resync, which also repairs rules someone removed. It follows the host's addresses (ip monitor): an address added or removed starts a sync at once. A failed sync keeps the rules applied before and is retried with backoff. Without --from-file, Mappings come from the Kubernetes API and each one's status and Events are written back. Statuses are written after each sync, never holding up the next one, and a round of writes that takes longer than --status-timeout is abandoned. Serves /healthz (fails when the loop itself is stuck), /healthcheck (the Go controller's: OK and the time of the last successful sync), /readyz (fails when the source is not synced or failing, the last sync failed or is older than twice --resync, or statuses have waited longer than that) and Prometheus /metrics on --metrics-addr. A sync that would remove more than --max-removal of the Mappings programmed here (and at least 10) is held, with /readyz answering 503, until the same removal has lasted --removal-delay resyncs. Holds the smartnat lock while it runs, so a "smartnat sync" from cron waits for it or fails saying who holds it. SIGTERM or SIGINT stops it, leaving the rules in place unless --flush-on-exit.`

  static override examples = [
    {description: 'Watch a directory of manifests', command: 'sudo <%= config.bin %> <%= command.id %> --from-file /etc/smartnat/mappings/'},
    {description: 'Resync every 5 minutes, metrics on all interfaces', command: 'sudo <%= config.bin %> <%= command.id %> -f mappings.yaml --resync 5m --metrics-addr 0.0.0.0:9469'},
  ]

  static override flags = {
    ...sourceFlags,
    ...leaseFlags,
    ...hostFlags,
    ...planFlags,
    ...lockFlags,
    ...removalFlags,
    'removal-delay': Flags.integer({
      summary: 'Apply a held mass removal once the same Mappings have been about to go for this many --resync intervals.',
      default: 2,
      min: 1,
      helpValue: 'RESYNCS',
    }),
    resync: Flags.string({
      summary: 'Sync at least this often even without changes (60s, 5m, or seconds); SNCTRLR_AUTOREFRESH_PERIOD_SEC when neither this nor the config file says.',
      default: '60s',
      helpValue: 'DURATION',
    }),
    'min-sync-interval': Flags.string({
      summary: 'Least time between two syncs while changes keep coming (100ms, 1s).',
      default: '100ms',
      helpValue: 'DURATION',
    }),
    'status-timeout': Flags.string({
      summary: 'Longest one round of Mapping status and Event writes may take; past it the round is abandoned and the next sync writes again.',
      default: '2m',
      helpValue: 'DURATION',
    }),
    'metrics-addr': Flags.string({
      summary: 'Where to serve /healthz, /readyz, /healthcheck and /metrics; SNCTRLR_MONITOR_IP and SNCTRLR_MONITOR_PORT (127.0.0.1:8080 for the one unset) when neither this nor the config file says.',
      default: DEFAULT_METRICS_ADDRESS,
      helpValue: 'HOST:PORT',
    }),
    'log-level': Flags.string({
      summary: 'Least severe log lines shown (JSON lines unless stdout is a terminal); debug when SNCTRLR_DEBUG_ENABLED is true and neither this nor the config file says.',
      options: [...LOG_LEVELS],
      default: 'info',
    }),
    'flush-on-exit': Flags.boolean({summary: 'Remove everything smartnat installed when stopping.'}),
  }

  async run(): Promise<void> {
    // The daemon's log says it, so that it reaches wherever the log goes.
    const warnings: string[] = []
    const {flags} = await this.parseWithConfig(Watch, (text) => warnings.push(text))
    let request
    try {
      request = watchRequest(flags, warnings)
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    await runWatch(request, stopSignal).catch((error: unknown) => this.error(errorText(error)))
    exitIfLingering()
  }
}
