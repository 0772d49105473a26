import {createHash} from 'node:crypto'

/** A stable short id of a text (lowercase hex), for owned chain and set names. */
export function shortHash(text: string, length = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length)
}
