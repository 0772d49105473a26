/**
 * Parses the rule lines the renderer emits (as iptables-save prints them) into matches and a
 * target. Any other shape is an error: a tracer that guessed would explain rules wrongly.
 */
import {parseCidr, parseIpv4, type Cidr, type Ipv4} from '../../net/ipv4.js'
import type {Protocol} from '../../mapping/types.js'
import {isOwnedName} from './names.js'
import {ruleWords} from '../iptables-syntax.js'

export type Match =
  | {kind: 'dst'; cidr: Cidr}
  | {kind: 'in' | 'out'; iface: string}
  | {kind: 'protocol'; protocol: Protocol}
  | {kind: 'dport'; protocol: Protocol; port: number}
  | {kind: 'set'; name: string; flags: string[]; negate: boolean}
  | {kind: 'mark' | 'connmark'; value: number; mask: number; negate: boolean}
  | {kind: 'ctstate'; states: string[]}
  | {kind: 'ctdir'; direction: 'ORIGINAL' | 'REPLY'}
  | {kind: 'comment'; text: string}
  /** Mode direct: one random draw; the probability as iptables-save prints it (`0.33333333349`). */
  | {kind: 'statistic'; probability: string}
  /** Mode direct affinity: whether the source is on `list` and was seen within `seconds` (refreshing the time if so). */
  | {kind: 'recent-update'; list: string; seconds: number}
  /** Mode direct affinity: puts the source on `list`. */
  | {kind: 'recent-set'; list: string}

export type Target =
  | {kind: 'jump'; chain: string}
  | {kind: 'RETURN' | 'DROP' | 'ACCEPT' | 'MASQUERADE'}
  | {kind: 'DNAT'; ip: Ipv4; port: number}
  | {kind: 'SNAT'; ip: Ipv4}
  | {kind: 'MARK' | 'CONNMARK'; value: number; mask: number}
  | {kind: 'CONNMARK-restore'; nfmask: number; ctmask: number}
  | {kind: 'REJECT'; with: 'tcp-reset' | 'icmp-port-unreachable'}

export interface Rule {
  chain: string
  matches: Match[]
  target: Target
  line: string
}

class Words {
  private position = 0
  constructor(
    private readonly list: string[],
    private readonly line: string,
  ) {}

  get done(): boolean {
    return this.position >= this.list.length
  }

  /** Reads `word` if it comes next; nothing otherwise. */
  optional(word: string): boolean {
    if (this.list[this.position] !== word) return false
    this.position++
    return true
  }

  next(what: string): string {
    const word = this.list[this.position++]
    if (word === undefined) throw this.unknown(`expected ${what} at the end`)
    return word
  }

  expect(word: string): void {
    const got = this.next(word)
    if (got !== word) throw this.unknown(`expected ${word}, found ${got}`)
  }

  negation(): boolean {
    if (this.list[this.position] !== '!') return false
    this.position++
    return true
  }

  unknown(why: string): Error {
    return new Error(`unknown rule shape (${why}): ${this.line}`)
  }
}

/** Parses one `-A CHAIN ...` line; throws on any option or target the renderer does not emit. */
export function parseRule(line: string): Rule {
  const w = new Words(ruleWords(line), line)
  w.expect('-A')
  const chain = w.next('a chain name')
  const matches: Match[] = []
  let protocol: Protocol | undefined
  for (;;) {
    const option = w.next('-j')
    if (option === '-j') break
    switch (option) {
      case '-d': {
        const text = w.next('an address')
        const cidr = parseCidr(text)
        if (!cidr.ok || cidr.cidr !== text) throw w.unknown(`-d ${text}`)
        matches.push({kind: 'dst', cidr: cidr.cidr})
        break
      }
      case '-i':
      case '-o': {
        const iface = w.next('an interface')
        if (iface.endsWith('+')) throw w.unknown(`wildcard interface ${iface}`)
        matches.push({kind: option === '-i' ? 'in' : 'out', iface})
        break
      }
      case '-p':
        protocol = protocolOf(w, w.next('a protocol'))
        matches.push({kind: 'protocol', protocol})
        break
      case '-m':
        matches.push(parseModule(w, protocol))
        break
      default:
        throw w.unknown(`option ${option}`)
    }
  }
  const target = parseTarget(w)
  if (!w.done) throw w.unknown('words after the target')
  return {chain, matches, target, line}
}

function protocolOf(w: Words, text: string): Protocol {
  if (text !== 'tcp' && text !== 'udp') throw w.unknown(`protocol ${text}`)
  return text
}

