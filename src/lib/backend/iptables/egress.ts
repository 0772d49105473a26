/** Egress SNAT (`--snat`) grouped the way both backends dispatch it: one lookup per external interface, not per address. */
import type {Ipv4} from '../../net/ipv4.js'
import type {NatEgress} from '../../plan/model.js'

/**
 * The external interface each egress pod's new connections belong to, with the egress that decided
 * it: the last one (by address) naming the pod, as a walk over one rule per address would leave the
 * connection mark. Interfaces and pods in the order their deciding egress lists them; callers that
 * print them sort (set entries are sorted when rendered).
 */
export function egressPodsByInterface(egress: readonly NatEgress[]): Map<string, Map<Ipv4, NatEgress>> {
  const owner = new Map<Ipv4, NatEgress>()
  for (const entry of egress) for (const pod of entry.podIPs) owner.set(pod, entry)
  const byInterface = new Map<string, Map<Ipv4, NatEgress>>()
  for (const [pod, entry] of owner) {
    const pods = byInterface.get(entry.interface) ?? new Map<Ipv4, NatEgress>()
    pods.set(pod, entry)
    byInterface.set(entry.interface, pods)
  }
  return byInterface
}
