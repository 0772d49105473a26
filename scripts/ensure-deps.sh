#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build, test and demo smartnat:
# the npm packages (when node_modules is missing or older than package-lock.json) and,
# as root, the kernel tools through apt-get. Quiet and quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "smartnat: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

# flock takes smartnat's lock and unshare runs its PID namespace test: util-linux, essential on Debian, but not in every image.
# keepalived and conntrackd run in the HA pair's namespace lab (test/e2e/ha-failover.test.ts).
# The packages (npm run package) and their tests (test/package/): dpkg-deb, umoci and skopeo build the .deb and the
# image; debootstrap makes the fresh Debian the .deb is installed into, whose unit systemd-analyze verifies.
declare -A package_of=([iptables]=iptables [ipset]=ipset [conntrack]=conntrack [nft]=nftables [ip]=iproute2 [flock]=util-linux [unshare]=util-linux
  [keepalived]=keepalived [conntrackd]=conntrackd
  [dpkg-deb]=dpkg [umoci]=umoci [skopeo]=skopeo [debootstrap]=debootstrap [systemd-analyze]=systemd)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "smartnat: missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "smartnat: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq "${missing[@]}" >/dev/null
