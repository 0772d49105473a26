/**
 * The Go controller put a finalizer on every Mapping it configured and removed it once each of its
 * hosts had cleaned up. smartnat needs none, but Mappings carry that finalizer over a migration, and
 * deleting one then hangs until somebody removes it. A host removes it once the Mapping is being
 * deleted and a pass has applied without it, that is once nothing of it is programmed here.
 */
import type {MappingResource} from '../mapping/types.js'
import type {NatModel} from '../plan/model.js'
import {describeApiError, httpStatusOf} from '../source/kube/errors.js'
import type {JsonPatchOperation, MappingFinalizerApi} from '../source/kube/writers.js'
import {API_WRITES_IN_FLIGHT, mapBounded} from './bounded.js'

/** The finalizer the Go SmartNat controller adds (its mapping_controller.go, `finalizerName`). */
export const GO_CONTROLLER_FINALIZER = 'mapping.finalizers.aureacentral.com'

export interface FinalizerResult {
  removed: number
  /** The finalizers changed since the snapshot (422) or the object did (409): the next pass tries again. */
  conflicts: number
  errors: Error[]
}

/**
 * Removes the Go controller's finalizer, and only it, from every Mapping being deleted that `applied`
 * no longer programs. The patch tests the whole finalizers list first, so it never removes another.
 */
export async function removeGoFinalizers(
  api: MappingFinalizerApi,
  mappings: readonly MappingResource[],
  applied: Pick<NatModel, 'mappings'>,
  inFlight = API_WRITES_IN_FLIGHT,
): Promise<FinalizerResult> {
  const programmed = new Set(applied.mappings.map((m) => `${m.namespace}/${m.name}`))
  const held = mappings.filter((m) => {
    const {namespace, name, deletionTimestamp, finalizers} = m.metadata
    return deletionTimestamp !== undefined && Array.isArray(finalizers) && finalizers.includes(GO_CONTROLLER_FINALIZER) && !programmed.has(`${namespace}/${name}`)
  })
  const outcomes = await mapBounded(held, inFlight, async (mapping) => {
    const {namespace, name} = mapping.metadata
    try {
      await api.patchMetadata(namespace!, name!, finalizerRemoval(mapping.metadata.finalizers!))
      return 'removed'
    } catch (error) {
      const code = httpStatusOf(error)
      if (code === 404) return 'gone'
      if (code === 409 || code === 422) return 'conflict'
      return new Error(`mapping ${namespace}/${name}: removing finalizer ${GO_CONTROLLER_FINALIZER}: ${describeApiError(error)}`, {cause: error})
    }
  })
  const errors = outcomes.filter((outcome) => outcome instanceof Error)
  return {removed: outcomes.filter((o) => o === 'removed').length, conflicts: outcomes.filter((o) => o === 'conflict').length, errors}
}

/** The JSON patch taking the Go controller's finalizer out of `finalizers` as read, and failing if they changed since. */
export function finalizerRemoval(finalizers: readonly string[]): JsonPatchOperation[] {
  const index = finalizers.indexOf(GO_CONTROLLER_FINALIZER)
  return [
    {op: 'test', path: '/metadata/finalizers', value: [...finalizers]},
    {op: 'remove', path: `/metadata/finalizers/${index}`},
  ]
}
