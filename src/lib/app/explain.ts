/** `smartnat explain` as one library call: one Mapping, or one packet, through the desired rules and the kernel's. */
import {explainMapping, type MappingExplanation} from '../explain/mapping.js'
import {explainPacket, type PacketExplanation, type PacketSpec} from '../explain/packet.js'
import {openInspection, type InspectRequest} from './inspect.js'

export type {MappingExplanation} from '../explain/mapping.js'
export type {PacketExplanation, PacketSpec} from '../explain/packet.js'

/** A Mapping as `namespace/name`, or a packet. */
export type ExplainTarget = {mapping: string} | {packet: PacketSpec}

/** What explain found, tagged with what it explained. */
export type Explanation = {mapping: MappingExplanation} | {packet: PacketExplanation}

/** Explains `target` on this host, changing nothing; an unknown Mapping is an Error naming the ones that exist. */
export async function explainOnHost(request: InspectRequest, target: ExplainTarget): Promise<Explanation> {
  const {backend, inspection} = await openInspection(request)
  if ('packet' in target) return {packet: explainPacket(inspection, backend.inspect, target.packet)}
  return {mapping: explainMapping(inspection, target.mapping)}
}
