/**
 * Renders a NatModel into the iptables backend's desired state (docs/kernel-layout.md), every rule in
 * the exact form `iptables-save` prints, and that state into restore payloads.
 */
import {compareIpv4, type Ipv4} from '../../net/ipv4.js'
import type {NatEgress, NatEndpoint, NatInterface, NatMapping, NatModel} from '../../plan/model.js'
import {TABLES, type ChainState, type IptablesState, type TableState} from './types.js'
import {LineBuffer} from '../../net/linebuffer.js'
import {EGRESS_MARK, INTERFACE_MASK, MASQUERADE_MARK, hex, interfaceMark} from '../../net/marks.js'
import {checkInterfaceName} from '../../net/interface-name.js'
import {renderIpRules, renderRoutes} from '../../routing/render.js'
import {renderSets} from './sets.js'
import {egressPodsByInterface} from './egress.js'
import {OWN_CONNECTIONS_MATCH} from '../iptables-syntax.js'
import {checkAddress, checkedEndpoints} from '../model-checks.js'
import {GroupChains} from './groups.js'
import {
  ALLOW_SET,
  ENDPOINTS_SET,
  FORWARD_CHAIN,
  INPUT_CHAIN,
  JUMP_COMMENT,
  OUTPUT_CHAIN,
  POSTROUTING_CHAIN,
  PREROUTING_CHAIN,
  SNAT_CHAIN,
  UNSERVED_SET,
  addressChainName,
  egressInterfaceSetName,
  egressSetName,
  tempSetName,
} from './names.js'

/** iptables refuses comments longer than this. */
const MAX_COMMENT = 255

/** The kernel state the model asks for: owned chains, jumps, sets, ip rules and routes. */
export function renderIptables(model: NatModel): IptablesState {
  for (const iface of model.interfaces) checkInterface(iface)
  const egressByInterface = egressPodsByInterface(model.egress)
  const direct = hasDirectEndpoints(model)
  return {
    tables: {
      mangle: renderMangle(model, egressByInterface, direct),
      // Before the sets: it checks every endpoint before their values are written anywhere.
      nat: renderNat(model),
      filter: renderFilter(direct, model.masqueradeTo),
    },
    sets: renderSets(model, egressByInterface, direct),
    ipRules: renderIpRules(model),
    routes: renderRoutes(model),
  }
}

export function renderMangle(model: NatModel, egressByInterface: ReadonlyMap<string, unknown>, direct: boolean): TableState {
  const rules: string[] = []
  // One set per interface rather than per address: a new inbound connection makes one lookup per
  // external interface with egress pods, however many addresses and Mappings egress through it.
  const egressInterfaces = [...egressByInterface.keys()].map((name) => egressInterface(model, name)).sort((a, b) => a.index - b.index)
  for (const iface of egressInterfaces) {
    rules.push(
      `-A ${PREROUTING_CHAIN} -m conntrack --ctstate NEW -m set --match-set ${egressInterfaceSetName(iface.index)} src` +
        ` -j CONNMARK --set-xmark ${hex(EGRESS_MARK | interfaceMark(iface.index))}/${hex(INTERFACE_MASK | EGRESS_MARK)}`,
    )
  }
  const restoreInterface = `-j CONNMARK --restore-mark --nfmask ${hex(INTERFACE_MASK)} --ctmask ${hex(INTERFACE_MASK)}`
  const inboundReplies = `${OWN_CONNECTIONS_MATCH} -m connmark --mark 0x0/${hex(EGRESS_MARK)} -m conntrack --ctdir REPLY ${restoreInterface}`
  // Replies of inbound connections and every packet of egress connections carry the interface bits
  // as packet mark before the routing decision, so `ip rule fwmark` picks the interface's table.
  rules.push(
    `-A ${PREROUTING_CHAIN} ${inboundReplies}`,
    `-A ${PREROUTING_CHAIN} -m connmark --mark ${hex(EGRESS_MARK)}/${hex(EGRESS_MARK)} -m conntrack --ctdir ORIGINAL ${restoreInterface}`,
  )
  const chains = [{name: PREROUTING_CHAIN, rules}]
  const jumps = [jump('PREROUTING', PREROUTING_CHAIN)]
  if (direct) {
    // The TCP reset or ICMP error refusing a connection to an unserved endpoint is the host's own
    // packet, routed in OUTPUT with no mark: without the interface bits it would take the main
    // table and miss a client that only the interface's table reaches. Mangle OUTPUT reroutes it.
    chains.push({name: OUTPUT_CHAIN, rules: [`-A ${OUTPUT_CHAIN} ${inboundReplies}`]})
    jumps.push(jump('OUTPUT', OUTPUT_CHAIN))
  }
  return {chains, jumps}
}

