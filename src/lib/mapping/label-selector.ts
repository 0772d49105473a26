/**
 * Kubernetes label selectors (metav1.LabelSelector: matchLabels and matchExpressions with In, NotIn,
 * Exists, DoesNotExist), parsed once and matched against a label map. All requirements must hold; an
 * empty selector matches everything, as in Kubernetes.
 */
import {showValue} from './names.js'

export type Labels = Readonly<Record<string, string>>

/** One requirement of a parsed selector. */
export type LabelRequirement =
  | {key: string; operator: 'In' | 'NotIn'; values: readonly string[]}
  | {key: string; operator: 'Exists' | 'DoesNotExist'}

/** A selector that parsed: every requirement, matchLabels included (as `In` with one value). */
export interface LabelSelector {
  requirements: readonly LabelRequirement[]
}

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist'])
// A label key: an optional DNS subdomain prefix and a name of at most 63 characters.
const KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Parses a LabelSelector found at `path`; the reason it is wrong (naming the field) when it is. */
export function parseLabelSelector(value: unknown, path: string): LabelSelector | string {
  if (!isObject(value)) return `${path} must be an object with matchLabels and/or matchExpressions`
  const unknown = Object.keys(value).filter((field) => field !== 'matchLabels' && field !== 'matchExpressions')
  if (unknown.length > 0) return `${path}.${unknown[0]} is not a field of a label selector (matchLabels, matchExpressions)`
  const requirements: LabelRequirement[] = []
  const {matchLabels, matchExpressions} = value
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isObject(matchLabels)) return `${path}.matchLabels must map label keys to values`
    for (const [key, label] of Object.entries(matchLabels)) {
      if (!KEY.test(key)) return `${path}.matchLabels key ${showValue(key)} is not a label key`
      if (typeof label !== 'string' || !VALUE.test(label)) return `${path}.matchLabels[${showValue(key)}] ${showValue(label)} is not a label value`
      requirements.push({key, operator: 'In', values: [label]})
    }
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) return `${path}.matchExpressions must be a list of {key, operator, values}`
    for (const [i, expression] of matchExpressions.entries()) {
      const parsed = parseExpression(expression, `${path}.matchExpressions[${i}]`)
      if (typeof parsed === 'string') return parsed
      requirements.push(parsed)
    }
  }
  return {requirements}
}

function parseExpression(expression: unknown, path: string): LabelRequirement | string {
  if (!isObject(expression)) return `${path} must be an object with key, operator and values`
  const {key, operator, values} = expression
  if (typeof key !== 'string' || !KEY.test(key)) return `${path}.key ${showValue(key)} is not a label key`
  if (typeof operator !== 'string' || !OPERATORS.has(operator)) return `${path}.operator ${showValue(operator)} must be In, NotIn, Exists or DoesNotExist`
  const listed = values === undefined || values === null ? [] : values
  if (!Array.isArray(listed)) return `${path}.values must be a list of label values`
  for (const [j, text] of listed.entries()) {
    if (typeof text !== 'string' || !VALUE.test(text)) return `${path}.values[${j}] ${showValue(text)} is not a label value`
  }
  if (operator === 'Exists' || operator === 'DoesNotExist') {
    if (listed.length > 0) return `${path}.values must be empty for operator ${operator}`
    return {key, operator}
  }
  if (listed.length === 0) return `${path}.values must list at least one value for operator ${operator}`
  return {key, operator: operator as 'In' | 'NotIn', values: [...(listed as string[])]}
}

/** Whether `labels` satisfy every requirement of `selector`. */
export function selectorMatches(selector: LabelSelector, labels: Labels): boolean {
  return selector.requirements.every((requirement) => {
    const has = Object.hasOwn(labels, requirement.key)
    switch (requirement.operator) {
      case 'Exists':
        return has
      case 'DoesNotExist':
        return !has
      case 'In':
        return has && requirement.values.includes(labels[requirement.key]!)
      case 'NotIn':
        return !has || !requirement.values.includes(labels[requirement.key]!)
    }
  })
}
