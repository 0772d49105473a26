/**
 * The one YAML reader and writer of smartnat. js-yaml builds plain objects directly: 10,000
 * Mappings with their Services and EndpointSlices (30,000 documents, 11 MB) load in 0.47 s and
 * 136 MB, where building each document's syntax tree first took 3.6-4.2 s and 150-420 MB.
 */
import {CORE_SCHEMA, dump, load, loadAll, YAMLException} from 'js-yaml'

function located(error: unknown, where: string): Error {
  if (!(error instanceof YAMLException)) return error as Error
  return new Error(`${where}:${error.mark.line + 1}: invalid YAML: ${error.reason}`, {cause: error})
}

/** Every document of `text`, with the core schema; a syntax error is `WHERE:LINE: invalid YAML: REASON`. */
export function parseYamlDocuments(text: string, where: string): unknown[] {
  try {
    return loadAll(text, undefined, {schema: CORE_SCHEMA, filename: where})
  } catch (error) {
    throw located(error, where)
  }
}

/** The one document of `text`, as parseYamlDocuments reads it. */
export function parseYaml(text: string, where: string): unknown {
  try {
    return load(text, {schema: CORE_SCHEMA, filename: where})
  } catch (error) {
    throw located(error, where)
  }
}

/** `value` as YAML, every object written out where it occurs (no anchors), lines never folded. */
export function toYaml(value: unknown): string {
  return dump(value, {schema: CORE_SCHEMA, noRefs: true, lineWidth: -1})
}
