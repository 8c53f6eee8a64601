#!/usr/bin/env bash
# `make manifests`: render deploy/ (plain manifests, one object per file, and install.yaml) from
# charts/spikeprof with its default values, and the values table of charts/spikeprof/README.md.
# Builds (or reuses) helm, copies the single source of the CRD, crds/, into the chart, then
# renders. Pass --check to only report drift.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tools/cluster/build.sh helm

crd=crds/spikeprof.io_profilingsessions.yaml
copy=charts/spikeprof/files/crds/spikeprof.io_profilingsessions.yaml
if [ "${1:-}" != --check ] && ! cmp -s "$crd" "$copy"; then
  mkdir -p "$(dirname "$copy")"
  cp "$crd" "$copy"
  echo "Copied $crd into the chart ($copy)."
fi

python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
# The chart README's values table, from values.yaml and its comments.
if [ "${1:-}" = --check ]; then
  "$python" tools/chart_readme.py --check
else
  "$python" tools/chart_readme.py
fi
exec "$python" tools/render_manifests.py --helm .cluster/bin/helm "$@"
