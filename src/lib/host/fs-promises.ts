/**
 * node:fs/promises, loaded when first used: with the modules it loads (readline, watchers) it costs a
 * start about 1 ms, and a dry-run sync, which imports the lock and the routing tables, uses neither.
 */
export function fsPromises(): typeof import('node:fs/promises') {
  return process.getBuiltinModule('node:fs/promises')
}
