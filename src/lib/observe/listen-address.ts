/** The daemon's listen address, apart from its server: every command checks the flag, and only watch starts the server (and loads node:http). */

/** Loopback by default: metrics and readiness say which addresses this host serves. */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9469'

/** Splits `HOST:PORT`, saying exactly what is wrong with a bad value. */
export function parseListenAddress(text: string): {host: string; port: number} {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text)
  const port = Number(match?.[3])
  if (!match || port > 65535) {
    throw new Error(`listen address "${text}" must be HOST:PORT with a port 0..65535, e.g. ${DEFAULT_METRICS_ADDRESS} or [::1]:9469`)
  }
  return {host: match[1] ?? match[2]!, port}
}
