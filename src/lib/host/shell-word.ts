/** A word as `sh` reads it back unchanged: as it is when nothing in it is special to the shell, else in single quotes. */
const PLAIN_WORD = /^[\w./:=+,@%-]+$/

export function shellWord(word: string): string {
  return PLAIN_WORD.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`
}
