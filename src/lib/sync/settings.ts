/** Everything one sync pass needs to know besides the cluster's objects. */
import type {FloatingAddress} from '../plan/floating.js'
import type {PlanOptions} from '../plan/model.js'

export interface SyncSettings {
  plan: PlanOptions
  /** External interfaces: those whose name matches. */
  interfacesPattern: RegExp
  /** Addresses keepalived moves between an HA pair: planned here whether or not assigned here now. */
  floating?: FloatingAddress[]
}
