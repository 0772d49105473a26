import {Args, Flags} from '@oclif/core'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, planFlags, sourceFlags, sourceOptions, syncSettings} from '../cli/flags.js'
import {createBackend} from '../lib/backend/registry.js'
import {errorChain, inspectHost, snapshotLoader} from '../lib/explain/context.js'
import {mappingExplanationLines, packetExplanationLines} from '../lib/explain/format.js'
import {explainMapping, type MappingExplanation} from '../lib/explain/mapping.js'
import {explainPacket, parsePacketSpec, type PacketExplanation} from '../lib/explain/packet.js'
import {ExecRunner} from '../lib/host/runner.js'
import {outputPaint} from '../lib/status/columns.js'

export default class Explain extends SmartnatCommand {
  static override summary = 'Why traffic does or does not get through: one Mapping, or one packet, through the desired rules and the kernel’s.'

  static override description = `With a Mapping: its verdict (and the exact reason when it is invalid), the Service, VIP and ready endpoints it resolves to, and every rule and set entry that implements it, each checked against the kernel with its packet counters.

With --src and --dst: follows a new connection's first packet through the rules smartnat wants and through the rules the kernel actually holds, step by step: which Mapping and allowed source matched or why it was dropped, the DNAT target, and how replies are routed. When the two disagree, the packet follows the kernel, and explain says so.

Writes nothing. Without root the kernel cannot be read: only the desired rules are shown, with a warning.`

  static override examples = [
    {description: 'A Mapping', command: 'sudo <%= config.bin %> <%= command.id %> -f mappings/ shop/api'},
    {description: 'The same, kubectl style', command: 'sudo <%= config.bin %> <%= command.id %> -f mappings/ api -n shop'},
    {description: 'One packet, for scripts', command: 'sudo <%= config.bin %> <%= command.id %> -f mappings/ --src 203.0.113.7 --dst 198.18.0.10:443/tcp --json'},
  ]

  static override enableJsonFlag = true

  static override args = {
    mapping: Args.string({description: 'The Mapping, as NAMESPACE/NAME, or NAME with -n NAMESPACE (default namespace "default").', required: false}),
  }

  static override flags = {
    ...sourceFlags,
    ...hostFlags,
    ...planFlags,
    namespace: Flags.string({char: 'n', summary: 'Namespace of the Mapping named without one.', helpValue: 'NAMESPACE'}),
    src: Flags.string({summary: 'Source address of the packet to trace.', helpValue: 'IP', dependsOn: ['dst']}),
    dst: Flags.string({summary: 'Destination of the packet to trace; tcp unless /udp.', helpValue: 'IP:PORT[/tcp|udp]', dependsOn: ['src']}),
    'in-interface': Flags.string({summary: 'Interface the packet arrives on (default: the external interface holding the destination).', helpValue: 'IFACE', dependsOn: ['src']}),
  }

  async run(): Promise<MappingExplanation | PacketExplanation> {
    const {args, flags} = await this.parseWithConfig(Explain)
    if (args.mapping !== undefined && flags.src !== undefined) this.error('give either a Mapping or --src/--dst, not both', {exit: 2})
    if (args.mapping === undefined && flags.src === undefined) this.error('give a Mapping (NAMESPACE/NAME) or a packet (--src IP --dst IP:PORT)', {exit: 2})
    let settings
    let packet
    let source
    try {
      settings = syncSettings(flags)
      source = sourceOptions(flags)
      if (flags.src !== undefined) packet = parsePacketSpec(flags.src, flags.dst!, flags['in-interface'])
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    const mappingId = args.mapping === undefined ? undefined : this.mappingId(args.mapping, flags.namespace)

    const runner = new ExecRunner({timeoutSeconds: flags['command-timeout'], ...(flags.netns ? {netns: flags.netns} : {})})
    const backend = createBackend(flags.backend, runner, {forwardAccept: flags['forward-accept']})
    const loadSnapshot = snapshotLoader(source)
    const inspection = await inspectHost({runner, backend, loadSnapshot}, settings).catch((error: unknown) => this.error(errorChain(error)))
    const paint = outputPaint()

    if (packet) {
      const explanation = explainPacket(inspection, backend.inspect, packet)
      if (!this.jsonEnabled()) for (const line of packetExplanationLines(explanation, paint)) this.log(line)
      return explanation
    }
    let explanation: MappingExplanation
    try {
      explanation = explainMapping(inspection, mappingId!)
    } catch (error) {
      this.error((error as Error).message, {exit: 1})
    }
    if (!this.jsonEnabled()) for (const line of mappingExplanationLines(explanation, paint)) this.log(line)
    return explanation
  }

  /** `ns/name`, or `name` in -n's namespace, or in "default" like kubectl. */
  private mappingId(text: string, namespace: string | undefined): string {
    const parts = text.split('/')
    if (parts.length > 2 || parts.some((p) => p === '')) this.error(`mapping "${text}": expected NAMESPACE/NAME or NAME`, {exit: 2})
    if (parts.length === 2) {
      if (namespace !== undefined && namespace !== parts[0]) this.error(`mapping "${text}" names namespace ${parts[0]}, but -n says ${namespace}`, {exit: 2})
      return text
    }
    return `${namespace ?? 'default'}/${text}`
  }
}
