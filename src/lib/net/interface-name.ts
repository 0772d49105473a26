// Linux allows almost any byte in an interface name; the rules only ever see ordinary ones, as
// iptables (after -i/-o) and nft accept them: IFNAMSIZ less the NUL.
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/

/** Fails unless `name` can be written into a rule as it is. */
export function checkInterfaceName(name: string): void {
  if (!INTERFACE_NAME.test(name)) throw new Error(`interface name ${JSON.stringify(name)} cannot be used in rules`)
}
