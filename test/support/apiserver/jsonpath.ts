/** The subset of kubectl JSONPath that printer columns use: `.a.b`, `[n]`, `[*]` and `[?(@.k=="v")]`. */

type Step = {field: string} | {index: number} | {all: true} | {filter: {path: string[]; value: string}}

/** Every value `path` reaches in `data`, in document order; missing keys give no result. */
export function findResults(data: unknown, path: string): unknown[] {
  let nodes: unknown[] = [data]
  for (const step of parse(path)) {
    const next: unknown[] = []
    for (const node of nodes) {
      if ('field' in step) {
        if (isObject(node) && node[step.field] !== undefined) next.push(node[step.field])
      } else if ('index' in step) {
        if (Array.isArray(node) && step.index < node.length) next.push(node[step.index])
      } else if ('all' in step) {
        if (Array.isArray(node)) next.push(...node)
        else if (isObject(node)) next.push(...Object.values(node))
      } else if (Array.isArray(node)) {
        next.push(...node.filter((e) => String(dig(e, step.filter.path)) === step.filter.value))
      }
    }
    nodes = next
  }
  return nodes
}

/** Prints one result the way client-go's JSONPath printer does: strings bare, everything else as JSON. */
export function printResult(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function dig(value: unknown, path: string[]): unknown {
  let node = value
  for (const key of path) node = isObject(node) ? node[key] : undefined
  return node
}

function parse(path: string): Step[] {
  const text = path.trim().replace(/^\{(.*)\}$/, '$1').replace(/^\$/, '')
  const steps: Step[] = []
  const token = /\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\*\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["']([^"']*)["']\)\]/gy
  let m: RegExpExecArray | null
  while (token.lastIndex < text.length && (m = token.exec(text)) !== null) {
    if (m[1] !== undefined) steps.push({field: m[1]})
    else if (m[2] !== undefined) steps.push({index: Number(m[2])})
    else if (m[3] !== undefined) steps.push({filter: {path: m[3].split('.'), value: m[4]!}})
    else steps.push({all: true})
  }
  if (token.lastIndex !== text.length && text.length > 0) throw new Error(`unsupported JSONPath "${path}"`)
  return steps
}
