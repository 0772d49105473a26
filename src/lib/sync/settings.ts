/** Everything one sync pass needs to know besides the cluster's objects. */
import type {PlanOptions} from '../plan/model.js'

export interface SyncSettings {
  plan: PlanOptions
  /** External interfaces: those whose name matches. */
  interfacesPattern: RegExp
}
