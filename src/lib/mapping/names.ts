/** Kubernetes name rules, and how untrusted values are shown inside messages. */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/

/** A namespace or Service-port-style name: lowercase alphanumerics and "-", at most 63 characters. */
export function isDns1123Label(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 63 && DNS1123_LABEL.test(value)
}

/** An object name: dot-separated DNS-1123 labels, at most 253 characters. */
export function isDns1123Subdomain(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 253 && DNS1123_SUBDOMAIN.test(value)
}

/** A Service name: a DNS-1123 label that starts with a letter. */
export function isDns1035Label(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 63 && DNS1035_LABEL.test(value)
}

const SHOWN_LENGTH = 80

// Values come from users: JSON quoting escapes newlines and quotes, and long values are cut so a
// status message stays readable.
/** Renders an untrusted value for a message: JSON-quoted, at most about 80 characters. */
export function showValue(value: unknown): string {
  let shown: string
  try {
    shown = JSON.stringify(value) ?? String(value)
  } catch {
    shown = `<${typeof value}>`
  }
  return shown.length > SHOWN_LENGTH ? `${shown.slice(0, SHOWN_LENGTH)}...` : shown
}
