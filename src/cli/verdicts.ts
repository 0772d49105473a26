/** How the CLI shows each Mapping's verdict to a person and to a script. */
import chalk from 'chalk'

import type {MappingVerdict} from '../lib/plan/model.js'

export interface MappingSummary {
  namespace: string
  name: string
  valid: boolean
  /** null when valid; otherwise why the Mapping is not configured. */
  reason: string | null
  configuredAddresses: Record<string, {podIPs: string[]}>
  notLocalAddresses: string[]
  /** Addresses on this host that it cannot serve, each with the reason. */
  faults: Record<string, string>
}

/** The stable JSON shape of a verdict. */
export function summarizeVerdict(v: MappingVerdict): MappingSummary {
  return {
    namespace: v.namespace,
    name: v.name,
    valid: v.valid,
    reason: v.valid ? null : v.invalid,
    configuredAddresses: v.configuredAddresses,
    notLocalAddresses: v.notLocalAddresses,
    faults: v.faults ?? {},
  }
}

/** One line per Mapping: `default/web  configured on 198.18.0.10` or `default/bad  invalid: reason`. */
export function verdictLines(verdicts: MappingVerdict[]): string[] {
  const width = Math.max(0, ...verdicts.map((v) => `${v.namespace}/${v.name}`.length))
  return verdicts.map((v) => {
    const id = `${v.namespace}/${v.name}`.padEnd(width)
    if (!v.valid) return `${id}  ${chalk.red('invalid')}: ${v.invalid}`
    const faulted = v.faults ?? {}
    const served = Object.keys(v.configuredAddresses).filter((address) => !(address in faulted))
    const faults = Object.entries(faulted).map(([address, reason]) => `${chalk.red('not served')} on ${address}: ${reason}`)
    const configured = served.length > 0 ? [`${chalk.green('configured')} on ${served.join(', ')}`] : []
    const state = configured.length + faults.length > 0 ? [...configured, ...faults].join('; ') : `${chalk.yellow('valid')}, no address on this host`
    const remote = v.notLocalAddresses.length > 0 ? ` (not local: ${v.notLocalAddresses.join(', ')})` : ''
    return `${id}  ${state}${remote}`
  })
}
