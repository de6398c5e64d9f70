#!/usr/bin/env bash
# Build (or reuse) Argo Rollouts' controller from the pinned Go module in
# hack/tools/argo-rollouts/pins, for the side-by-side benchmark (bench/peer.py). Beside the
# `rollouts-controller` binary go the CRDs of the same version (manifests/crds, a
# kustomization: apply it with `kubectl apply --server-side -k <dir>/manifests/crds`).
#
# Like the control plane, the result goes to a cache outside the clone, keyed on the pins,
# so every clone on this machine shares it and only a pin change rebuilds:
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/argo-rollouts/<key>/
#
# Usage:
#   hack/build-argo-rollouts.sh                 build if needed; the last line printed is the dir
#   hack/build-argo-rollouts.sh --print-bin-dir print the dir; exit 1 if it is not built yet
#
# Environment: BUILD_JOBS (go build -p, default 2).
set -euo pipefail

# Bump when the way Argo Rollouts is built changes (flags, stamped variables, extra files):
# it is part of the cache key.
BUILD_SCRIPT_VERSION=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins=$repo/hack/tools/argo-rollouts/pins
LOG_PREFIX=build-argo-rollouts
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

use_cached_build argo-rollouts "$(pinned_build_key)" "$@"

module=$(pin ARGO_ROLLOUTS_MODULE)
version=$(pin ARGO_ROLLOUTS_VERSION)
module_sum=$(pin ARGO_ROLLOUTS_SUM)
use_pinned_go_toolchain

start=$SECONDS
log "downloading ${module}@${version}"
module_dir=$(download_module "$module" "$version" "$module_sum")

# --- build into a temporary dir, then rename it into place ----------------------------
start_build

# Its go.mod has replace directives, so `go install pkg@version` refuses it: build in a
# writable copy of the module instead.
src=$tmp/src
copy_writable "$module_dir" "$src"

jobs=${BUILD_JOBS:-2}
# What its own Makefile stamps, so `rollouts-controller version` prints the pin.
package=${module}/utils/version
ldflags="-s -w -X ${package}.version=${version} -X ${package}.gitTag=${version}"
ldflags+=" -X ${package}.gitCommit=module-${version} -X ${package}.gitTreeState=clean"
ldflags+=" -X ${package}.buildDate=1970-01-01T00:00:00Z"
log "building Argo Rollouts ${version} with $(go env GOVERSION) and -p ${jobs}; from scratch this takes ~5 CPU-minutes"
(cd "$src" && go build -mod=readonly -trimpath -buildvcs=false -p "$jobs" \
  -ldflags "$ldflags" -o "$tmp/rollouts-controller" ./cmd/rollouts-controller)

mkdir -p "$tmp/manifests"
cp -r "$src/manifests/crds" "$tmp/manifests/"
chmod -R a+rX,u+w "$tmp/manifests"
rm -rf "$src"

cat >"$tmp/VERSIONS" <<VERSIONS
argo-rollouts ${version}
go $(go env GOVERSION)
VERSIONS
finish_build
log "built in $((SECONDS - start))s: $(tr '\n' ' ' <"${bin_dir}/VERSIONS")"
echo "$bin_dir"
