/**
 * The two NAT backends as the end-to-end suites see them: one object per backend that does by hand,
 * with the backend's own tools, what a test needs done to the kernel (drift, obstruction, a dump),
 * so one test body runs against both.
 */
import type {WriteCounts} from '../../src/lib/backend/backend.js'
import {BACKEND_NAMES, createBackend, type BackendName} from '../../src/lib/backend/registry.js'
import {addressChainName} from '../../src/lib/backend/iptables/names.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {iptablesDump} from './e2e.js'
import type {Lab} from './lab.js'
import {requireNeeds} from './requirements.js'

/** One mapped endpoint and where its DNAT sends it. */
export interface LabEndpoint {
  address: string
  protocol: 'tcp' | 'udp'
  port: number
  /** `198.19.100.10:80` */
  target: string
  /** `default/web` */
  mapping: string
}

/** A hand edit that keeps smartnat's next apply from succeeding, and its undoing. */
export interface Obstruction {
  /** Words the failed sync's error must contain: the tool and what the kernel said. */
  errorIncludes: string[]
  lift(): Promise<void>
}

export interface LabBackend {
  readonly name: BackendName
  /** The rule that drops a new connection to a mapped endpoint from a source that is not allowed, as explain names it. */
  readonly inputDropRule: string
  /** Whether the backend's rules keep packet counters, which `status` and `explain` report. */
  readonly countsPackets: boolean
  /** Deletes by hand smartnat's accept in iptables' FORWARD, which its DROP policy needs. */
  removeForwardAccept(lab: Lab): Promise<void>
  /** What a sync writes to repair the drift `breakDnat` leaves. */
  readonly dnatRepairWrites: WriteCounts
  /** How `flush` names the allow-list and the endpoints set. */
  readonly allowAndEndpointSets: string[]
  /** Whether `flush` names a chain or a set as this backend's. */
  owns(kind: 'chain' | 'set', name: string): boolean
  /** Names an egress set of this backend (`--snat`). */
  isEgressSet(name: string): boolean
  /** Rules in built-in chains (jumps into smartnat's chains, its FORWARD accept) `flush` removes after a sync with two interfaces, FORWARD dropping. */
  readonly flushedJumps: number
  /** Removes whatever this backend installed in the lab's host, without the CLI: a clean start between tests. */
  reset(lab: Lab): Promise<void>
  /** smartnat's rules and sets as the kernel prints them, counters aside. */
  dump(lab: Lab): Promise<string>
  /** Whether the kernel holds anything of this backend's. */
  installed(lab: Lab): Promise<boolean>
  /** Deletes by hand what translates `endpoint`, so its traffic is no longer DNATed. */
  breakDnat(lab: Lab, endpoint: LabEndpoint): Promise<void>
  /** Empties the allow-list by hand: no source reaches any endpoint. */
  emptyAllowList(lab: Lab): Promise<void>
  /** Deletes one Mapping's piece by hand; returns the part `status` must report missing (`where: text`). */
  removeMappingPart(lab: Lab, endpoint: LabEndpoint): Promise<string>
  /** Empties the chain that DNATs, by hand. */
  flushDnatChain(lab: Lab): Promise<void>
  /** Rules in the chain that DNATs. */
  dnatChainRules(lab: Lab): Promise<number>
  /** Makes the next sync that removes one endpoint and adds another fail in the kernel, keeping the old state. */
  obstruct(lab: Lab, endpoint: LabEndpoint): Promise<Obstruction>
}