function parseModule(w: Words, protocol: Protocol | undefined): Match {
  const module = w.next('a match module')
  switch (module) {
    case 'tcp':
    case 'udp': {
      if (protocol !== module) throw w.unknown(`-m ${module} without -p ${module}`)
      w.expect('--dport')
      return {kind: 'dport', protocol, port: portOf(w, w.next('a port'))}
    }
    case 'set': {
      const negate = w.negation()
      w.expect('--match-set')
      return {kind: 'set', negate, name: w.next('a set name'), flags: w.next('set flags').split(',')}
    }
    case 'mark':
    case 'connmark': {
      const negate = w.negation()
      w.expect('--mark')
      return {kind: module, negate, ...valueMask(w, w.next('value/mask'))}
    }
    case 'conntrack': {
      const option = w.next('a conntrack option')
      if (option === '--ctstate') return {kind: 'ctstate', states: w.next('states').split(',')}
      if (option === '--ctdir') {
        const direction = w.next('a direction')
        if (direction !== 'ORIGINAL' && direction !== 'REPLY') throw w.unknown(`--ctdir ${direction}`)
        return {kind: 'ctdir', direction}
      }
      throw w.unknown(`conntrack ${option}`)
    }
    case 'comment':
      w.expect('--comment')
      return {kind: 'comment', text: w.next('a comment')}
    case 'statistic': {
      w.expect('--mode')
      w.expect('random')
      w.expect('--probability')
      const probability = w.next('a probability')
      if (!/^0\.\d{11}$/.test(probability)) throw w.unknown(`probability ${probability}`)
      return {kind: 'statistic', probability}
    }
    case 'recent':
      return parseRecent(w)
    default:
      throw w.unknown(`match module ${module}`)
  }
}

/** `recent` exactly as iptables-save prints the two uses the renderer makes of it, on a list smartnat owns. */
function parseRecent(w: Words): Match {
  const update = w.optional('--update')
  if (!update) w.expect('--set')
  let seconds: number | undefined
  if (update) {
    w.expect('--seconds')
    const text = w.next('seconds')
    if (!/^[1-9]\d{0,9}$/.test(text)) throw w.unknown(`--seconds ${text}`)
    seconds = Number(text)
    w.expect('--reap')
  }
  w.expect('--name')
  const list = w.next('a list name')
  if (!isOwnedName(list)) throw w.unknown(`recent list ${list}`)
  w.expect('--mask')
  w.expect('255.255.255.255')
  w.expect('--rsource')
  return seconds === undefined ? {kind: 'recent-set', list} : {kind: 'recent-update', list, seconds}
}

function parseTarget(w: Words): Target {
  const name = w.next('a target')
  switch (name) {
    case 'RETURN':
    case 'DROP':
    case 'ACCEPT':
    case 'MASQUERADE':
      return {kind: name}
    case 'DNAT': {
      w.expect('--to-destination')
      const text = w.next('ip:port')
      const [ipText, portText, ...rest] = text.split(':')
      const ip = parseIpv4(ipText)
      if (!ip || portText === undefined || rest.length > 0) throw w.unknown(`--to-destination ${text}`)
      return {kind: 'DNAT', ip, port: portOf(w, portText)}
    }
    case 'SNAT': {
      w.expect('--to-source')
      const text = w.next('an address')
      const ip = parseIpv4(text)
      if (!ip) throw w.unknown(`--to-source ${text}`)
      return {kind: 'SNAT', ip}
    }
    case 'REJECT': {
      w.expect('--reject-with')
      const reply = w.next('a reply')
      if (reply !== 'tcp-reset' && reply !== 'icmp-port-unreachable') throw w.unknown(`--reject-with ${reply}`)
      return {kind: 'REJECT', with: reply}
    }
    case 'MARK':
      w.expect('--set-xmark')
      return {kind: 'MARK', ...valueMask(w, w.next('value/mask'))}
    case 'CONNMARK': {
      const option = w.next('a CONNMARK option')
      if (option === '--set-xmark') return {kind: 'CONNMARK', ...valueMask(w, w.next('value/mask'))}
      if (option !== '--restore-mark') throw w.unknown(`CONNMARK ${option}`)
      w.expect('--nfmask')
      const nfmask = hexOf(w, w.next('a mask'))
      w.expect('--ctmask')
      return {kind: 'CONNMARK-restore', nfmask, ctmask: hexOf(w, w.next('a mask'))}
    }
    default:
      if (!isOwnedName(name)) throw w.unknown(`target ${name}`)
      return {kind: 'jump', chain: name}
  }
}

function portOf(w: Words, text: string): number {
  const port = Number(text)
  if (!/^[1-9]\d{0,4}$/.test(text) || port > 65535) throw w.unknown(`port ${text}`)
  return port
}

function hexOf(w: Words, text: string): number {
  if (!/^0x[0-9a-f]{1,8}$/.test(text)) throw w.unknown(`mark ${text}`)
  return Number.parseInt(text.slice(2), 16)
}

function valueMask(w: Words, text: string): {value: number; mask: number} {
  const [value, mask, ...rest] = text.split('/')
  if (value === undefined || mask === undefined || rest.length > 0) throw w.unknown(`mark ${text}`)
  return {value: hexOf(w, value), mask: hexOf(w, mask)}
}
