/** Where the config file is unless `--config` or SMARTNAT_CONFIG says otherwise; apart from config.ts, whose YAML reader the CLI's entry does not load. */
export const DEFAULT_CONFIG_PATH = '/etc/smartnat/config.yaml'
