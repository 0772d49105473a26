/** The CLI script made ASCII-only (scripts/bundle.ts). */
/**
 * The script with every non-ASCII character written as a \\u escape. esbuild leaves them in regular
 * expression literals (ansis has one), and one such character makes V8 hold the whole 1.3 MB source
 * as a two-byte string: decoded, held and scanned at twice the size at every start. An escape means
 * the same character in a string, a template, a regular expression, an identifier or a comment.
 */
export function asciiOnly(source: string): string {
  return source.replace(/[^\0-\x7f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
