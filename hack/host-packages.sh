#!/usr/bin/env bash
# Install the Debian packages the real node needs when they are missing:
#   build:    libseccomp-dev (runc with seccomp), gcc (the static pause binary)
#   run time: nftables, iptables (the kubelet's canary chains, kube-proxy in iptables mode),
#             conntrack (kube-proxy flushes stale UDP/NAT entries), libseccomp2, socat (relays
#             the pods' API server connections to the API server on 127.0.0.1)
#   image:    buildah (builds the Dockerfile without a daemon), mmdebstrap (the base image's
#             Debian root filesystem, since no registry is reachable to pull one from)
#   prometheus: prometheus, pinned to Debian bookworm's 2.42.0 (the Prometheus checks' tests:
#             hack/prometheus.sh runs it as a plain process; its service is not started)
# Runs `apt-get update` once before the first install; does nothing when all are present.
# A package given as NAME=VERSION is pinned: another installed version is replaced.
#
# Usage: hack/host-packages.sh build|run|image|prometheus|all
set -euo pipefail

log() { printf 'host-packages: %s\n' "$*" >&2; }

build_pkgs=(libseccomp-dev gcc pkg-config)
run_pkgs=(nftables iptables conntrack libseccomp2 iproute2 socat)
image_pkgs=(buildah mmdebstrap)
prometheus_pkgs=(prometheus=2.42.0+ds-5+deb12u1)

case ${1:-all} in
  build) wanted=("${build_pkgs[@]}") ;;
  run) wanted=("${run_pkgs[@]}") ;;
  image) wanted=("${image_pkgs[@]}") ;;
  prometheus) wanted=("${prometheus_pkgs[@]}") ;;
  all) wanted=("${build_pkgs[@]}" "${run_pkgs[@]}" "${image_pkgs[@]}" "${prometheus_pkgs[@]}") ;;
  *) log "usage: $0 build|run|image|prometheus|all"; exit 2 ;;
esac

installed() {
  local name=${1%%=*} version=${1#*=}
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q '^install ok installed$' || return 1
  [[ $1 != *=* || $(dpkg-query -W -f='${Version}' "$name") == "$version" ]]
}

missing=()
for p in "${wanted[@]}"; do
  installed "$p" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || { log "missing ${missing[*]} and no apt-get: install them with your package manager"; exit 1; }
[[ $(id -u) == 0 ]] || { log "missing ${missing[*]}: run as root (or install them yourself)"; exit 1; }
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Packages with a service (prometheus) must not start it: the tests run their own. Debian's
# way is a policy-rc.d that refuses, present only for the install (one already there stays).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends --allow-downgrades "${missing[@]}" >/dev/null
