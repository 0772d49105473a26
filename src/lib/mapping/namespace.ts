/** Namespaces as smartnat reads them: names and labels only, for AddressPools that select namespaces by label. */
import type {Labels} from './label-selector.js'
import type {ObjectMeta} from './types.js'

export interface NamespaceResource {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
}

/** Each named namespace's labels (none: an empty map); label values that are not strings are left out. */
export function namespaceLabels(namespaces: readonly NamespaceResource[]): Map<string, Labels> {
  const byName = new Map<string, Labels>()
  for (const namespace of namespaces) {
    const name = namespace.metadata?.name
    if (typeof name !== 'string') continue
    const labels = namespace.metadata.labels
    const kept = typeof labels === 'object' && labels !== null ? Object.fromEntries(Object.entries(labels).filter(([, value]) => typeof value === 'string')) : {}
    byName.set(name, kept)
  }
  return byName
}
