#!/usr/bin/env bash
# Build (or reuse) the binaries of a real node from the pinned Go modules in hack/tools/node-*:
#   kubelet kube-proxy         hack/tools/node-k8s (the control plane's k8s.io/kubernetes release)
#   containerd ctr containerd-shim-runc-v2   hack/tools/node-containerd
#   runc (cgo, seccomp)        hack/tools/node-runc
#   cni/{bridge,host-local,loopback,portmap} hack/tools/node-cni
#   pause                      pause.c from the k8s.io/kubernetes module, gcc -static
#
# Like hack/build-control-plane.sh the binaries go to a cache outside the clone, keyed on
# the pins (its own key, so the control plane's cache does not move):
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/bin/node-<key>/
#
# Usage:
#   hack/build-node.sh                 build if needed; the last line printed is the bin dir
#   hack/build-node.sh --print-bin-dir print the bin dir; exit 1 if it is not built yet
#
# Environment: BUILD_JOBS (go build -p, default 2).
set -euo pipefail

# Bump when the way binaries are built changes (flags, tags, stamped variables): it is
# part of the cache key.
BUILD_SCRIPT_VERSION=1
MODULES=(node-k8s node-containerd node-runc node-cni)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$repo/hack/tools
LOG_PREFIX=build-node
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

pins() {
  {
    echo "build-script-version=${BUILD_SCRIPT_VERSION}"
    local m f
    for m in "${MODULES[@]}"; do
      for f in go.mod go.sum tools.go; do
        echo "== ${m}/${f}"
        cat "${tools}/${m}/${f}"
      done
    done
  } | cache_key
}

use_cached_build bin "node-$(pins)" "$@"

# runc links libseccomp (cgo); pause is a static C program.
"$repo/hack/host-packages.sh" build

export GOTOOLCHAIN=local
min_go=$(for m in "${MODULES[@]}"; do awk '$1 == "go" {print $2}' "${tools}/${m}/go.mod"; done | sort -V | tail -1)
command -v go >/dev/null || die "Go is not installed; install Go ${min_go} or newer and put it on PATH"
have_go=$(go env GOVERSION)
have_go=${have_go#go}
have_go=${have_go%%[^0-9.]*}
if [[ $(printf '%s\n%s\n' "$min_go" "$have_go" | sort -V | head -1) != "$min_go" ]]; then
  die "Go ${have_go} is too old, these pins need Go ${min_go} or newer"
fi

start_build
mkdir "$tmp/cni"

jobs=${BUILD_JOBS:-2}
export GOFLAGS=
common=(-mod=readonly -trimpath -buildvcs=false -p "$jobs")
modver() { (cd "${tools}/$1" && go list -m -f '{{.Version}}' "$2"); }
moddir() { (cd "${tools}/$1" && go list -m -f '{{.Dir}}' "$2"); }
start=$SECONDS

k8s_version=$(modver node-k8s k8s.io/kubernetes)
[[ $k8s_version =~ ^v1\.([0-9]+)\. ]] || die "unexpected k8s.io/kubernetes version ${k8s_version}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X ${pkg}.gitVersion=${k8s_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${BASH_REMATCH[1]}"
  k8s_ldflags+=" -X ${pkg}.gitTreeState=clean"
done
log "building kubelet, kube-proxy ${k8s_version} with -p ${jobs} (~2 min when the control plane's Go build cache is warm)"
(cd "${tools}/node-k8s" && go build "${common[@]}" -ldflags "$k8s_ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)

containerd_version=$(modver node-containerd github.com/containerd/containerd/v2)
log "building containerd ${containerd_version}"
ctd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=${containerd_version}"
ctd_ldflags+=" -X github.com/containerd/containerd/v2/version.Revision=module-${containerd_version}"
(cd "${tools}/node-containerd" && CGO_ENABLED=0 go build "${common[@]}" \
  -tags 'no_btrfs urfave_cli_no_docs' -ldflags "$ctd_ldflags" -o "$tmp/" \
  github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr)
(cd "${tools}/node-containerd" && CGO_ENABLED=0 go build "${common[@]}" \
  -tags 'no_grpc urfave_cli_no_docs' -ldflags "$ctd_ldflags" -o "$tmp/" \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2)

runc_version=$(modver node-runc github.com/opencontainers/runc)
log "building runc ${runc_version} (cgo, seccomp)"
(cd "${tools}/node-runc" && CGO_ENABLED=1 go build "${common[@]}" \
  -tags 'seccomp urfave_cli_no_docs' -ldflags "-s -w -X main.gitCommit=module-${runc_version}" \
  -o "$tmp/runc" github.com/opencontainers/runc)

cni_version=$(modver node-cni github.com/containernetworking/plugins)
log "building CNI plugins ${cni_version}"
(cd "${tools}/node-cni" && CGO_ENABLED=0 go build "${common[@]}" \
  -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=${cni_version}" \
  -o "$tmp/cni/" \
  github.com/containernetworking/plugins/plugins/main/bridge \
  github.com/containernetworking/plugins/plugins/ipam/host-local \
  github.com/containernetworking/plugins/plugins/main/loopback \
  github.com/containernetworking/plugins/plugins/meta/portmap)

# The CRI sandbox ("pause") container: Kubernetes ships its source, not a binary.
log "building pause from k8s.io/kubernetes ${k8s_version}"
gcc -Os -Wall -Werror -static -DVERSION="${k8s_version}-bluegreen" \
  -o "$tmp/pause" "$(moddir node-k8s k8s.io/kubernetes)/build/pause/linux/pause.c"
strip "$tmp/pause"

cat >"$tmp/VERSIONS" <<EOV
kubernetes ${k8s_version}
containerd ${containerd_version}
runc ${runc_version}
cni-plugins ${cni_version}
go $(go env GOVERSION)
EOV
finish_build
log "built in $((SECONDS - start))s: $(tr '\n' ' ' <"${bin_dir}/VERSIONS")"
echo "$bin_dir"
