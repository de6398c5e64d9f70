#!/usr/bin/env bash
# Build (or reuse) Traefik, the proxy of the real-node tests (a Gateway API implementation
# that also serves Ingress), from the pinned Go module in hack/tools/traefik/pins. Beside the
# `traefik` binary go the standard-channel CRDs of the pinned sigs.k8s.io/gateway-api
# (gateway-api-crds/, one file a CRD: `kubectl apply --server-side -f <dir>/gateway-api-crds`).
#
# Like the control plane, the result goes to a cache outside the clone, keyed on the pins,
# so every clone on this machine shares it and only a pin change rebuilds:
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/traefik/<key>/
#
# Usage:
#   hack/build-traefik.sh                 build if needed; the last line printed is the dir
#   hack/build-traefik.sh --print-bin-dir print the dir; exit 1 if it is not built yet
#
# Environment: BUILD_JOBS (go build -p, default 2).
set -euo pipefail

# Bump when the way Traefik is built changes (flags, stamped variables, extra files):
# it is part of the cache key.
BUILD_SCRIPT_VERSION=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins=$repo/hack/tools/traefik/pins
LOG_PREFIX=build-traefik
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

use_cached_build traefik "$(pinned_build_key)" "$@"

module=$(pin TRAEFIK_MODULE)
version=$(pin TRAEFIK_VERSION)
use_pinned_go_toolchain

start=$SECONDS
log "downloading ${module}@${version} and $(pin GATEWAY_API_MODULE)@$(pin GATEWAY_API_VERSION)"
module_dir=$(download_module "$module" "$version" "$(pin TRAEFIK_SUM)")
crd_dir=$(download_module "$(pin GATEWAY_API_MODULE)" "$(pin GATEWAY_API_VERSION)" "$(pin GATEWAY_API_SUM)")

# --- build into a temporary dir, then rename it into place ----------------------------
start_build

# Its go.mod has replace directives, so `go install pkg@version` refuses it: build in a
# writable copy of the module instead.
src=$tmp/src
copy_writable "$module_dir" "$src"

jobs=${BUILD_JOBS:-2}
# What its own Makefile stamps, so `traefik version` prints the pin.
package=${module}/pkg/version
ldflags="-s -w -X ${package}.Version=${version} -X ${package}.Codename=module"
ldflags+=" -X ${package}.BuildDate=1970-01-01T00:00:00Z"
log "building Traefik ${version} with $(go env GOVERSION) and -p ${jobs}; from scratch this takes ~7 minutes on 2 cores"
(cd "$src" && go build -mod=readonly -trimpath -buildvcs=false -p "$jobs" \
  -ldflags "$ldflags" -o "$tmp/traefik" ./cmd/traefik)
rm -rf "$src"

# The standard channel only: what a cluster installs from the release's standard-install.yaml
# (the ValidatingAdmissionPolicy of safe upgrades included).
mkdir -p "$tmp/gateway-api-crds"
cp "$crd_dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$tmp/gateway-api-crds/"
chmod -R a+rX,u+w "$tmp/gateway-api-crds"

cat >"$tmp/VERSIONS" <<VERSIONS
traefik ${version}
gateway-api $(pin GATEWAY_API_VERSION)
go $(go env GOVERSION)
VERSIONS
finish_build
log "built in $((SECONDS - start))s: $(tr '\n' ' ' <"${bin_dir}/VERSIONS")"
echo "$bin_dir"
