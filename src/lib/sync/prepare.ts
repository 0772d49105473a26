/** What a sync needs of the host before it applies anything: its tools, forwarding, and a loose reverse-path filter. */
import {requiredTools, type Backend} from '../backend/backend.js'
import type {Runner} from '../host/runner.js'
import {checkIpForwarding, relaxReversePathFilter, type RpFilterChange} from '../host/sysctl.js'
import type {ToolVersions} from '../host/tool-versions.js'
import {assertToolsPresent, checkTools} from '../host/tools.js'
import type {HostInfo} from '../plan/model.js'
import {hostInterfaces} from './resolve.js'
import type {SyncSettings} from './settings.js'

/** Checks the host's prerequisites: the tools `backend` drives, conntrack and ip (their versions from `versions` where known), and IPv4 forwarding on. */
export async function checkPrerequisites(runner: Runner, backend: Pick<Backend, 'tools'>, versions?: ToolVersions): Promise<void> {
  assertToolsPresent(await checkTools(runner, requiredTools(backend), versions))
  await checkIpForwarding(runner)
}

/** Reads this host's external interfaces (with the floating addresses) and makes their reverse-path filter loose. */
export async function prepareHost(runner: Runner, settings: SyncSettings): Promise<{host: HostInfo; rpFilter: RpFilterChange[]}> {
  const host = await hostInterfaces(runner, settings)()
  const rpFilter = await relaxReversePathFilter(
    runner,
    host.interfaces.map((i) => i.name),
  )
  return {host, rpFilter}
}
