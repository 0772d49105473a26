/**
 * Counts the work a synchronous body does on arrays, Maps and Sets, so that a test can tell how
 * it grows with its input without a clock: the machine's load changes how long work takes, never
 * how much there is. Counted: each element an array method visits (a callback call, or the
 * elements `includes`/`indexOf` pass over), each step of iterating an array, Map or Set (for-of,
 * spread, Array.from, destructuring), each comparison of a sort. A loop over every Mapping inside
 * a loop over every Mapping shows up as work that grows with the square of their number; indexed
 * `for` loops and Map lookups are not counted (lookups cost the same at any size).
 */

type Method = (...args: unknown[]) => unknown

/** Array methods that call their callback once per element they visit. */
const CALLBACK_METHODS = ['every', 'filter', 'find', 'findIndex', 'findLast', 'findLastIndex', 'flatMap', 'forEach', 'map', 'reduce', 'reduceRight', 'some'] as const
/** Array methods that search without a callback, and where in the array they stopped. */
const SEARCH_METHODS = ['includes', 'indexOf', 'lastIndexOf'] as const
/** Prototypes whose iteration (for-of, spread, Array.from) and forEach are counted. */
const ITERABLES = [Array.prototype, Map.prototype, Set.prototype] as const
const ITERATORS = ['values', 'keys', 'entries'] as const

/** Runs `body` with arrays, Maps and Sets instrumented; returns its result and the work it did. */
export function countWork<T>(body: () => T): {result: T; work: number} {
  let work = 0
  const indexOf = Array.prototype.indexOf
  const restore: (() => void)[] = []
  const replace = (target: object, key: PropertyKey, wrap: (original: Method) => Method) => {
    const original = Reflect.get(target, key) as Method
    Object.defineProperty(target, key, {value: wrap(original), writable: true, configurable: true, enumerable: false})
    restore.push(() => Object.defineProperty(target, key, {value: original, writable: true, configurable: true, enumerable: false}))
  }
  const counted = (callback: Method): Method =>
    function (this: unknown, ...args: unknown[]) {
      work++
      return callback.apply(this, args)
    }
  try {
    for (const name of CALLBACK_METHODS) {
      replace(Array.prototype, name, (original) =>
        function (this: unknown[], callback: unknown, ...rest: unknown[]) {
          return original.call(this, typeof callback === 'function' ? counted(callback as Method) : callback, ...rest)
        },
      )
    }
    for (const name of SEARCH_METHODS) {
      replace(Array.prototype, name, (original) =>
        function (this: unknown[], ...args: unknown[]) {
          const result = original.apply(this, args)
          const index = name === 'includes' ? (result ? indexOf.apply(this, args as [unknown]) : -1) : (result as number)
          work += index === -1 ? this.length : name === 'lastIndexOf' ? this.length - index : index + 1
          return result
        },
      )
    }
    replace(Array.prototype, 'sort', (original) =>
      function (this: unknown[], compare?: unknown) {
        return original.call(this, counted(typeof compare === 'function' ? (compare as Method) : (defaultSortOrder as Method)))
      },
    )
    for (const prototype of ITERABLES) {
      if (prototype !== Array.prototype) replace(prototype, 'forEach', (original) => function (this: unknown, callback: unknown, ...rest: unknown[]) {
        return original.call(this, counted(callback as Method), ...rest)
      })
      const names = [...ITERATORS, Symbol.iterator]
      const originals = new Map(names.map((name) => [name, Reflect.get(prototype, name) as Method]))
      for (const name of names) {
        replace(prototype, name, () =>
          function (this: unknown) {
            const inner = originals.get(name)!.call(this) as Iterator<unknown>
            // Inherits from %IteratorPrototype%, so iterator helpers still work on it where Node has them.
            const counting = Object.create(Object.getPrototypeOf(Object.getPrototypeOf(inner)) as object) as Iterator<unknown>
            counting.next = () => {
              const step = inner.next()
              if (!step.done) work++
              return step
            }
            return counting
          },
        )
      }
    }
    // Installing the counters used counted methods too: only the body's work counts.
    work = 0
    const result = body()
    return {result, work}
  } finally {
    for (const undo of restore.reverse()) undo()
  }
}

/**
 * How much more work the larger input takes, counted: 2 when twice the input grows linearly, about
 * 2.1 with a sort, 4 when every item meets every other.
 */
export function workRatio(small: () => unknown, large: () => unknown): number {
  return countWork(large).work / countWork(small).work
}

/** What `sort()` without a comparator does: compare as strings, by UTF-16 code units. */
function defaultSortOrder(a: unknown, b: unknown): number {
  const [x, y] = [String(a), String(b)]
  return x < y ? -1 : x > y ? 1 : 0
}
