/**
 * The one nft table smartnat owns, the nftables backend's: named here because the forward checks
 * of either backend must tell it from the host's other tables.
 */
export const TABLE_FAMILY = 'ip'
export const TABLE_NAME = 'smartnat'
