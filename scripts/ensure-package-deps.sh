#!/usr/bin/env bash
# Installs what `npm run package` and `npm run test:package` need beyond scripts/ensure-deps.sh, on
# Debian as root: dpkg-deb (dpkg-dev's tools), umoci and skopeo for the image, debootstrap and
# systemd-analyze for the .deb's test. CI does not run these; quiet when everything is there.
set -euo pipefail
declare -A package_of=([dpkg-deb]=dpkg [umoci]=umoci [skopeo]=skopeo [debootstrap]=debootstrap [systemd-analyze]=systemd [apt-get]=apt)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "smartnat: missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "smartnat: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq "${missing[@]}" >/dev/null
