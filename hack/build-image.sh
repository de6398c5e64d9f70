#!/usr/bin/env bash
# Build (or reuse) the operator's image from the repository's Dockerfile, as it is, with
# buildah (no daemon: vfs storage, chroot isolation, as root). No registry is reachable
# here, so the Dockerfile's base comes from Debian's packages: a bookworm root filesystem
# with python3.11 made by mmdebstrap, imported as a local image and passed as the build
# argument BASE_IMAGE (whose default stays python:3.11-slim-bookworm for `docker build`).
#
# Cached outside the clone like the binaries (hack/lib.sh):
#   ${cache}/images/base-<key>/      rootfs.tar, keyed on this script and the package list
#   ${cache}/images/operator-<key>/  operator.tar (a `docker save` archive, for
#                                    `ctr images import` and `docker load`), IMAGES, INFO;
#                                    keyed on the base, the Dockerfile, .dockerignore and
#                                    every file of the build context
# buildah's storage lives in the build's temporary directory and goes with it: nothing is
# left in /var/lib/containers.
#
# Usage:
#   hack/build-image.sh                  build if needed; logs size and layers, prints the dir last
#   hack/build-image.sh --print-bin-dir  print the dir; exit 1 if it is not built yet
set -euo pipefail

# Bump when the way the base or the image is built changes: part of both keys.
BUILD_SCRIPT_VERSION=1
SUITE=bookworm
# python:3.11-slim-bookworm's interpreter, from Debian instead of python.org's build;
# python3.11-venv brings ensurepip (the builder's `python3.11 -m venv`), ca-certificates
# what the slim image ships for TLS.
BASE_PACKAGES=(python3.11 python3.11-venv ca-certificates)
TAG=bluegreen.local/bluegreen-operator:$(sed -n 's/^version = "\(.*\)"$/\1/p' "$(dirname "$0")/../pyproject.toml")
BASE_TAG=bluegreen.local/debian-python:3.11-${SUITE}
# Debian's minimal system without the documentation, man pages and locales the slim images
# also leave out (the copyright files stay: the licences travel with the image); /usr merged
# by the hook rather than the usrmerge package, which would pull in all of perl; no /dev in
# the tarball (the runtime makes it).
MMDEBSTRAP_OPTIONS=(--mode=root --variant=minbase --skip=output/dev
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
for p in doc man info locale lintian; do
  MMDEBSTRAP_OPTIONS+=("--dpkgopt=path-exclude=/usr/share/${p}/*")
done
MMDEBSTRAP_OPTIONS+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_PREFIX=build-image
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

# The build context: what .dockerignore lets through (pyproject.toml, README.md and the
# package's sources without caches), listed relative to the repository.
context_files() {
  (cd "$repo" && { echo pyproject.toml; echo README.md; find operator -type f \
    ! -path '*/__pycache__/*' ! -name '*.py[cod]' ! -path 'operator/*.egg-info/*'; } | LC_ALL=C sort)
}

base_key=$({ echo "build-script-version=${BUILD_SCRIPT_VERSION} suite=${SUITE}"; echo "${BASE_PACKAGES[*]}"
  echo "${MMDEBSTRAP_OPTIONS[*]}"; } | cache_key)
base_dir=${cache}/images/base-${base_key}
key=$({
  echo "base=${base_key} tag=${TAG}"
  cat "${repo}/Dockerfile" "${repo}/.dockerignore"
  context_files | while read -r f; do echo "== $f"; cat "${repo}/$f"; done
} | cache_key)
use_cached_build images "operator-${key}" "$@"
image_dir=$bin_dir

[[ $(id -u) == 0 ]] || die "needs root (buildah's chroot isolation and mmdebstrap's root mode)"
"${repo}/hack/host-packages.sh" image

# The base root filesystem: Debian's minimal system and the interpreter.
if [[ ! -f ${base_dir}/.complete ]]; then
  bin_dir=$base_dir
  start_build
  start=$SECONDS
  log "making the ${SUITE} root filesystem with ${BASE_PACKAGES[*]} (mmdebstrap)"
  SOURCE_DATE_EPOCH=0 mmdebstrap --quiet "${MMDEBSTRAP_OPTIONS[@]}" \
    --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" "$SUITE" "${tmp}/rootfs.tar" \
    >"${tmp}/mmdebstrap.log" 2>&1 || { tail -n 30 "${tmp}/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  rm "${tmp}/mmdebstrap.log"
  finish_build
  log "root filesystem made in $((SECONDS - start))s: $(du -h "${base_dir}/rootfs.tar" | cut -f1)"
fi

bin_dir=$image_dir
start_build
start=$SECONDS
storage=${tmp}/storage
# vfs: no overlay mounts to clean up; chroot isolation: no user namespace or runtime needed.
buildah() {
  command buildah --root "${storage}/root" --runroot "${storage}/run" --storage-driver vfs "$@"
}
# buildah keeps a cache of blob digests in /var/lib/containers/cache whatever --root says:
# gone again with the build when this build made it.
host_state=/var/lib/containers
made_host_state=false
[[ -e $host_state ]] || made_host_state=true
cleanup() {
  buildah rm --all >/dev/null 2>&1 || true
  rm -rf "$tmp"
  if $made_host_state; then rm -rf "$host_state"; fi
}
trap cleanup EXIT
mkdir -p "$storage"
# Only local images are used (BASE_IMAGE is built here, never pulled).
printf '{"default": [{"type": "reject"}], "transports": {"docker-archive": {"": [{"type": "insecureAcceptAnything"}]}, "containers-storage": {"": [{"type": "insecureAcceptAnything"}]}}}\n' >"${storage}/policy.json"

log "importing the base as ${BASE_TAG}"
ctr=$(buildah from --signature-policy "${storage}/policy.json" scratch)
buildah add "$ctr" "${base_dir}/rootfs.tar" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd python3.11 --created-by "mmdebstrap ${SUITE} ${BASE_PACKAGES[*]}" "$ctr"
buildah commit --quiet --rm --timestamp 0 "$ctr" "$BASE_TAG" >/dev/null

# The context as .dockerignore lets it through, and nothing else: what the key covers is
# exactly what is built.
mkdir "${tmp}/context"
cp "${repo}/Dockerfile" "${repo}/.dockerignore" "${tmp}/context/"
context_files | (cd "$repo" && xargs cp --parents -t "${tmp}/context")

# pip in the builder reaches the package index the way this host's pip does: a network that
# re-signs TLS with its own CA (PIP_CERT, or `cert` in pip's configuration) gets that bundle
# and an index URL set here mounted into the build's RUN steps only, never into a layer.
volumes=()
host_cert=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
if [[ -n $host_cert && -f $host_cert ]] || [[ -n ${PIP_INDEX_URL:-} ]]; then
  {
    echo "[global]"
    [[ -n $host_cert && -f $host_cert ]] && echo "cert = /etc/pip-build-ca.crt"
    [[ -n ${PIP_INDEX_URL:-} ]] && echo "index-url = ${PIP_INDEX_URL}"
  } >"${storage}/pip.conf"
  volumes+=(--volume "${storage}/pip.conf:/etc/pip.conf:ro")
  [[ -n $host_cert && -f $host_cert ]] && volumes+=(--volume "${host_cert}:/etc/pip-build-ca.crt:ro")
fi

log "building ${TAG} from the Dockerfile (buildah)"
buildah build --quiet --isolation chroot --pull=never --signature-policy "${storage}/policy.json" \
  --timestamp 0 --build-arg "BASE_IMAGE=${BASE_TAG}" "${volumes[@]}" -t "$TAG" "${tmp}/context" \
  >"${tmp}/build.log" 2>&1 || { tail -n 40 "${tmp}/build.log" >&2; die "buildah build failed"; }
rm -rf "${tmp}/context" "${tmp}/build.log"
buildah push --quiet --signature-policy "${storage}/policy.json" "$TAG" "docker-archive:${tmp}/operator.tar:${TAG}" >/dev/null

layers=$(buildah inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$TAG")
python=$(tar -xOf "${base_dir}/rootfs.tar" ./var/lib/dpkg/status |
  awk '/^Package: python3.11-minimal$/ {p=1} p && /^Version:/ && !v {v=$2} END {print v}')
printf 'operator.tar %s\n' "$TAG" >"${tmp}/IMAGES"
printf '%s: %s MiB uncompressed, %s layers (base %s with Debian python3.11 %s); built in %ss\n' \
  "$TAG" "$(($(stat -c %s "${tmp}/operator.tar") / 1048576))" "$layers" "$SUITE" "$python" \
  "$((SECONDS - start))" >"${tmp}/INFO"
buildah rmi --all --force >/dev/null 2>&1 || true
rm -rf "$storage"
if $made_host_state; then rm -rf "$host_state"; fi
trap 'rm -rf "$tmp"' EXIT
finish_build
# Each change of the sources makes a new image of ~300 MB: keep the newest few (other
# clones on this machine build their own keys), not every one ever built.
ls -1dt "${cache}"/images/operator-*/ 2>/dev/null | tail -n +5 | xargs -r rm -rf
log "$(cat "${bin_dir}/INFO")"
echo "$bin_dir"
