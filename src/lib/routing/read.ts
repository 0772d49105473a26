/** Reads smartnat's ip rules and routes back from the kernel, through a Runner. */
import {kernelOutput, type Runner} from '../host/runner.js'
import {parseIpRoutes, parseIpRules} from './parse.js'
import type {RoutingState} from './types.js'

/** The commands that print the ip rules and routes; nothing else is run to read them. */
export const ROUTING_READ_COMMANDS = {
  ipRules: ['ip', ['-4', '-j', 'rule', 'show']],
  routes: ['ip', ['-4', '-j', 'route', 'show', 'table', 'all']],
} as const satisfies Record<string, readonly [string, readonly string[]]>

/** smartnat's ip rules and routes as they are in the kernel now. */
export async function readRouting(runner: Runner): Promise<RoutingState> {
  const [ipRules, routes] = await Promise.all([kernelOutput(runner, ROUTING_READ_COMMANDS.ipRules), kernelOutput(runner, ROUTING_READ_COMMANDS.routes)])
  return {ipRules: parseIpRules(ipRules), routes: parseIpRoutes(routes)}
}
