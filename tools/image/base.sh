#!/usr/bin/env bash
# Makes the Python base image the operator image is built on here, where no container registry
# is reachable: Debian's python3 packages laid out by mmdebstrap, imported into the local
# containers storage (shared by buildah and podman). Prints the image's name.
#
# The image and its root tarball are cached, keyed by the recipe below and the host's apt
# sources, so that a warm run reuses them: ~/.cache/spikeprof/image/python-base-<key>.tar, and
# localhost/spikeprof-python-base:<key> in the containers storage.
set -euo pipefail

cache_dir="${SPIKEPROF_CACHE:-$HOME/.cache/spikeprof}/image"

# What the image holds: python3 and venv (the Dockerfile's build stage makes a venv), the CA
# bundle for HTTPS peers such as object stores, and passwd for the Dockerfile's useradd.
# usr-is-merged (with mmdebstrap's merged-usr hook) keeps apt from choosing usrmerge, which
# would bring all of perl. libstdc++6: numpy's and protobuf's (upb) compiled modules link it, as
# manylinux wheels may, and so does protoc from grpcio-tools, which the build stage runs.
packages=usr-is-merged,python3,python3-venv,ca-certificates,passwd,libstdc++6
# Essential packages a Python runtime never calls, removed once everything is configured:
# nothing installs packages in the image, and the Dockerfile's RUN lines need only dash,
# coreutils and passwd.
purge=(perl-base bash util-linux init-system-helpers sysvinit-utils ncurses-bin hostname)
# Documentation, translations and glibc's iconv modules (Python has its own codecs).
dpkg_opts=(
  'path-exclude=/usr/share/man/*'
  'path-exclude=/usr/share/doc/*'
  'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/locale/*'
  'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/lib/*/gconv/*'
)

if ! command -v mmdebstrap >/dev/null || ! command -v podman >/dev/null; then
  echo "base.sh: needs mmdebstrap and podman (Debian: apt-get install mmdebstrap podman)" >&2
  exit 1
fi
. /etc/os-release
suite="${VERSION_CODENAME:?base.sh: /etc/os-release names no Debian release}"
# The host's own apt sources: the same mirrors and keys apt uses here.
sources=()
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -f "$file" ]] && grep -q '^[^#[:space:]]' "$file" && sources+=("$file")
done
if ((${#sources[@]} == 0)); then
  echo "base.sh: no apt sources found under /etc/apt" >&2
  exit 1
fi

key=$(
  {
    echo "$suite $packages ${purge[*]} ${dpkg_opts[*]}"
    cat "${sources[@]}"
  } | sha256sum | cut -c1-16
)
image="localhost/spikeprof-python-base:$key"
tarball="$cache_dir/python-base-$key.tar"

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

if [[ ! -f "$tarball" ]]; then
  mkdir -p "$cache_dir"
  echo "base.sh: building $image with mmdebstrap ($suite: $packages)" >&2
  args=(
    --variant=essential
    --format=tar
    --include="$packages"
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --customize-hook="chroot \"\$1\" dpkg --purge --force-remove-essential --force-depends ${purge[*]}"
  )
  for opt in "${dpkg_opts[@]}"; do
    args+=(--dpkgopt="$opt")
  done
  # mmdebstrap reads sources from standard input when it is not a terminal: give it none.
  mmdebstrap "${args[@]}" "$suite" "$tarball.partial" "${sources[@]}" </dev/null >&2
  mv "$tarball.partial" "$tarball"
fi

podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$image" >&2
echo "$image"
