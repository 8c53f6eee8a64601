#!/usr/bin/env bash
# Builds the Go binaries the local control plane and tests run, once per pinned version.
#
# Each module below is built into $SPIKEPROF_CACHE/bin/<module>-<key>, where <key> hashes the
# module's sources, go.mod/go.sum and the Go version: a change of pin rebuilds, anything else reuses.
# .cluster/bin/ in the work tree then links every binary by name, for the harness and the Makefile.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SPIKEPROF_CACHE:-$HOME/.cache/spikeprof}
links="$root/.cluster/bin"
mkdir -p "$cache/bin" "$links"

# One build at a time: a second run would delete the .tmp directory of a build in progress
# (tests build what they need, and two test runs may start together).
exec 9>"$cache/bin/.build.lock"
flock 9

k8s_version=v1.37.2
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=37 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=37"

# module-dir | ldflags | packages | build tags (optional)
modules=(
  "cluster/etcd|-s -w|."
  "cluster/k8s|$k8s_ldflags|k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl"
  "cluster/helm|-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0|helm.sh/helm/v3/cmd/helm"
  "pprof-target|-s -w|."
  "cluster/kubelet-standin|-s -w|."
  "cluster/minio|-s -w|github.com/minio/minio"
  "cluster/fake-gcs-server|-s -w|."
  # daprd panics at start without a components tag; stablecomponents is what Dapr releases carry.
  "cluster/daprd|-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=1.16.5|github.com/dapr/dapr/cmd/daprd|stablecomponents"
)

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local m
  for m in "${want[@]}"; do [ "$m" = "$1" ] && return 0; done
  return 1
}

for entry in "${modules[@]}"; do
  IFS='|' read -r dir ldflags pkgs tags <<<"$entry"
  name=$(basename "$dir")
  selected "$name" || continue
  src="$root/tools/$dir"
  key=$( (go version; echo "$ldflags $pkgs${tags:+ $tags}"; cd "$src" && cat go.mod go.sum $(ls ./*.go 2>/dev/null)) | sha256sum | cut -c1-12)
  out="$cache/bin/$name-$key"
  if [ ! -f "$out/.complete" ]; then
    echo "build: $name ($key) -> $out" >&2
    start=$(date +%s)
    rm -rf "$out.tmp"
    mkdir -p "$out.tmp"
    # shellcheck disable=SC2086  # pkgs is a list of package paths
    (cd "$src" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out.tmp/" $pkgs)
    # A module built as "." is named after its module path; every binary is linked as <module>.
    if [ "$pkgs" = . ] && [ ! -f "$out.tmp/$name" ]; then
      mv "$out.tmp"/* "$out.tmp/$name"
    fi
    touch "$out.tmp/.complete"
    rm -rf "$out"
    mv "$out.tmp" "$out"
    echo "build: $name done in $(( $(date +%s) - start ))s" >&2
  fi
  for bin in "$out"/*; do
    ln -sfn "$bin" "$links/$(basename "$bin")"
  done
done