const iptables: LabBackend = {
  name: 'iptables',
  inputDropRule: '-A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP',
  countsPackets: true,
  removeForwardAccept: async (lab) => void (await lab.exec('host', 'iptables', ['-F', 'SNM-FORWARD'])),
  dnatRepairWrites: {sets: 0, chains: 1, rules: 1, routes: 0},
  allowAndEndpointSets: ['SNM-ALLOW', 'SNM-ENDPOINTS'],
  owns: (kind, name) => (kind === 'chain' ? / SNM-/.test(name) : name.startsWith('SNM-')),
  isEgressSet: (name) => name.startsWith('SNM-EG-'),
  flushedJumps: 5,
  reset: async (lab) => void (await createBackend('iptables', lab.hostRunner).flush({dryRun: false})),
  dump: async (lab) => `${await iptablesDump(lab)}\n${(await lab.exec('host', 'ipset', ['save'])).stdout}`,
  async installed(lab) {
    const sets = (await lab.exec('host', 'ipset', ['list', '-n'])).stdout.trim()
    return (await iptablesDump(lab)).includes('SNM-') || sets !== ''
  },
  async breakDnat(lab, endpoint) {
    // The address chain holds one DNAT rule per port; the endpoint's is the only one in these tests.
    await lab.exec('host', 'iptables', ['-t', 'nat', '-D', addressChainName(endpoint.address as Ipv4), '1'])
  },
  emptyAllowList: async (lab) => void (await lab.exec('host', 'ipset', ['flush', 'SNM-ALLOW'])),
  async removeMappingPart(lab, e) {
    const chain = addressChainName(e.address as Ipv4)
    const match = ['-p', e.protocol, '-m', e.protocol, '--dport', String(e.port), '-m', 'comment', '--comment', `${e.mapping} ${e.protocol}/${e.port}`]
    await lab.exec('host', 'iptables', ['-t', 'nat', '-D', chain, ...match, '-j', 'DNAT', '--to-destination', e.target])
    return `nat ${chain}: -A ${chain} -p ${e.protocol} -m ${e.protocol} --dport ${e.port} -m comment --comment "${e.mapping} ${e.protocol}/${e.port}" -j DNAT --to-destination ${e.target}`
  },
  flushDnatChain: async (lab) => void (await lab.exec('host', 'iptables', ['-t', 'nat', '-F', 'SNM-PREROUTING'])),
  dnatChainRules: async (lab) => (await lab.exec('host', 'iptables', ['-t', 'nat', '-S', 'SNM-PREROUTING'])).stdout.trim().split('\n').length - 1,
  async obstruct(lab, endpoint) {
    // A foreign rule jumping into the address chain keeps iptables-restore from deleting that chain.
    const chain = addressChainName(endpoint.address as Ipv4)
    await lab.exec('host', 'iptables', ['-t', 'nat', '-N', 'LAB-DEBUG'])
    await lab.exec('host', 'iptables', ['-t', 'nat', '-A', 'LAB-DEBUG', '-s', '198.18.9.9/32', '-j', chain])
    return {
      errorIncludes: ['iptables-restore', `chain ${chain}`, 'Device or resource busy'],
      async lift() {
        await lab.exec('host', 'iptables', ['-t', 'nat', '-F', 'LAB-DEBUG'])
        await lab.exec('host', 'iptables', ['-t', 'nat', '-X', 'LAB-DEBUG'])
      },
    }
  },
}

/** The allow-list of Mappings that admit every source (the lab's Mappings name none). */
const ALLOW_ALL_SET = 'allowed_0'
const ALLOW_ALL_TYPE = 'type ipv4_addr . inet_proto . inet_service;'

