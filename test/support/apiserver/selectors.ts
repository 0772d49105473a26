/** Label and field selectors with the syntax and semantics of apimachinery's `labels.Parse` and `fields.ParseSelector`. */
import {badRequest} from './errors.js'

type LabelRequirement =
  | {op: 'exists' | 'notexists'; key: string}
  | {op: 'in' | 'notin'; key: string; values: string[]}

export type Labels = Record<string, string>

/** A parsed label selector; the empty selector matches everything. */
export interface LabelSelector {
  matches(labels: Labels | undefined): boolean
  empty: boolean
}

/** Parses `a=b,c!=d,e in (f,g),!h,i`. */
export function parseLabelSelector(text: string | null | undefined): LabelSelector {
  const requirements = splitTopLevel(text ?? '').map(parseLabelRequirement)
  return {
    empty: requirements.length === 0,
    matches: (labels) => requirements.every((r) => matchLabel(r, labels ?? {})),
  }
}

function parseLabelRequirement(part: string): LabelRequirement {
  const set = /^([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part)
  if (set) {
    const values = set[3]!.split(',').map((v) => v.trim()).filter((v) => v !== '')
    return {op: set[2] as 'in' | 'notin', key: checkKey(set[1]!), values}
  }
  const eq = /^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(part)
  if (eq) {
    const key = checkKey(eq[1]!)
    return {op: eq[2] === '!=' ? 'notin' : 'in', key, values: [eq[3]!]}
  }
  const not = /^!\s*([^\s!=()]+)$/.exec(part)
  if (not) return {op: 'notexists', key: checkKey(not[1]!)}
  if (/^[^\s!=()]+$/.test(part)) return {op: 'exists', key: checkKey(part)}
  throw badRequest(`unable to parse requirement: found '${part}', expected: key, '!', 'in', 'notin', '=', '==' or '!='`)
}

function checkKey(key: string): string {
  if (!/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(key) || key.length > 317) {
    throw badRequest(`unable to parse requirement: invalid label key "${key}"`)
  }
  return key
}

function matchLabel(r: LabelRequirement, labels: Labels): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key)
  switch (r.op) {
    case 'exists':
      return has
    case 'notexists':
      return !has
    case 'in':
      return has && r.values.includes(labels[r.key]!)
    case 'notin':
      return !has || !r.values.includes(labels[r.key]!)
  }
}

/** Splits on commas that are not inside `( )`. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of text) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      parts.push(current.trim())
      current = ''
    } else {
      current += ch
    }
  }
  parts.push(current.trim())
  return parts.filter((p) => p !== '')
}

export interface FieldRequirement {
  field: string
  value: string
  negate: boolean
}

/** A parsed field selector over the field labels a resource type supports. */
export interface FieldSelector {
  requirements: FieldRequirement[]
  matches(fields: Record<string, string>): boolean
}

/** Parses `metadata.name=x,spec.type!=y`; fields the resource does not support are a 400, as on the real server. */
export function parseFieldSelector(text: string | null | undefined, supported: readonly string[]): FieldSelector {
  const requirements = splitTopLevel(text ?? '').map((part) => {
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(part)
    if (!m) throw badRequest(`invalid selector: '${part}'; can't understand '${part}'`)
    const field = m[1]!.trim()
    if (!supported.includes(field)) throw badRequest(`field label not supported: ${field}`)
    return {field, value: m[3]!.trim(), negate: m[2] === '!='}
  })
  return {
    requirements,
    matches: (fields) => requirements.every((r) => (fields[r.field] === r.value) !== r.negate),
  }
}