function renderNat(model: NatModel): TableState {
  const addressChains: ChainState[] = []
  const dispatch: string[] = []
  const groups = new GroupChains()
  for (const [address, endpoints] of endpointsByAddress(model.mappings)) {
    const chain = addressChainName(address)
    dispatch.push(dispatchRule(address))
    addressChains.push({name: chain, rules: endpoints.map(({mapping, endpoint}) => endpointRule(chain, mapping, endpoint, groups))})
  }
  const snatChains: ChainState[] = model.egress.length > 0 ? [{name: SNAT_CHAIN, rules: model.egress.map((egress) => snatRule(model, egress))}] : []
  const head = renderNatHead(model, dispatch, model.egress.length > 0)
  return {chains: [...head.chains, ...snatChains, ...addressChains, ...groups.chains()], jumps: head.jumps}
}

/** The rule sending traffic to one external address into that address's chain. */
export function dispatchRule(address: Ipv4): string {
  return `-A ${PREROUTING_CHAIN} -d ${address}/32 -j ${addressChainName(address)}`
}

/** The nat table's entry chains, SNM-PREROUTING (ending in `dispatch`, one rule per address) and SNM-POSTROUTING, and the jumps to them. */
export function renderNatHead(model: NatModel, dispatch: readonly string[], egress: boolean): TableState {
  const prerouting: string[] = [`-A ${PREROUTING_CHAIN} -m set ! --match-set ${ALLOW_SET} dst,dst,src -j RETURN`]
  if (model.masquerade) prerouting.push(`-A ${PREROUTING_CHAIN} -j MARK --set-xmark ${hex(MASQUERADE_MARK)}/${hex(MASQUERADE_MARK)}`)
  // Every external interface marks its connections, also the one without a table of its own: the
  // mark is what FORWARD accepts, and with no `ip rule` for it replies simply follow the main table.
  for (const iface of model.interfaces) {
    prerouting.push(
      `-A ${PREROUTING_CHAIN} -i ${iface.name} -j CONNMARK --set-xmark ${hex(interfaceMark(iface.index))}/${hex(INTERFACE_MASK | EGRESS_MARK)}`,
    )
  }
  prerouting.push(...dispatch)
  const postrouting: string[] = []
  if (model.masquerade) {
    // An HA pair's floating cluster-side address, not the host's own: pods' replies then follow the active host.
    const target = model.masqueradeTo === undefined ? 'MASQUERADE' : `SNAT --to-source ${checkAddress(model.masqueradeTo)}`
    postrouting.push(`-A ${POSTROUTING_CHAIN} -m mark --mark ${hex(MASQUERADE_MARK)}/${hex(MASQUERADE_MARK)} -j ${target}`)
  }
  // Only connections a pod started carry the egress mark: every other connection passes one mark
  // test here instead of one set lookup per egress address.
  if (egress) postrouting.push(`-A ${POSTROUTING_CHAIN} -m connmark --mark ${hex(EGRESS_MARK)}/${hex(EGRESS_MARK)} -j ${SNAT_CHAIN}`)
  return {
    chains: [
      {name: PREROUTING_CHAIN, rules: prerouting},
      {name: POSTROUTING_CHAIN, rules: postrouting},
    ],
    jumps: [jump('PREROUTING', PREROUTING_CHAIN), jump('POSTROUTING', POSTROUTING_CHAIN)],
  }
}

/** The SNAT rule of one egress address: its pods' connections leave with it. */
export function snatRule(model: NatModel, egress: NatEgress): string {
  return (
    `-A ${SNAT_CHAIN} -o ${egressInterface(model, egress.interface).name} -m set --match-set ${egressSetName(checkAddress(egress.address))} src` +
    ` -j SNAT --to-source ${egress.address}`
  )
}

/** Whether any Mapping is in mode direct: only then do the unserved set and its rules exist. */
function hasDirectEndpoints(model: NatModel): boolean {
  return model.mappings.some((m) => m.endpoints.some((e) => e.group !== undefined))
}

/**
 * `clusterAddress`, an HA pair's floating cluster-side address, is only the source smartnat
 * translates forwarded connections to: their replies are translated back before routing and never
 * reach INPUT. One that does belongs to a connection this host does not track yet (keepalived adds
 * the address before `conntrackd -c` commits the peer's connections): dropped, the pod sends it
 * again once the commit made the entry; answered by the host's own reset, the connection would end.
 */
export function renderFilter(direct: boolean, clusterAddress?: Ipv4): TableState {
  // An allowed connection to an endpoint whose group is empty was marked but not DNATed: it is
  // refused here as kube-proxy refuses it (REJECT cannot be used in the nat table).
  const refusals = direct
    ? [
        `-A ${INPUT_CHAIN} -p tcp -m set --match-set ${UNSERVED_SET} dst,dst ${OWN_CONNECTIONS_MATCH} -j REJECT --reject-with tcp-reset`,
        `-A ${INPUT_CHAIN} -p udp -m set --match-set ${UNSERVED_SET} dst,dst ${OWN_CONNECTIONS_MATCH} -j REJECT --reject-with icmp-port-unreachable`,
      ]
    : []
  const unclaimedReplies = clusterAddress === undefined ? [] : [`-A ${INPUT_CHAIN} -d ${checkAddress(clusterAddress)}/32 -j DROP`]
  return {
    chains: [
      // Traffic to a mapped endpoint that was not DNATed still has the host's address as
      // destination and ends here: its source is not allowed, whatever listens on the host.
      {name: INPUT_CHAIN, rules: [...refusals, `-A ${INPUT_CHAIN} -m set --match-set ${ENDPOINTS_SET} dst,dst -j DROP`, ...unclaimedReplies]},
      {name: FORWARD_CHAIN, rules: [`-A ${FORWARD_CHAIN} ${OWN_CONNECTIONS_MATCH} -j ACCEPT`]},
    ],
    jumps: [jump('INPUT', INPUT_CHAIN), jump('FORWARD', FORWARD_CHAIN)],
  }
}