const nftables: LabBackend = {
  name: 'nftables',
  inputDropRule: 'ip daddr . meta l4proto . th dport @endpoints drop',
  countsPackets: false,
  async removeForwardAccept(lab) {
    const accept = ['-m', 'connmark', '!', '--mark', '0x0/0xff00000', '-m', 'comment', '--comment', 'smartnat-nftables', '-j', 'ACCEPT']
    await lab.exec('host', 'iptables', ['-D', 'FORWARD', ...accept])
  },
  // A rule that differs refills its chain alone: nat_allowed, 4 rules with two interfaces.
  dnatRepairWrites: {sets: 0, chains: 1, rules: 4, routes: 0},
  allowAndEndpointSets: [`ip smartnat: ${ALLOW_ALL_SET}`, 'ip smartnat: endpoints'],
  owns: (_kind, name) => name.startsWith('ip smartnat: '),
  isEgressSet: (name) => name.startsWith('ip smartnat: egress_'),
  flushedJumps: 1,
  reset: async (lab) => void (await createBackend('nftables', lab.hostRunner).flush({dryRun: false})),
  dump: async (lab) => (await lab.exec('host', 'nft', ['list', 'table', 'ip', 'smartnat'])).stdout,
  installed: async (lab) => (await lab.exec('host', 'nft', ['list', 'table', 'ip', 'smartnat'], {okExitCodes: [1]})).exitCode === 0,
  async breakDnat(lab) {
    const handle = await ruleHandle(lab, 'nat_allowed', /^dnat /)
    await lab.exec('host', 'nft', ['delete', 'rule', 'ip', 'smartnat', 'nat_allowed', 'handle', handle])
  },
  emptyAllowList: async (lab) => void (await lab.exec('host', 'nft', ['flush', 'set', 'ip', 'smartnat', ALLOW_ALL_SET])),
  async removeMappingPart(lab, e) {
    const key = `${e.address} . ${e.protocol} . ${e.port}`
    await lab.exec('host', 'nft', ['delete', 'element', 'ip', 'smartnat', ALLOW_ALL_SET, `{ ${key} }`])
    return `set ${ALLOW_ALL_SET}: ${key} comment "${e.mapping}"`
  },
  flushDnatChain: async (lab) => void (await lab.exec('host', 'nft', ['flush', 'chain', 'ip', 'smartnat', 'nat_allowed'])),
  dnatChainRules: async (lab) => (await lab.exec('host', 'nft', ['list', 'chain', 'ip', 'smartnat', 'nat_allowed'])).stdout.split('\n').filter((l) => /^\t\t(?!type )\S/.test(l)).length,
  async obstruct(lab) {
    // A set may be given a size below its element count: then any transaction that ends with more
    // elements than the size fails (ENFILE), although each deletion frees a slot first.
    const setSize = (size: number) => lab.exec('host', 'nft', ['add', 'set', 'ip', 'smartnat', ALLOW_ALL_SET, `{ ${ALLOW_ALL_TYPE} size ${size}; }`])
    await setSize(1)
    return {
      errorIncludes: ['nft failed at payload line', `add element ip smartnat ${ALLOW_ALL_SET}`, 'Too many open files in system'],
      lift: async () => void (await setSize(65_535)),
    }
  },
}

/** The handle of the first rule of one of smartnat's chains whose text matches. */
async function ruleHandle(lab: Lab, chain: string, text: RegExp): Promise<string> {
  const listing = (await lab.exec('host', 'nft', ['-a', 'list', 'chain', 'ip', 'smartnat', chain])).stdout
  for (const line of listing.split('\n')) {
    const match = /^\s+(.*\S) # handle (\d+)$/.exec(line)
    if (match && text.test(match[1]!)) return match[2]!
  }
  throw new Error(`no rule matching ${text} in chain ${chain}:\n${listing}`)
}

const ALL: Record<BackendName, LabBackend> = {iptables, nftables}

/**
 * The backends the suites run against: both, or those SMARTNAT_E2E_BACKENDS names
 * (`iptables`, `nftables`, comma-separated), to time or debug one.
 */
export const BACKENDS: LabBackend[] = selectBackends(process.env.SMARTNAT_E2E_BACKENDS)

function selectBackends(list: string | undefined): LabBackend[] {
  if (list === undefined || list.trim() === '') return BACKEND_NAMES.map((name) => ALL[name])
  return list.split(',').map((word) => {
    const name = word.trim()
    if (!(BACKEND_NAMES as readonly string[]).includes(name)) throw new Error(`SMARTNAT_E2E_BACKENDS: "${name}" is not one of ${BACKEND_NAMES.join(', ')}`)
    return ALL[name as BackendName]
  })
}

/** In a mocha hook: fail under CI when the backend's tool is missing, skip (saying why) elsewhere. */
export function requireBackend(context: Mocha.Context, backend: LabBackend): void {
  requireNeeds(context, `the ${backend.name} backend`, {tools: [backend.name === 'nftables' ? 'nft' : 'ipset']})
}

/**
 * Leaves the lab's host without smartnat's rules and without remembered connections, for suites
 * whose every test starts clean. The flush command itself is tested next to a foreign ruleset;
 * here only a clean start matters.
 */
export async function cleanHost(lab: Lab, backend: LabBackend): Promise<void> {
  await backend.reset(lab)
  await lab.exec('host', 'conntrack', ['-F'])
}
