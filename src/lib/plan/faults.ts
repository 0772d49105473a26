/** Faults of the host found after planning, told to the Mappings they keep from being served. Pure. */
import type {MappingVerdict, Plan} from './model.js'

/** The plan with every address it programmed marked as not served, for `reason`; an address with a fault already keeps its own. */
export function withHostFault(planned: Plan, reason: string): Plan {
  return {...planned, verdicts: planned.verdicts.map((verdict) => faulted(verdict, reason))}
}

function faulted(verdict: MappingVerdict, reason: string): MappingVerdict {
  const addresses = Object.keys(verdict.configuredAddresses).filter((address) => verdict.faults?.[address] === undefined)
  if (addresses.length === 0) return verdict
  return {...verdict, faults: {...verdict.faults, ...Object.fromEntries(addresses.map((address) => [address, reason]))}}
}
