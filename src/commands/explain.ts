import {Command} from '@oclif/core'

export default class Explain extends Command {
  static override description = 'Not available yet in this version of smartnat'

  async run(): Promise<void> {
    this.error('smartnat explain is not implemented yet in this version', {exit: 2})
  }
}
