/**
 * Cuts a state into parts that compare one by one (a rule, a set entry, a route), each tied to
 * the Mappings whose traffic depends on it, so drift can be told per Mapping.
 */

export type PartKind = 'jump' | 'chain' | 'rule' | 'set' | 'set-entry' | 'map-entry' | 'ip-rule' | 'route'

export interface StatePart {
  kind: PartKind
  /** Where it lives: `nat SNM-A-1a2b3c4d`, `set SNM-ALLOW`, `table 7001`. */
  where: string
  /** The part as the kernel's own tool prints it. */
  text: string
  /** Mappings (`namespace/name`) whose traffic depends on it; empty when it serves every Mapping. */
  mappings: string[]
  /** The external endpoint it implements, `198.18.0.10 tcp/80`, for DNAT rules, DNAT map entries and set entries. */
  endpoint?: string
  /** Key of the kernel's packet and byte counters for it, when the kernel counts it. */
  counterKey?: string
}

/** Packets and bytes the kernel counted for one part. */
export interface Counter {
  packets: number
  bytes: number
}

/** One string per part; equal parts have equal keys. */
export function partKey(part: StatePart): string {
  return `${part.kind} ${part.where} ${part.text}`
}

/** `198.18.0.10 tcp/80`: how an external endpoint is named in parts and output. */
export function endpointName(address: string, protocol: string, port: number): string {
  return `${address} ${protocol}/${port}`
}
