/**
 * Both backends comment each endpoint's DNAT (an iptables rule, an nft map element) with
 * `namespace/name protocol/port`, the name cut to the tool's limit; read back, the comment names the
 * Mapping that programs the endpoint (the mass-removal guard counts them so).
 */
const ENDPOINT_SUFFIX = / (?:tcp|udp)\/\d+$/

/** The Mapping (`namespace/name`) an endpoint's comment names; undefined for none, or a comment of another shape. */
export function commentedMapping(comment: string | undefined): string | undefined {
  return comment !== undefined && ENDPOINT_SUFFIX.test(comment) ? comment.replace(ENDPOINT_SUFFIX, '') : undefined
}