export function jump(builtin: string, chain: string): string {
  return `-A ${builtin} -m comment --comment ${JUMP_COMMENT} -j ${chain}`
}

/** Endpoints grouped by external address (numeric order), each group by protocol then port. */
function endpointsByAddress(mappings: NatMapping[]): Map<Ipv4, {mapping: NatMapping; endpoint: NatEndpoint}[]> {
  const groups = new Map<Ipv4, {mapping: NatMapping; endpoint: NatEndpoint}[]>()
  for (const owned of checkedEndpoints(mappings, 'rule comment')) {
    const group = groups.get(owned.endpoint.address) ?? []
    group.push(owned)
    groups.set(owned.endpoint.address, group)
  }
  for (const group of groups.values()) {
    group.sort((a, b) => (a.endpoint.protocol < b.endpoint.protocol ? -1 : a.endpoint.protocol > b.endpoint.protocol ? 1 : 0) || a.endpoint.port - b.endpoint.port)
  }
  return new Map([...groups].sort(([a], [b]) => compareIpv4(a, b)))
}

/** The endpoint's rule in its address chain: DNAT to the Service (mode service) or a jump to its group's chain (mode direct). */
export function endpointRule(chain: string, mapping: NatMapping, e: NatEndpoint, groups: GroupChains): string {
  const comment = savedString(mappingComment(mapping.namespace, mapping.name, e))
  const target = e.group === undefined ? `DNAT --to-destination ${e.targetIP}:${e.targetPort}` : groups.chainFor(mapping, e.protocol, e.group).name
  // Joined rather than concatenated: a joined string is one flat string, where concatenation leaves a
  // tree of pieces that costs twice the memory in a state of 20,000 rules kept between watch passes.
  return ['-A', chain, '-p', e.protocol, '-m', e.protocol, '--dport', e.port, '-m comment --comment', comment, '-j', target].join(' ')
}

/** `ns/name tcp/80`; a name too long for iptables' comment limit is cut to fit. */
export function mappingComment(namespace: string, name: string, e: Pick<NatEndpoint, 'protocol' | 'port'>): string {
  const suffix = ` ${e.protocol}/${e.port}`
  const room = MAX_COMMENT - namespace.length - 1 - suffix.length
  return `${namespace}/${name.slice(0, room)}${suffix}`
}

/** A string as iptables-save prints it: bare when it is a plain word, else double-quoted. */
function savedString(text: string): string {
  if (/^[-_0-9A-Za-z]+$/.test(text)) return text
  if (/["\\'\n]/.test(text)) throw new Error(`cannot quote ${JSON.stringify(text)} for iptables`)
  return `"${text}"`
}

/** The external interface egress leaves through; any other interface is a bug in the model. */
function egressInterface(model: NatModel, name: string): NatInterface {
  const iface = model.interfaces.find((i) => i.name === name)
  if (!iface) throw new Error(`egress uses interface ${JSON.stringify(name)}, which is not an external interface`)
  return iface
}

export function checkInterface(iface: NatInterface): NatInterface {
  checkInterfaceName(iface.name)
  return iface
}

/** Complete from-empty `ipset restore -exist` and `iptables-restore --noflush` payloads for `state` (what `sync --dry-run` prints). */
export function renderRestoreScripts(state: IptablesState): {ipset: string; iptables: string} {
  return {ipset: renderIpsetRestore(state), iptables: renderIptablesRestore(state)}
}

function renderIpsetRestore(state: IptablesState): string {
  const out = new LineBuffer()
  for (const set of state.sets) {
    const temp = tempSetName(set.name)
    // A temporary set left by an interrupted run may have other options; -exist makes this a no-op otherwise.
    out.write('destroy', temp)
    out.write('create', set.name, set.type, set.options)
    out.write('create', temp, set.type, set.options)
    out.writeEach(['add', temp], set.entries)
    out.write('swap', temp, set.name)
    out.write('destroy', temp)
  }
  return out.toString()
}

function renderIptablesRestore(state: IptablesState): string {
  const out = new LineBuffer()
  for (const table of TABLES) {
    const {chains, jumps} = state.tables[table]
    out.write(`*${table}`)
    // Under --noflush, declaring a chain empties it, so the rules below replace its contents in one transaction.
    for (const chain of chains) out.write(`:${chain.name} - [0:0]`)
    for (const chain of chains) out.writeLines(chain.rules)
    // Jumps go first in their built-in chain: another tool's ACCEPT or DROP must not hide smartnat's rules.
    for (const line of jumps) out.write(line.replace(/^-A (\S+) /, '-I $1 1 '))
    out.write('COMMIT')
  }
  return out.toString()
}
