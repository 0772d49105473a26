/** The resource types tests name most, by what they are rather than by group, version and plural. */
import type {Registry} from './registry.js'
import type {ResourceType} from './resources.js'

const SMARTNAT_GROUP = 'smartnat.aureacentral.com'

/** Each getter looks its type up when read, so a type a CRD adds after start is found; an unserved one throws. */
export class ServedTypes {
  constructor(private readonly registry: Registry) {}

  get mappings(): ResourceType {
    return this.registry.require(SMARTNAT_GROUP, 'v1alpha1', 'mappings')
  }

  get addressPools(): ResourceType {
    return this.registry.require(SMARTNAT_GROUP, 'v1alpha1', 'addresspools')
  }

  get services(): ResourceType {
    return this.registry.require('', 'v1', 'services')
  }

  get endpointSlices(): ResourceType {
    return this.registry.require('discovery.k8s.io', 'v1', 'endpointslices')
  }

  get events(): ResourceType {
    return this.registry.require('', 'v1', 'events')
  }

  get namespaces(): ResourceType {
    return this.registry.require('', 'v1', 'namespaces')
  }

  get leases(): ResourceType {
    return this.registry.require('coordination.k8s.io', 'v1', 'leases')
  }

  get crds(): ResourceType {
    return this.registry.require('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
  }
}
