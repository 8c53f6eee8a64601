#!/usr/bin/env bash
# Installs the Debian packages `make test` needs, when any is missing.
#
# Usage: tools/setup/system-packages.sh [package...]   (no arguments: everything `make test` needs)
#
# A warm machine does no apt work: one dpkg-query answers whether each package is installed. As
# root, the missing ones are installed with apt-get (CI runs `make test` as root on a fresh
# clone); as anyone else, the script prints the exact command to run and exits 1, since a test
# run should not ask for a password.
set -euo pipefail

if [ $# -gt 0 ]; then
  packages=("$@")
else
  packages=(
    ca-certificates procps iproute2
    # The real peers of the e2e tests (tests/e2e/peers.py) and the flame graph's browser
    # (tests/integration/pprof).
    prometheus prometheus-alertmanager chromium
    # The operator image's e2e test: a Debian base made with mmdebstrap, built with buildah and
    # run with podman on runc (crun cannot run here, see the Makefile's image target).
    buildah podman mmdebstrap runc
  )
  # Azurite (tools/azurite) runs on Node; a Node and npm the machine already has are used.
  command -v npm >/dev/null || packages+=(nodejs npm)
fi

missing=()
if command -v dpkg-query >/dev/null; then
  installed=$(dpkg-query --show --showformat='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
  for package in "${packages[@]}"; do
    grep -qx "$package installed" <<<"$installed" || missing+=("$package")
  done
else
  echo "system-packages: dpkg-query not found; this script installs Debian packages only." >&2
  echo "system-packages: make sure these (or your system's equivalents) are installed: ${packages[*]}" >&2
  exit 1
fi

[ ${#missing[@]} -eq 0 ] && exit 0

install=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
  echo "system-packages: make test needs Debian packages that are not installed: ${missing[*]}." >&2
  echo "system-packages: install them, then run make test again:" >&2
  echo "    sudo apt-get update && sudo ${install[*]}" >&2
  exit 1
fi

echo "system-packages: installing ${missing[*]}" >&2
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${install[@]}" -qq >/dev/null
echo "system-packages: done in $(( $(date +%s) - start ))s" >&2
