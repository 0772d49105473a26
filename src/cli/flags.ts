/** Flags shared by the commands, with the original controller's environment variables as fallbacks. */
import * as Flags from '@oclif/core/flags'

import {BACKEND_NAMES, type BackendName} from '../lib/backend/registry.js'
import {DEFAULT_INTERFACES_PATTERN, compileInterfacesPattern} from '../lib/host/interfaces.js'
import {DEFAULT_LOCK_PATH, waitingLine, type LockOptions} from '../lib/host/lock.js'
import {DEFAULT_RT_TABLES} from '../lib/host/rt-tables.js'
import {parseFloatingAddresses} from '../lib/plan/floating.js'
import {DEFAULT_PLAN_OPTIONS, type PlanOptions} from '../lib/plan/model.js'
import {DEFAULT_DYNAMIC_PORTS, formatPortRange, parsePortRange} from '../lib/mapping/dynamic.js'
import {parseIpv4} from '../lib/net/ipv4.js'
import {DEFAULT_REMOVAL_POLICY, formatShare, MIN_HELD_REMOVAL, parseShare, type RemovalPolicy} from '../lib/sync/guard.js'
import {DEFAULT_LEASE_DURATION_SECONDS, DEFAULT_LEASE_NAMESPACE, type LeaseSettings} from '../lib/source/kube/lease-settings.js'
import type {SourceOptions} from '../lib/source/oneshot.js'
import type {SyncSettings} from '../lib/sync/settings.js'
import {flagDuration} from './duration.js'

export const sourceFlags = {
  'from-file': Flags.string({
    char: 'f',
    summary: 'Read Mappings, Services and EndpointSlices from a YAML file or a directory of them instead of the API.',
    helpValue: 'PATH',
  }),
  kubeconfig: Flags.string({
    summary: 'kubeconfig file to use, as kubectl does (default: KUBECONFIG, then ~/.kube/config, then in-cluster).',
    helpValue: 'PATH',
    exclusive: ['from-file'],
  }),
  context: Flags.string({
    summary: 'kubeconfig context to use instead of the current one.',
    helpValue: 'NAME',
    exclusive: ['from-file'],
  }),
  'api-timeout': Flags.string({
    summary: 'Longest wait for the Kubernetes API to answer one request, or to open a watch (500ms, 30s, 1m).',
    default: '30s',
    helpValue: 'DURATION',
  }),
  'default-load-balancer': Flags.boolean({
    summary: 'Serve LoadBalancer Services that name no loadBalancerClass too, not only those of class smartnat.aureacentral.com/edge.',
    default: false,
  }),
  'dynamic-ports': Flags.string({
    summary: 'Ports given to Mapping ports that leave `port` empty, as first-last; the same on every host.',
    default: formatPortRange(DEFAULT_DYNAMIC_PORTS),
    helpValue: 'FIRST-LAST',
  }),
}

/** This host's Lease, for the commands that write Mapping statuses: which hosts' status keys are live. */
export const leaseFlags = {
  'lease-namespace': Flags.string({
    summary: 'Namespace of the Lease each host renews to show its status keys are live; the same for every host.',
    env: 'SMARTNAT_LEASE_NAMESPACE',
    default: DEFAULT_LEASE_NAMESPACE,
    helpValue: 'NAMESPACE',
  }),
  'lease-duration': Flags.string({
    summary: 'How long this host\'s status keys count as live without a renewal (watch renews every quarter of it); above the cron interval for a host that only runs sync.',
    default: `${DEFAULT_LEASE_DURATION_SECONDS}s`,
    helpValue: 'DURATION',
  }),
}

/** The Lease settings of leaseFlags; throws when --lease-duration is not a duration of at least a second. */
export function leaseSettings(flags: {'lease-namespace': string; 'lease-duration': string}): LeaseSettings {
  const ms = flagDuration('lease-duration', flags['lease-duration'])
  if (ms < 1000) throw new Error(`--lease-duration must be at least 1s, got ${flags['lease-duration']}`)
  if (flags['lease-namespace'] === '') throw new Error('--lease-namespace must not be empty')
  return {namespace: flags['lease-namespace'], durationSeconds: Math.ceil(ms / 1000)}
}

