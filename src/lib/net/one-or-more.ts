/**
 * Lists kept by key where most keys have one item (the Mapping claiming an endpoint, the Mapping
 * naming a Service, a Service's EndpointSlice, the egress entries listing a pod): the item itself
 * while it is alone, an array from the second on. An array of one costs 56 bytes; at 10,000 Mappings
 * the kept plan held 60,000 and each backend's egress index 20,000. Items are objects, never
 * arrays, so the two cases cannot be taken one for the other.
 */
export type OneOrMore<T extends object> = T | T[]

/** The items of `list`, in the order they were added. */
export function itemsOf<T extends object>(list: OneOrMore<T> | undefined): readonly T[] {
  return list === undefined ? [] : Array.isArray(list) ? list : [list as T]
}

/** The last item of `list`. */
export function lastItem<T extends object>(list: OneOrMore<T> | undefined): T | undefined {
  return Array.isArray(list) ? list[list.length - 1] : list
}

/** The first item of `list`. */
export function firstItem<T extends object>(list: OneOrMore<T> | undefined): T | undefined {
  return Array.isArray(list) ? list[0] : list
}

/** `list` with `item` added last (an array grown in place). */
export function withItem<T extends object>(list: OneOrMore<T> | undefined, item: T): OneOrMore<T> {
  if (list === undefined) return item
  if (!Array.isArray(list)) return [list as T, item]
  list.push(item)
  return list
}

/** `list` without `item` (undefined when none is left), or `list` unchanged when it does not hold `item`. */
export function withoutItem<T extends object>(list: OneOrMore<T> | undefined, item: T): OneOrMore<T> | undefined {
  if (list === item) return undefined
  if (!Array.isArray(list)) return list
  const at = list.indexOf(item)
  if (at < 0) return list
  list.splice(at, 1)
  return list.length === 1 ? list[0] : list
}
