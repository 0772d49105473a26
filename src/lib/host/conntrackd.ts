/** conntrackd's own view of its sync link, read from `conntrackd -s link`. */
import type {Runner} from './runner.js'

/** Where conntrackd's configuration (and so its control socket) is unless told otherwise. */
export const DEFAULT_CONNTRACKD_CONFIG = '/etc/conntrackd/conntrackd.conf'

/** One sample of the dedicated sync link, as conntrackd counts it. */
export interface SyncLinkSample {
  /** The link's interface. */
  device: string
  /** `RUNNING` when the link is up with a carrier; `DOWN`, `NO-CARRIER`... otherwise. */
  status: string
  /** Packets received from the peer so far: FTFW sends at least one message a second, so it grows while the peer lives. */
  packetsReceived: number
}

const LINK_LINE = /^\S+ traffic device=(\S+) status=(\S+)/m
const PACKETS_LINE = /^\s*(\d+) Pckts sent\s+(\d+) Pckts recv/m

/** Asks the conntrackd configured by `config` for its sync link; throws naming the config when it does not answer. */
export async function readSyncLink(runner: Runner, config: string): Promise<SyncLinkSample> {
  let stdout: string
  try {
    stdout = (await runner.run('conntrackd', ['-C', config, '-s', 'link'])).stdout
  } catch (error) {
    throw new Error(`conntrackd (${config}) does not answer: ${(error as Error).message}`, {cause: error})
  }
  return parseSyncLink(stdout)
}

/** Parses `conntrackd -s link` (the first, active link); throws when the output has no link in it. */
export function parseSyncLink(text: string): SyncLinkSample {
  const link = LINK_LINE.exec(text)
  const packets = PACKETS_LINE.exec(text.slice(link?.index ?? 0))
  if (!link || !packets) throw new Error(`conntrackd -s link: no sync link in its output: ${JSON.stringify(text.slice(0, 200))}`)
  return {device: link[1]!, status: link[2]!.replace(/:$/, ''), packetsReceived: Number(packets[2])}
}