/** The values of sourceFlags. */
export type SourceFlagValues = {'from-file'?: string; kubeconfig?: string; context?: string; 'api-timeout': string; 'default-load-balancer'?: boolean; 'dynamic-ports'?: string}

/** Turns parsed source flags into where a command reads its objects from; throws when --api-timeout is not a duration or --dynamic-ports not a range. */
export function sourceOptions(flags: SourceFlagValues): SourceOptions {
  const apiTimeoutMs = flagDuration('api-timeout', flags['api-timeout'])
  return {
    ...(flags['from-file'] !== undefined ? {fromFile: flags['from-file']} : {}),
    ...(flags.kubeconfig ? {kubeconfig: flags.kubeconfig} : {}),
    ...(flags.context ? {context: flags.context} : {}),
    ...(flags['default-load-balancer'] ? {defaultLoadBalancer: true} : {}),
    ...(flags['dynamic-ports'] === undefined ? {} : {dynamicPorts: parsePortRange(flags['dynamic-ports'])}),
    apiTimeoutMs,
  }
}

export const hostFlags = {
  backend: Flags.option({
    summary: 'How NAT is programmed: iptables + ipset, or one nftables table.',
    options: BACKEND_NAMES,
    env: 'SMARTNAT_BACKEND',
    default: 'iptables' as BackendName,
  })(),
  'forward-accept': Flags.boolean({
    summary:
      'With --backend nftables, accept smartnat’s connections first in iptables’ FORWARD, whose DROP policy its own table cannot overrule; on by default (--no-forward-accept where the firewall is managed elsewhere).',
    env: 'SMARTNAT_FORWARD_ACCEPT',
    default: true,
    allowNo: true,
  }),
  interfaces: Flags.string({
    summary: 'Regular expression selecting the external interfaces.',
    env: 'SNCTRLR_INTERFACES_PATTERN',
    default: DEFAULT_INTERFACES_PATTERN,
    helpValue: 'REGEX',
  }),
  netns: Flags.string({
    summary: 'Operate inside this named network namespace (labs, tests) instead of the host’s own.',
    helpValue: 'NAME',
  }),
  'command-timeout': Flags.integer({
    summary: 'Seconds any single iptables/ipset/nft/ip/conntrack command may take.',
    env: 'SNCTRLR_IPTABLES_TIMEOUT_SEC',
    default: 10,
    min: 1,
  }),
}

export const planFlags = {
  'default-gw-interface': Flags.string({
    summary: 'External interface whose replies follow the main routing table (no table of its own).',
    env: 'SNCTRLR_DEFAULT_GW_INTERFACE',
    helpValue: 'IFACE',
  }),
  'gw-offset': Flags.integer({
    summary: 'Gateway of each external subnet: 1 = first host, -1 = last host before broadcast.',
    env: 'SNCTRLR_GW_ADDRESS_OFFSET',
    default: DEFAULT_PLAN_OPTIONS.gwOffset,
  }),
  masquerade: Flags.boolean({
    summary: 'Masquerade traffic sent to the cluster; on by default (--no-masquerade keeps client addresses).',
    env: 'SNCTRLR_SETUP_MASQUERADE',
    default: DEFAULT_PLAN_OPTIONS.masquerade,
    allowNo: true,
  }),
  'cluster-address': Flags.string({
    summary:
      'High availability: connections to the cluster leave from this floating cluster-side address (keepalived moves it with the external ones) instead of being masqueraded to the host’s own.',
    env: 'SMARTNAT_CLUSTER_ADDRESS',
    helpValue: 'IP',
  }),
  'floating-addresses': Flags.string({
    summary:
      'High availability: external addresses keepalived moves between the pair, planned here whether or not assigned here now, so the standby is ready (comma-separated).',
    env: 'SMARTNAT_FLOATING_ADDRESSES',
    helpValue: 'IFACE=IP/LEN,...',
  }),
  snat: Flags.boolean({
    summary: 'Make connections started by a Mapping’s pods leave with the Mapping’s external address.',
    env: 'SNCTRLR_SETUP_SNAT',
    default: DEFAULT_PLAN_OPTIONS.snat,
  }),
  'max-ports-per-mapping': Flags.integer({
    summary: 'Most ports a single Mapping may list.',
    env: 'SNCTRLR_MAX_PORTS_PER_MAPPING',
    default: DEFAULT_PLAN_OPTIONS.maxPortsPerMapping,
    min: 1,
  }),
}

