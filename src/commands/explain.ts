import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {SmartnatCommand} from '../cli/base.js'
import {hostFlags, planFlags, sourceFlags} from '../cli/flags.js'
import {explainRequest} from '../cli/requests.js'
import {errorChain, MappingNotFoundError} from '../lib/app/errors.js'
import {explainOnHost, type MappingExplanation, type PacketExplanation} from '../lib/app/explain.js'
import {mappingExplanationLines, packetExplanationLines} from '../lib/explain/format.js'
import {outputPaint} from '../lib/format/columns.js'

export default class Explain extends SmartnatCommand {
  static override summary = 'Why traffic does or does not get through: one Mapping, or one packet, through the desired rules and the kernel’s.'

  static override description = `With a Mapping: its verdict (and the exact reason when it is invalid), its mode, the Service, VIP and ready endpoints it resolves to (in mode direct, its endpoint groups with their members, and this host's route to each member), and every rule and set entry that implements it, each checked against the kernel with its packet counters.

With --src and --dst: follows a new connection's first packet through the rules smartnat wants and through the rules the kernel actually holds, step by step: which Mapping and allowed source matched or why it was dropped or refused, the DNAT target (in mode direct, the endpoint group, its members and the route to each), and how replies are routed. When the two disagree, the packet follows the kernel, and explain says so.

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
    let asked
    try {
      asked = explainRequest(args.mapping, flags)
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    const explained = await explainOnHost(asked.request, asked.target).catch((error: unknown) =>
      // An unknown Mapping is the operator's question answered; a host that cannot be inspected is a failure.
      error instanceof MappingNotFoundError ? this.error(error.message, {exit: 1}) : this.error(errorChain(error)),
    )
    const paint = outputPaint()
    if ('packet' in explained) {
      if (!this.jsonEnabled()) for (const line of packetExplanationLines(explained.packet, paint)) this.log(line)
      return explained.packet
    }
    if (!this.jsonEnabled()) for (const line of mappingExplanationLines(explained.mapping, paint)) this.log(line)
    return explained.mapping
  }
}
