/** Host addresses given on the command line (`--assume-addresses`) for a dry run on another machine. */
import {parseIpv4} from '../net/ipv4.js'
import type {HostInfo, HostInterface} from '../plan/model.js'

const ENTRY = /^([^/@]+)(?:\/(\d{1,2}))?(?:@([A-Za-z0-9_.:-]{1,15}))?$/

/** Parses `ADDRESS[/PREFIX][@IFACE],...`; the prefix defaults to 24 and the interface to eth1. */
export function parseAssumedAddresses(text: string): HostInfo {
  const byInterface = new Map<string, HostInterface>()
  for (const raw of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const match = ENTRY.exec(raw)
    const address = parseIpv4(match?.[1])
    const prefixLength = Number(match?.[2] ?? 24)
    if (!match || !address || prefixLength > 32) {
      throw new Error(`--assume-addresses: "${raw}" is not ADDRESS[/PREFIX][@IFACE], e.g. 198.18.0.10/24@eth1`)
    }
    const name = match[3] ?? 'eth1'
    const iface = byInterface.get(name) ?? {name, addresses: []}
    iface.addresses.push({address, prefixLength})
    byInterface.set(name, iface)
  }
  if (byInterface.size === 0) throw new Error('--assume-addresses: give at least one address')
  return {interfaces: [...byInterface.values()]}
}
