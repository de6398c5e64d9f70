#!/usr/bin/env bash
# Copy (or reuse) the standard-channel CRDs of the pinned sigs.k8s.io/gateway-api
# (GATEWAY_API_* in hack/tools/traefik/pins), one file a CRD, without building Traefik: the
# install tests need the HTTPRoute and Gateway kinds in the cluster (RBAC on them is only
# resolved for kinds the API server serves) on any host, a real node or not.
#
# Like the builds, the result goes to a cache outside the clone, keyed on those pins:
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/gateway-api-crds/<key>/
#
# Usage:
#   hack/gateway-api-crds.sh                 copy if needed; the last line printed is the dir
#   hack/gateway-api-crds.sh --print-bin-dir print the dir; exit 1 if it is not there yet
set -euo pipefail

BUILD_SCRIPT_VERSION=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins=$repo/hack/tools/traefik/pins
LOG_PREFIX=gateway-api-crds
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

key=$({ echo "build-script-version=${BUILD_SCRIPT_VERSION}"; grep '^GATEWAY_API_' "$pins"; } | cache_key)
use_cached_build gateway-api-crds "$key" "$@"
use_pinned_go_toolchain

crd_dir=$(download_module "$(pin GATEWAY_API_MODULE)" "$(pin GATEWAY_API_VERSION)" "$(pin GATEWAY_API_SUM)")
start_build
# The standard channel only: what a cluster installs from the release's standard-install.yaml.
cp "$crd_dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$tmp/"
chmod -R a+rX,u+w "$tmp"
echo "gateway-api $(pin GATEWAY_API_VERSION)" >"$tmp/VERSIONS"
finish_build
log "copied the Gateway API $(pin GATEWAY_API_VERSION) CRDs"
echo "$bin_dir"
