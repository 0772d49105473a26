/** Reads the nftables backend's actual state back from the kernel, through a Runner. */
import {kernelReadError, streamOutput, type Runner} from '../../host/runner.js'
import {readRouting} from '../../routing/read.js'
import {NftListingSplitter} from './json-items.js'
import {TABLE_FAMILY, TABLE_NAME} from './names.js'
import {NftTableReader} from './parse.js'
import type {NftState, NftTable} from './types.js'

/** The one command that prints smartnat's table; other tables are never listed. */
export const NFT_READ: readonly [string, readonly string[]] = ['nft', ['-j', 'list', 'table', TABLE_FAMILY, TABLE_NAME]]

/**
 * smartnat's table as nft lists it, or undefined when there is none. The listing (15 MB at 10,000
 * Mappings) is read item by item as its bytes arrive, and never held whole; a set found as it is in
 * `like` is that set (NftTableReader).
 */
export async function readNftTable(runner: Runner, like?: NftTable): Promise<NftTable | undefined> {
  const [command, args] = NFT_READ
  const table = new NftTableReader(like)
  const listing = new NftListingSplitter(table)
  // Kept until the exit code is known: a failing nft's output is not a listing to complain about.
  let unreadable: {error: unknown} | undefined
  const take = (chunk: Buffer) => {
    if (unreadable) return
    try {
      listing.write(chunk)
    } catch (error) {
      unreadable = {error}
    }
  }
  let result
  try {
    result = await streamOutput(runner, command, [...args], take, {okExitCodes: [1]})
  } catch (error) {
    throw kernelReadError(command, args, error)
  }
  if (result.exitCode === 0) {
    if (unreadable) throw unreadable.error
    if (!listing.end()) throw new Error('nft -j list table: output has more than the "nftables" array')
    return table.finish()
  }
  // nft says ENOENT for a missing table; any other failure must not pass for "no table".
  if (/No such file or directory/.test(result.stderr)) return undefined
  throw new Error(`reading kernel state: ${[command, ...args].join(' ')} exited with 1: ${result.stderr.trim()}`)
}

/** Reads smartnat's table, ip rules and routes as they are in the kernel now; sets as they are in `like` are those. */
export async function readNftState(runner: Runner, like?: NftTable): Promise<NftState> {
  const [table, routing] = await Promise.all([readNftTable(runner, like), readRouting(runner)])
  return {...(table ? {table} : {}), ...routing}
}
