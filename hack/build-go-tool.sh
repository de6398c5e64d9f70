#!/usr/bin/env bash
# Build (or reuse) a tool the tests run, from the pinned Go module in hack/tools/<name>:
#   helm     helm.sh/helm/v4 (cmd/helm): the chart's lint, render, install and upgrade
#   coredns  github.com/coredns/coredns: the cluster DNS of the real node's pods
#   prometheus  github.com/prometheus/prometheus (cmd/prometheus), with the Kubernetes service
#            discovery only: the real Prometheus of the Prometheus checks' tests
# Every package tools.go imports is built, or, where the module is a main package of its own
# (main.go: CoreDNS with the plugins it needs), that one. Like hack/build-control-plane.sh, into a cache
# outside the clone keyed on the tool's go.mod, go.sum and Go files:
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/bin/<name>-<key>/
# Go's own build cache is the one every other build here shares.
#
# Usage:
#   hack/build-go-tool.sh NAME                 build if needed; the last line printed is the bin dir
#   hack/build-go-tool.sh NAME --print-bin-dir print the bin dir; exit 1 if it is not built yet
#
# Environment: BUILD_JOBS (go build -p, default 2).
set -euo pipefail

# Bump when the way the tools are built changes (flags, stamped variables): part of the key.
BUILD_SCRIPT_VERSION=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=${1:-}
module_dir=${repo}/hack/tools/${name}
LOG_PREFIX=build-go-tool
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"
[[ -n $name && -f ${module_dir}/go.mod ]] || die "usage: $0 helm|coredns|prometheus [--print-bin-dir]"
shift

key=$({
  echo "build-script-version=${BUILD_SCRIPT_VERSION}"
  cat "${module_dir}/go.mod" "${module_dir}/go.sum" "${module_dir}"/*.go
} | cache_key)
use_cached_build bin "${name}-${key}" "$@"

export GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0
command -v go >/dev/null || die "Go is not installed; install it and put it on PATH"
if [[ -f ${module_dir}/tools.go ]]; then
  packages=$(sed -n 's/^\t_ "\(.*\)"$/\1/p' "${module_dir}/tools.go")
else
  packages=.
fi
modver() { (cd "$module_dir" && go list -m -f '{{.Version}}' "$1"); }

# The version each tool reports, stamped as its own release build stamps it.
ldflags="-s -w"
tags=""
case $name in
  helm)
    version=$(modver helm.sh/helm/v4)
    ldflags+=" -X helm.sh/helm/v4/internal/version.version=${version}"
    ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
    ;;
  coredns)
    version=$(modver github.com/coredns/coredns)
    ldflags+=" -X github.com/coredns/coredns/coremain.GitCommit=module-${version}"
    ;;
  prometheus)
    # v0.316.0 is Prometheus 3.16.0 (the module's versions are v0.<minor>.<patch>).
    version=$(modver github.com/prometheus/prometheus)
    ldflags+=" -X github.com/prometheus/common/version.Version=${version}"
    ldflags+=" -X github.com/prometheus/common/version.Branch=module"
    # Only the service discovery the tests use: the others (and their cloud SDKs) would be
    # most of the build.
    tags=remove_all_sd,enable_kubernetes_sd
    ;;
  *) version=unknown ;;
esac

start_build
start=$SECONDS
log "building ${name} ${version} with -p ${BUILD_JOBS:-2}"
# shellcheck disable=SC2086 # one package per word
(cd "$module_dir" && go build -mod=readonly -trimpath -buildvcs=false -p "${BUILD_JOBS:-2}" \
  -tags "$tags" -ldflags "$ldflags" -o "$tmp/" $packages)
echo "${name} ${version} go $(go env GOVERSION)" >"$tmp/VERSIONS"
finish_build
log "built in $((SECONDS - start))s: $(cat "${bin_dir}/VERSIONS")"
echo "$bin_dir"
