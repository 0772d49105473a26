import type {Config} from '@oclif/core'

/** Loads smartnat's oclif Config from src/ (through tsx), never from oclif.manifest.json. */
export function sourceConfig(): Promise<Config>
