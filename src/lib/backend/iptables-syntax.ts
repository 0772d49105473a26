/**
 * What of iptables' own syntax both backends use: the nftables backend writes one rule into
 * iptables' FORWARD (nftables/forward-accept.ts), and the forward checks read that chain.
 */
import {hex, INTERFACE_MASK} from '../net/marks.js'

/** The command that applies an iptables-save style payload to the chains it names, leaving the others alone. */
export const IPTABLES_RESTORE: readonly [string, string[]] = ['iptables-restore', ['--noflush', '--wait']]

/**
 * Matches the connections smartnat marked with their external interface: those it DNATed and, with
 * egress, those a Mapping's pods started. What FORWARD accepts, in either backend.
 */
export const OWN_CONNECTIONS_MATCH = `-m connmark ! --mark 0x0/${hex(INTERFACE_MASK)}`

/** Splits a rule line into words the way iptables-restore does: double quotes group, backslash escapes. */
export function ruleWords(line: string): string[] {
  // Most rules quote and escape nothing: plain splitting gives the same words, much faster.
  if (!line.includes('"') && !line.includes('\\')) return line.split(' ').filter((word) => word !== '')
  const words: string[] = []
  let word = ''
  let inWord = false
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (c === '\\' && i + 1 < line.length) {
      word += line[++i]
      inWord = true
    } else if (c === '"') {
      quoted = !quoted
      inWord = true
    } else if (c === ' ' && !quoted) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (inWord) words.push(word)
  return words
}
