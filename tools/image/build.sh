#!/usr/bin/env bash
# `make image`: builds the operator image from the repository's Dockerfile with buildah, on the
# Debian Python base that tools/image/base.sh makes (no container registry is reachable here).
# Elsewhere, a plain `docker build .` uses the Dockerfile's default python:3.11-slim instead.
#
#   SPIKEPROF_IMAGE  the tag to build (default localhost/spikeprof:<chart appVersion>)
#
# Layers are cached in the containers storage: with the tree unchanged a rebuild reuses all of
# them, and a change to operator/ alone reinstalls only the operator, not its dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v buildah >/dev/null; then
  echo "build.sh: needs buildah (Debian: apt-get install buildah podman mmdebstrap runc)" >&2
  exit 1
fi
version=$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' charts/spikeprof/Chart.yaml)
image="${SPIKEPROF_IMAGE:-localhost/spikeprof:$version}"
# One build at a time on a machine: two would race on the base's tarball and on the tag.
lock_dir="${SPIKEPROF_CACHE:-$HOME/.cache/spikeprof}/image"
mkdir -p "$lock_dir"
exec 9>"$lock_dir/build.lock"
flock 9
base=$(tools/image/base.sh)

args=(
  --layers
  --build-arg "PYTHON_IMAGE=$base"
  # pip fetches the dependencies: the host's network, and its CA bundle (which holds the CA
  # of any proxy between here and the package index), mounted for RUN lines only.
  --network host
  --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro
  # podman's default limits may exceed this machine's hard limits, which fails every RUN.
  --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)"
  --ulimit nproc=4096:4096
)
# crun refuses hosts with cgroups in hybrid mode ("cgroups in hybrid mode not supported").
command -v runc >/dev/null && args+=(--runtime "$(command -v runc)")

previous=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
buildah bud "${args[@]}" --tag "$image" --file Dockerfile . >&2
# The image this build replaced is left untagged: remove it, or every change to operator/ would
# keep another copy of the venv. The build stage's layers stay, as the next build's cache.
current=$(podman image inspect --format '{{.Id}}' "$image")
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  podman rmi "$previous" >/dev/null 2>&1 || true  # still used by a container: keep it
fi
echo "$image"
