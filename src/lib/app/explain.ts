/** `smartnat explain` as one library call: one Mapping, or one packet, through the desired rules and the kernel's. */
import {explainMapping, type MappingExplanation} from '../explain/mapping.js'
import {explainPacket, type PacketExplanation, type PacketSpec} from '../explain/packet.js'
import {memberRoutes, type MemberRoute} from '../explain/routes.js'
import type {Runner} from '../host/runner.js'
import type {HostInfo} from '../plan/model.js'
import {errorChain} from '../observe/log.js'
import {openInspection, type InspectRequest} from './inspect.js'

export type {MappingExplanation} from '../explain/mapping.js'
export type {PacketExplanation, PacketSpec} from '../explain/packet.js'

/** A Mapping as `namespace/name`, or a packet. */
export type ExplainTarget = {mapping: string} | {packet: PacketSpec}

/** What explain found, tagged with what it explained. */
export type Explanation = {mapping: MappingExplanation} | {packet: PacketExplanation}

/** Explains `target` on this host, changing nothing; an unknown Mapping is an Error naming the ones that exist. */
export async function explainOnHost(request: InspectRequest, target: ExplainTarget): Promise<Explanation> {
  const {runner, backend, inspection} = await openInspection(request)
  if ('packet' in target) {
    const packet = explainPacket(inspection, backend.inspect, target.packet)
    return {packet: {...packet, ...(await routesOf(runner, packet.group?.members ?? [], inspection.host))}}
  }
  const mapping = explainMapping(inspection, target.mapping)
  return {mapping: {...mapping, ...(await routesOf(runner, mapping.mapping.groups.flatMap((g) => g.members), inspection.host))}}
}

/** Mode direct: the host's route to each member; a failed lookup is reported, not thrown, since the rest of the explanation stands. */
async function routesOf(runner: Runner, members: string[], host: HostInfo): Promise<{routes: MemberRoute[] | null; routeError: string | null}> {
  if (members.length === 0) return {routes: null, routeError: null}
  try {
    return {routes: await memberRoutes(runner, members, host), routeError: null}
  } catch (error) {
    return {routes: null, routeError: errorChain(error)}
  }
}
