/**
 * Small lists that many kept objects hold equal, one frozen copy each: the ports of Mappings that
 * list the same ones (every Mapping of `tcp/80 -> 8080`), the addresses of Mappings on the same
 * ones, kept by the plan for each Mapping. At 10,000 Mappings a list of two ports kept per Mapping
 * costs 1.6 MB. The table holds at most `limit` lists and starts again when full, so that lists no
 * longer used do not stay for the process's life.
 */
export class SharedLists<T> {
  private readonly table = new Map<string, T[]>()

  constructor(private readonly limit: number) {}

  /** The list kept equal to `list` (as JSON: strings, numbers or objects of them), or from now on a fitted, frozen copy of `list`. */
  share(list: readonly T[]): T[] {
    const key = JSON.stringify(list)
    const kept = this.table.get(key)
    if (kept !== undefined) return kept
    if (this.table.size >= this.limit) this.table.clear()
    // Frozen: a list shared by many Mappings changed for one would change it for all.
    const copy = Object.freeze(list.map((item) => Object.freeze(item))) as T[]
    this.table.set(key, copy)
    return copy
  }
}
