#!/usr/bin/env bash
# Build (or reuse) the local control-plane binaries from the pinned Go modules in
# hack/tools/{k8s,etcd,kwok}:
#   etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok (+ kwok.yaml stages)
#
# Binaries go to a cache outside the clone, keyed on the pins, so every clone on this
# machine shares them and only a pin change rebuilds:
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/bin/<key>/
#
# Usage:
#   hack/build-control-plane.sh                 build if needed; the last line printed is the bin dir
#   hack/build-control-plane.sh --print-bin-dir print the bin dir; exit 1 if it is not built yet
#
# Environment: BUILD_JOBS (go build -p, default 2: each compile of k8s.io/kubernetes can
# take ~2 GB, links of kube-apiserver more).
set -euo pipefail

# Bump when the way binaries are built changes (flags, stamped variables, extra files):
# it is part of the cache key.
BUILD_SCRIPT_VERSION=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$repo/hack/tools
LOG_PREFIX=build-control-plane
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

pins() {
  echo "build-script-version=${BUILD_SCRIPT_VERSION}"
  local m f
  for m in k8s etcd kwok; do
    for f in go.mod go.sum tools.go; do
      echo "== ${m}/${f}"
      cat "${tools}/${m}/${f}"
    done
  done
}

use_cached_build bin "$(pins | cache_key)" "$@"

# --- Go toolchain check ---------------------------------------------------------------
# The minimum is the highest `go` directive among the tool modules (k8s.io/kubernetes
# sets it); GOTOOLCHAIN=local so Go never tries to download another toolchain.
export GOTOOLCHAIN=local
min_go=$(awk '$1 == "go" {print $2}' "$tools"/*/go.mod | sort -V | tail -1)
install_hint="install Go ${min_go} or newer (https://go.dev/dl/, or a distribution package) and put it on PATH"
command -v go >/dev/null || die "Go is not installed; ${install_hint}"
have_go=$(go env GOVERSION) || die "cannot run 'go env GOVERSION'; ${install_hint}"
have_go=${have_go#go}
have_go=${have_go%%[^0-9.]*}
if [[ $(printf '%s\n%s\n' "$min_go" "$have_go" | sort -V | head -1) != "$min_go" ]]; then
  die "Go ${have_go} is too old, these pins need Go ${min_go} or newer; ${install_hint}"
fi

# --- build into a temporary dir, then rename it into place ----------------------------
start_build

jobs=${BUILD_JOBS:-2}
# go.sum is committed: -mod=readonly builds exactly the pinned graph. The user's GOFLAGS
# (e.g. -mod=vendor) must not change that.
export GOFLAGS=
common=(-mod=readonly -trimpath -buildvcs=false -p "$jobs")

modver() { (cd "${tools}/$1" && go list -m -f '{{.Version}}' "$2"); }

start=$SECONDS

k8s_version=$(modver k8s k8s.io/kubernetes)
[[ $k8s_version =~ ^v1\.([0-9]+)\. ]] || die "unexpected k8s.io/kubernetes version ${k8s_version}"
k8s_minor=${BASH_REMATCH[1]}
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X ${pkg}.gitVersion=${k8s_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${k8s_minor}"
  k8s_ldflags+=" -X ${pkg}.gitTreeState=clean"
done
log "building Kubernetes ${k8s_version} (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) with -p ${jobs}; from scratch this takes 7-15 min on 2 cores"
(cd "${tools}/k8s" && go build "${common[@]}" -ldflags "$k8s_ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl)

etcd_version=$(modver etcd go.etcd.io/etcd/server/v3)
log "building etcd ${etcd_version}"
# etcd's version number is a constant; only the git SHA is stamped by its release build.
(cd "${tools}/etcd" && go build "${common[@]}" \
  -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-${etcd_version}" \
  -o "$tmp/etcd" go.etcd.io/etcd/server/v3)

kwok_version=$(modver kwok sigs.k8s.io/kwok)
log "building kwok ${kwok_version}"
(cd "${tools}/kwok" && go build "${common[@]}" \
  -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s_version#v}" \
  -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)

# kwok without --config has no stages and refuses to start: ship the same default stages
# kwokctl uses (node initialize + heartbeat with lease, pod ready/complete/delete), taken
# from the pinned kwok module so they match the binary.
kwok_dir=$(cd "${tools}/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
{
  first=1
  for f in node/fast/node-initialize.yaml \
    node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ $first == 1 ]] || echo '---'
    first=0
    cat "${kwok_dir}/kustomize/stage/${f}"
  done
} >"$tmp/kwok.yaml"

cat >"$tmp/VERSIONS" <<EOF
kubernetes ${k8s_version}
etcd ${etcd_version}
kwok ${kwok_version}
go $(go env GOVERSION)
EOF
finish_build
log "built in $((SECONDS - start))s: $(tr '\n' ' ' <"${bin_dir}/VERSIONS")"
echo "$bin_dir"
