/** Reads the nftables backend's actual state back from the kernel, through a Runner. */
import type {Runner} from '../../host/runner.js'
import {readRouting} from '../../routing/read.js'
import {TABLE_FAMILY, TABLE_NAME} from './names.js'
import {parseNftJson} from './parse.js'
import type {NftState, NftTable} from './types.js'

/** The one command that prints smartnat's table; other tables are never listed. */
export const NFT_READ: readonly [string, readonly string[]] = ['nft', ['-j', 'list', 'table', TABLE_FAMILY, TABLE_NAME]]

/** smartnat's table as nft lists it, or undefined when there is none. */
export async function readNftTable(runner: Runner): Promise<NftTable | undefined> {
  const [command, args] = NFT_READ
  let result
  try {
    result = await runner.run(command, [...args], {okExitCodes: [1]})
  } catch (error) {
    throw new Error(`reading kernel state: ${[command, ...args].join(' ')} failed`, {cause: error})
  }
  if (result.exitCode === 0) return parseNftJson(result.stdout)
  // nft says ENOENT for a missing table; any other failure must not pass for "no table".
  if (/No such file or directory/.test(result.stderr)) return undefined
  throw new Error(`reading kernel state: ${[command, ...args].join(' ')} exited with 1: ${result.stderr.trim()}`)
}

/** Reads smartnat's table, ip rules and routes as they are in the kernel now. */
export async function readNftState(runner: Runner): Promise<NftState> {
  const [table, routing] = await Promise.all([readNftTable(runner), readRouting(runner)])
  return {...(table ? {table} : {}), ...routing}
}
