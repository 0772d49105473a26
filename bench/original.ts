/**
 * The original Go controller's kernel layout and way of applying it, rebuilt for comparison:
 * per Mapping one `hash:net,port` set of (allowed source, port) and one chain of DNAT rules,
 * reached from a single dispatch chain by one rule per Mapping that matches the address and the
 * set. It applied everything one process per rule or entry, checking each rule with `-C` first.
 */
import type {Runner} from '../src/lib/host/runner.js'
import {shortHash} from '../src/lib/net/hash.js'
import type {NatModel} from '../src/lib/plan/model.js'

export const ORIGINAL_DISPATCH_CHAIN = 'ORIG-PREROUTING'
const MASQUERADE_MARK = '0x80000'

/** One Mapping as the original laid it out. */
interface OriginalMapping {
  set: string
  entries: string[]
  chain: string
  /** Rule specs (without `-A CHAIN`), dispatch rule first, then the chain's mark and DNAT rules. */
  dispatch: string[]
  rules: string[][]
}

function originalMappings(model: NatModel): OriginalMapping[] {
  return model.mappings.flatMap((m) =>
    m.addresses.map(({address}) => {
      const id = `${shortHash(`${m.namespace}/${m.name}`)}-${address.split('.')[3]}`
      const set = `DNAT-${id}`
      const chain = `MAP-${id}`
      const endpoints = m.endpoints.filter((e) => e.address === address)
      return {
        set,
        chain,
        entries: m.allowedSources.flatMap((source) => endpoints.map((e) => `${source},${e.protocol}:${e.port}`)),
        dispatch: ['-d', `${address}/32`, '-m', 'set', '--match-set', set, 'src,dst', '-m', 'comment', '--comment', `for mapping ${m.namespace}/${m.name}`, '-j', chain],
        rules: [
          ['-m', 'comment', '--comment', 'mark for masquerade', '-j', 'MARK', '--or-mark', MASQUERADE_MARK],
          ...endpoints.map((e) => [
            '-p', e.protocol, '-m', e.protocol, '--dport', String(e.port),
            '-m', 'comment', '--comment', `for mapping ${m.namespace}/${m.name} [${e.protocol}:${e.port}:${e.targetPort}]`,
            '-j', 'DNAT', '--to-destination', `${e.targetIP}:${e.targetPort}`,
          ]),
        ],
      }
    }),
  )
}

function quoted(words: string[]): string {
  return words.map((w) => (/^[-\w./:,]+$/.test(w) ? w : `"${w}"`)).join(' ')
}

/** The original layout as one `ipset restore` and one `iptables-restore --noflush` payload (to load 10,000 quickly). */
export function originalLayoutPayloads(model: NatModel): {ipset: string; iptables: string} {
  const mappings = originalMappings(model)
  const ipset = mappings.flatMap((m) => [`create ${m.set} hash:net,port family inet hashsize 1024 maxelem 65536`, ...m.entries.map((e) => `add ${m.set} ${e}`)])
  const iptables = [
    '*nat',
    `:${ORIGINAL_DISPATCH_CHAIN} - [0:0]`,
    ...mappings.map((m) => `:${m.chain} - [0:0]`),
    `-A PREROUTING -j ${ORIGINAL_DISPATCH_CHAIN}`,
    `-A POSTROUTING -m mark --mark ${MASQUERADE_MARK}/${MASQUERADE_MARK} -j MASQUERADE`,
    ...mappings.map((m) => `-A ${ORIGINAL_DISPATCH_CHAIN} ${quoted(m.dispatch)}`),
    ...mappings.flatMap((m) => m.rules.map((r) => `-A ${m.chain} ${quoted(r)}`)),
    'COMMIT',
  ]
  return {ipset: `${ipset.join('\n')}\n`, iptables: `${iptables.join('\n')}\n`}
}

const IPTABLES = ['iptables', '-w', '-t', 'nat'] as const

async function iptables(runner: Runner, args: string[], okExitCodes: number[] = []): Promise<number> {
  return (await runner.run(IPTABLES[0], [...IPTABLES.slice(1), ...args], {okExitCodes})).exitCode
}

/** Ensures a rule the way the original did: `-C` first, then append (or insert) when missing. */
async function ensureRule(runner: Runner, chain: string, spec: string[], verb: '-A' | '-I'): Promise<void> {
  if ((await iptables(runner, ['-C', chain, ...spec], [1])) === 0) return
  await iptables(runner, verb === '-A' ? ['-A', chain, ...spec] : ['-I', chain, '1', ...spec])
}

/** Applies the model the original's way: one process per set, entry, chain and rule, each checked first. */
export async function applyOriginalWay(runner: Runner, model: NatModel): Promise<void> {
  if ((await iptables(runner, ['-S', ORIGINAL_DISPATCH_CHAIN], [1])) !== 0) await iptables(runner, ['-N', ORIGINAL_DISPATCH_CHAIN])
  await ensureRule(runner, 'PREROUTING', ['-j', ORIGINAL_DISPATCH_CHAIN], '-A')
  for (const m of originalMappings(model)) {
    await runner.run('ipset', ['create', m.set, 'hash:net,port', 'comment', 'counters', '-exist'])
    const {stdout} = await runner.run('ipset', ['list', m.set])
    const present = new Set(stdout.split('\n').map((line) => line.split(' ')[0]))
    for (const entry of m.entries) if (!present.has(entry)) await runner.run('ipset', ['add', m.set, entry])
    if ((await iptables(runner, ['-S', m.chain], [1])) !== 0) await iptables(runner, ['-N', m.chain])
    await ensureRule(runner, ORIGINAL_DISPATCH_CHAIN, m.dispatch, '-A')
    const [mark, ...dnat] = m.rules
    await ensureRule(runner, m.chain, mark!, '-I')
    await iptables(runner, ['-S', m.chain])
    for (const rule of dnat) await ensureRule(runner, m.chain, rule, '-A')
  }
}
