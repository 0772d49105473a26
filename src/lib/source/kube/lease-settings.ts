/** How host Leases are kept; apart from leases.ts, so that reading the flags loads no Kubernetes client. */

/** Where the host Leases live and how long one lasts without renewal; every host of a fleet must use the same namespace. */
export interface LeaseSettings {
  namespace: string
  durationSeconds: number
}

/** The namespace deploy/rbac.yaml creates, whether a host runs as a pod or under systemd. */
export const DEFAULT_LEASE_NAMESPACE = 'smartnat-system'
/** As a kubelet's node Lease: 40 s, renewed every 10 s. */
export const DEFAULT_LEASE_DURATION_SECONDS = 40
