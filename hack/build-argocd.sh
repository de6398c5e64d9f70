#!/usr/bin/env bash
# Build (or reuse) Argo CD from the pinned Go module in hack/tools/argocd/pins, for the
# GitOps tests and hack/argocd.sh. One `argocd` binary serves every component (it
# dispatches on its name, or on ARGOCD_BINARY_NAME); beside it go the files the local
# Argo CD needs from the same module: the CRDs, the base config and git-verify-wrapper.sh.
#
# Like the control plane, the result goes to a cache outside the clone, keyed on the pins,
# so every clone on this machine shares it and only a pin change rebuilds:
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/argocd/<key>/
#
# Usage:
#   hack/build-argocd.sh                 build if needed; the last line printed is the dir
#   hack/build-argocd.sh --print-bin-dir print the dir; exit 1 if it is not built yet
#
# Environment: BUILD_JOBS (go build -p, default 2: the build peaks at ~2.5 GB).
set -euo pipefail

# Bump when the way Argo CD is built changes (flags, stamped variables, extra files):
# it is part of the cache key.
BUILD_SCRIPT_VERSION=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins=$repo/hack/tools/argocd/pins
LOG_PREFIX=build-argocd
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

use_cached_build argocd "$(pinned_build_key)" "$@"

argocd_module=$(pin ARGOCD_MODULE)
version=$(pin ARGOCD_VERSION)
argocd_sum=$(pin ARGOCD_SUM)
engine_module=$(pin GITOPS_ENGINE_MODULE)
engine_sum=$(pin GITOPS_ENGINE_SUM)

# argo-cd needs a newer Go than the control plane (its own release build is static too).
use_pinned_go_toolchain

start=$SECONDS
log "downloading ${argocd_module}@${version} and ${engine_module}@${version}"
argocd_dir=$(download_module "$argocd_module" "$version" "$argocd_sum")
engine_dir=$(download_module "$engine_module" "$version" "$engine_sum")

# --- build into a temporary dir, then rename it into place ----------------------------
start_build

# The module cache is read-only and has no ./gitops-engine: build in a writable copy with
# the nested module laid where argo-cd's replace directive expects it.
src=$tmp/src
copy_writable "$argocd_dir" "$src"
grep -q "^replace ${engine_module} => ./gitops-engine$" "$src/go.mod" ||
  die "${argocd_module}@${version} no longer replaces ${engine_module} with ./gitops-engine; update this script"
rm -rf "$src/gitops-engine"
copy_writable "$engine_dir" "$src/gitops-engine"

jobs=${BUILD_JOBS:-2}
kubectl_version=$(cd "$src" && go list -m -f '{{.Version}}' k8s.io/kubectl)
# With a tag, a commit and a clean tree, `argocd version` prints the tag: the pin.
package=github.com/argoproj/argo-cd/v3/common
ldflags="-s -w -X ${package}.version=${version#v} -X ${package}.gitTag=${version}"
ldflags+=" -X ${package}.gitCommit=module-${version} -X ${package}.gitTreeState=clean"
ldflags+=" -X ${package}.kubectlVersion=${kubectl_version}"
ldflags+=" -X ${package}.extraBuildInfo=built-from-go-module"
log "building Argo CD ${version} with $(go env GOVERSION) and -p ${jobs}; from scratch this takes ~10 min on 2 cores and ~2.5 GB"
(cd "$src" && go build -mod=readonly -trimpath -buildvcs=false -p "$jobs" \
  -ldflags "$ldflags" -o "$tmp/argocd" ./cmd)

# What a local Argo CD needs from the same version: CRDs, the argocd namespace's base
# config, and the wrapper the repo-server runs git through.
mkdir -p "$tmp/manifests"
cp -r "$src/manifests/crds" "$src/manifests/base/config" "$tmp/manifests/"
cp "$src/hack/git-verify-wrapper.sh" "$tmp/"
chmod -R a+rX,u+w "$tmp/manifests" "$tmp/git-verify-wrapper.sh"
chmod 755 "$tmp/git-verify-wrapper.sh"
rm -rf "$src"

cat >"$tmp/VERSIONS" <<EOF
argocd ${version}
gitops-engine ${version}
go $(go env GOVERSION)
EOF
finish_build
log "built in $((SECONDS - start))s: $(tr '\n' ' ' <"${bin_dir}/VERSIONS")"
echo "$bin_dir"
