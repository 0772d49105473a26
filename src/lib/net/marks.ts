/**
 * The packet and connection mark bits smartnat sets, shared by both backends, reply routing
 * (`ip rule fwmark`) and conntrack cleanup; see docs/kernel-layout.md.
 */

/** Packet mark: masquerade this packet on its way to the cluster. */
export const MASQUERADE_MARK = 0x80000
/** Connection mark: the connection was started by a Mapping's pod (egress SNAT). */
export const EGRESS_MARK = 0x40000
/** Mark bits holding the external interface index (1..255). */
export const INTERFACE_MASK = 0xff00000
const INTERFACE_SHIFT = 20
/** The interface index lives in the 8 bits of INTERFACE_MASK: at most this many external interfaces. */
export const MAX_INTERFACE_INDEX = 255

/** The mark bits of an external interface: its index shifted into INTERFACE_MASK. */
export function interfaceMark(index: number): number {
  if (!Number.isInteger(index) || index < 1 || index > MAX_INTERFACE_INDEX) {
    throw new RangeError(`interface index ${index} is outside 1..${MAX_INTERFACE_INDEX}`)
  }
  return index << INTERFACE_SHIFT
}

/** The interface index held in a mark, or undefined when none is set. */
export function interfaceIndexOfMark(mark: number): number | undefined {
  const index = (mark & INTERFACE_MASK) >>> INTERFACE_SHIFT
  return index === 0 ? undefined : index
}

/** A mark or mask as iptables-save, `ip rule` and conntrack print it: lowercase hex without padding. */
export function hex(value: number): string {
  return `0x${(value >>> 0).toString(16)}`
}

/** A mark as nft prints it: 0x followed by eight hex digits. */
export function markHex(value: number): string {
  return `0x${(value >>> 0).toString(16).padStart(8, '0')}`
}
