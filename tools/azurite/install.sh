#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator the object-store tests upload to), once per lockfile.
#
# `npm ci` installs exactly package-lock.json into $SPIKEPROF_CACHE/npm/azurite-<key>, where <key>
# hashes package.json and the lockfile: a change of pin reinstalls, anything else reuses. The
# directory appears whole (built aside, then renamed), so an interrupted install is redone.
# .cluster/bin/azurite-blob in the work tree then links the blob service's entry point, and the
# script prints that path.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SPIKEPROF_CACHE:-$HOME/.cache/spikeprof}
links="$root/.cluster/bin"
mkdir -p "$cache/npm" "$links"

key=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-12)
out="$cache/npm/azurite-$key"
if [ ! -f "$out/.complete" ]; then
  command -v npm >/dev/null || { echo "install: npm is not installed (apt-get install nodejs npm)" >&2; exit 1; }
  echo "install: azurite ($key) -> $out" >&2
  start=$(date +%s)
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  cp "$here/package.json" "$here/package-lock.json" "$out.tmp/"
  # --ignore-scripts: Azurite ships built JavaScript; the one install script in its tree
  # (protobufjs') only prints advice. Azurite 3.37 declares Node >= 22 but its blob service runs
  # on this machine's Node 20 (the tests are the proof); --loglevel=error keeps that warning quiet.
  (cd "$out.tmp" && npm ci --ignore-scripts --omit=dev --no-audit --no-fund --loglevel=error) >&2
  touch "$out.tmp/.complete"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "install: azurite done in $(( $(date +%s) - start ))s" >&2
fi
ln -sfn "$out/node_modules/azurite/dist/src/blob/main.js" "$links/azurite-blob"
echo "$links/azurite-blob"
