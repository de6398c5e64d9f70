#!/usr/bin/env bash
# Install the Debian packages the real node needs when they are missing:
#   build:    libseccomp-dev (runc with seccomp), gcc (the static pause binary)
#   run time: nftables, iptables (the kubelet's canary chains, kube-proxy in iptables mode),
#             conntrack (kube-proxy flushes stale UDP/NAT entries), libseccomp2, socat (relays
#             the pods' API server connections to the API server on 127.0.0.1)
#   image:    buildah (builds the Dockerfile without a daemon), mmdebstrap (the base image's
#             Debian root filesystem, since no registry is reachable to pull one from)
#   browser:  chromium, chromium-driver (the dashboard's tests drive Debian's headless
#             Chromium through its chromedriver with Selenium; no browser is downloaded)
# Runs `apt-get update` once before the first install; does nothing when all are present.
#
# Usage: hack/host-packages.sh build|run|image|browser|all
set -euo pipefail

log() { printf 'host-packages: %s\n' "$*" >&2; }

build_pkgs=(libseccomp-dev gcc pkg-config)
run_pkgs=(nftables iptables conntrack libseccomp2 iproute2 socat)
image_pkgs=(buildah mmdebstrap)
browser_pkgs=(chromium chromium-driver)

case ${1:-all} in
  build) wanted=("${build_pkgs[@]}") ;;
  run) wanted=("${run_pkgs[@]}") ;;
  image) wanted=("${image_pkgs[@]}") ;;
  browser) wanted=("${browser_pkgs[@]}") ;;
  all) wanted=("${build_pkgs[@]}" "${run_pkgs[@]}" "${image_pkgs[@]}" "${browser_pkgs[@]}") ;;
  *) log "usage: $0 build|run|image|browser|all"; exit 2 ;;
esac

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || { log "missing ${missing[*]} and no apt-get: install them with your package manager"; exit 1; }
[[ $(id -u) == 0 ]] || { log "missing ${missing[*]}: run as root (or install them yourself)"; exit 1; }
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
