/** The route this host takes to an address: in mode direct, the pods must be reachable from the edge host itself. */
import type {Ipv4} from '../net/ipv4.js'
import {CommandError, type Runner} from './runner.js'

/** Where `ip route get` sends packets to `ip`, or why it sends them nowhere. */
export interface RouteTo {
  ip: Ipv4
  /** Interface the route leaves by; null when there is no route. */
  dev: string | null
  gateway: string | null
  /** Why there is no route (`Network is unreachable`); null when there is one. */
  error: string | null
}

/** Asks the kernel for its route to `ip` (`ip -4 -j route get`); a missing route is an answer, a failing `ip` throws. */
export async function routeTo(runner: Runner, ip: Ipv4): Promise<RouteTo> {
  let stdout: string
  try {
    ;({stdout} = await runner.run('ip', ['-4', '-j', 'route', 'get', ip]))
  } catch (error) {
    // ip exits with 2 and says so when no route leads there (none at all, or an unreachable or prohibit route).
    if (error instanceof CommandError && error.exitCode === 2 && /RTNETLINK answers: /.test(error.stderr)) {
      return {ip, dev: null, gateway: null, error: error.stderr.trim().replace(/^RTNETLINK answers: /, '')}
    }
    throw new Error(`route to ${ip}: ${(error as Error).message}`, {cause: error})
  }
  const [route] = parseRoutes(stdout, ip)
  return {
    ip,
    dev: typeof route?.dev === 'string' ? route.dev : null,
    gateway: typeof route?.gateway === 'string' ? route.gateway : null,
    error: null,
  }
}

function parseRoutes(stdout: string, ip: Ipv4): {dev?: unknown; gateway?: unknown}[] {
  try {
    const parsed: unknown = JSON.parse(stdout)
    if (Array.isArray(parsed)) return parsed.filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null)
  } catch (error) {
    throw new Error(`route to ${ip}: ip -4 -j route get printed no JSON: ${JSON.stringify(stdout.slice(0, 80))}`, {cause: error})
  }
  throw new Error(`route to ${ip}: ip -4 -j route get printed no list of routes`)
}