export const lockFlags = {
  'lock-file': Flags.string({
    summary: 'Lock file (flock) that serialises smartnat runs on this host, across containers that mount its directory.',
    default: DEFAULT_LOCK_PATH,
    helpValue: 'PATH',
  }),
  'lock-wait': Flags.integer({
    summary: 'Seconds to wait for another smartnat run to finish before giving up.',
    default: 30,
    min: 0,
  }),
}

/** Where the Go controller named its routing tables: read and cleaned by flush --legacy and sync --migrate. */
export const rtTablesFlag = {
  'rt-tables': Flags.string({
    summary: 'The rt_tables file in which the Go controller registered its per-interface routing tables (with --legacy or --migrate).',
    default: DEFAULT_RT_TABLES,
    helpValue: 'PATH',
  }),
}

export const removalFlags = {
  'max-removal': Flags.string({
    summary: `Hold a sync that would remove more than this share of the Mappings programmed here (and at least ${MIN_HELD_REMOVAL}); 100% turns the guard off.`,
    default: formatShare(DEFAULT_REMOVAL_POLICY.maxShare),
    helpValue: 'PERCENT',
  }),
}

/** The mass-removal guard's policy from `--max-removal`; a value that is not a percentage is an Error naming the flag. */
export function removalPolicy(flags: {'max-removal': string}): RemovalPolicy {
  try {
    return {maxShare: parseShare(flags['max-removal'])}
  } catch (error) {
    throw new Error(`--max-removal ${(error as Error).message}`, {cause: error})
  }
}

/**
 * The lock as the flags ask for it. One line says so on stderr when another run holds it and the
 * wait begins, with --json too, since stdout carries only the result.
 */
export function lockOptions(flags: {'lock-file': string; 'lock-wait': number}, purpose: string): LockOptions {
  const path = flags['lock-file']
  const waitMs = flags['lock-wait'] * 1000
  return {path, waitMs, purpose, onWait: (holder) => void process.stderr.write(`${waitingLine(path, waitMs, holder)}\n`)}
}

/** The values of planFlags and --interfaces. */
export type PlanFlagValues = {
  interfaces: string
  'default-gw-interface'?: string
  'gw-offset': number
  masquerade: boolean
  'cluster-address'?: string
  'floating-addresses'?: string
  snat: boolean
  'max-ports-per-mapping': number
}

/** Turns parsed flags into the settings of a sync pass; throws naming the flag whose value is not one. */
export function syncSettings(flags: PlanFlagValues): SyncSettings {
  const clusterText = flags['cluster-address']
  const clusterAddress = clusterText ? parseIpv4(clusterText) : undefined
  if (clusterText && !clusterAddress) throw new Error(`--cluster-address "${clusterText}" is not an IPv4 address`)
  const plan: PlanOptions = {
    maxPortsPerMapping: flags['max-ports-per-mapping'],
    masquerade: flags.masquerade,
    snat: flags.snat,
    gwOffset: flags['gw-offset'],
    ...(flags['default-gw-interface'] ? {defaultGwInterface: flags['default-gw-interface']} : {}),
    ...(clusterAddress ? {clusterAddress} : {}),
  }
  const floating = flags['floating-addresses'] ? parseFloatingAddresses(flags['floating-addresses']) : []
  return {plan, interfacesPattern: compileInterfacesPattern(flags.interfaces), ...(floating.length > 0 ? {floating} : {})}
}

/** What `watch`'s --log-level offers and where --metrics-addr listens unless told. */
export {LOG_LEVELS} from '../lib/observe/log.js'
export {DEFAULT_METRICS_ADDRESS} from '../lib/observe/listen-address.js'
