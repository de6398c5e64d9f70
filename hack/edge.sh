#!/usr/bin/env bash
# A real proxy beside the local control plane (hack/cluster.sh): Traefik, a Gateway API
# implementation that also serves Ingress, with its Kubernetes providers watching the local
# API server (Ingresses, Gateways, HTTPRoutes, EndpointSlices) and sending each request to
# the pods of the real node (hack/real-node.sh) by their pod IPs. It listens on 127.0.0.1.
#
# `up` also installs into the cluster what a gateway's install would:
#   - the standard-channel CRDs of the pinned sigs.k8s.io/gateway-api (hack/tools/traefik/pins)
#   - IngressClass `traefik` (controller traefik.io/ingress-controller)
#   - GatewayClass `bluegreen-edge` (controller traefik.io/gateway-controller)
#   - Gateway `bluegreen-edge/edge`, listener `web` (HTTP, every hostname, routes from
#     every namespace) on Traefik's entry point
#
# Usage: hack/edge.sh up|crds|down|status|env
#   up      build (or reuse) Traefik, install the above, start Traefik; idempotent; needs
#           `hack/cluster.sh up`
#   crds    install the Gateway API CRDs only (hack/gateway-api-crds.sh; no Traefik needed)
#   down    stop Traefik and remove .edge/ (what `up` installed stays in the cluster, which
#           `hack/cluster.sh down` removes with the rest)
#   status  exit 0 when Traefik runs and answers its ping
#   env     EDGE_URL, EDGE_GATEWAY, EDGE_INGRESS_CLASS for the tests
#
# BLUEGREEN_PORT_OFFSET (default 0) shifts its ports, as for hack/cluster.sh: the entry
# point (the Gateway's listener port too) 18080 + offset, ping 18081 + offset.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${repo}/.edge
logs=${dir}/logs
pids=${dir}/pids
kubeconfig=${repo}/.cluster/kubeconfig
HOST=127.0.0.1
NAMESPACE=bluegreen-edge
GATEWAY=edge
GATEWAY_CLASS=bluegreen-edge
INGRESS_CLASS=traefik

LOG_PREFIX=edge
DOWN_COMMAND="hack/edge.sh down"
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"
# A running proxy keeps the ports it was started with.
PORT_OFFSET=$(port_offset)
WEB_PORT=$((18080 + PORT_OFFSET))
PING_PORT=$((18081 + PORT_OFFSET))
COMPONENTS=(traefik)

is_ours() {
  local pid=$1
  [[ -n $pid ]] && [[ $(readlink "/proc/${pid}/cwd" 2>/dev/null) == "${dir}/traefik" ]]
}

healthy() { curl -sf --max-time 2 "http://${HOST}:${PING_PORT}/ping" >/dev/null; }

kubectl() { "${cp_bin_dir}/kubectl" --kubeconfig="$kubeconfig" "$@"; }

install_crds() {
  local crds
  crds=$("${repo}/hack/gateway-api-crds.sh" | tail -n1)
  kubectl apply --server-side --force-conflicts -f "$crds" >/dev/null
  kubectl wait --for=condition=Established --timeout=60s \
    crd/gatewayclasses.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
    crd/httproutes.gateway.networking.k8s.io >/dev/null
}

install_gateway_api() {
  install_crds
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: ${INGRESS_CLASS}
spec:
  controller: traefik.io/ingress-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: ${GATEWAY_CLASS}
spec:
  controllerName: traefik.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ${GATEWAY}
  namespace: ${NAMESPACE}
spec:
  gatewayClassName: ${GATEWAY_CLASS}
  listeners:
    - name: web
      protocol: HTTP
      port: ${WEB_PORT}
      allowedRoutes:
        namespaces:
          from: All
EOF
}

start_traefik() {
  mkdir -p "${dir}/traefik"
  log "starting traefik"
  # providersThrottleDuration: how long Traefik gathers provider events before it applies a
  # new configuration (default 2s); a switch of the prod Service's endpoints applies sooner.
  # setsid: it survives the shell, make or pytest that started it; 9>&-: it must not hold
  # the lock of `up`.
  (cd "${dir}/traefik" && KUBECONFIG=$kubeconfig exec setsid "${traefik_dir}/traefik" \
    --entryPoints.web.address="${HOST}:${WEB_PORT}" \
    --entryPoints.traefik.address="${HOST}:${PING_PORT}" \
    --ping=true \
    --providers.providersThrottleDuration=200ms \
    --providers.kubernetesIngress=true \
    --providers.kubernetesGateway=true \
    --log.level=INFO \
    </dev/null >"${logs}/traefik.log" 2>&1 9>&-) &
  echo $! >"${pids}/traefik.pid"
}

cmd_status() { components_status; }

cmd_env() {
  echo "EDGE_URL=http://${HOST}:${WEB_PORT}"
  echo "EDGE_GATEWAY=${NAMESPACE}/${GATEWAY}"
  echo "EDGE_INGRESS_CLASS=${INGRESS_CLASS}"
}

cmd_up() {
  local t0=$SECONDS
  [[ -f $kubeconfig ]] && "${repo}/hack/cluster.sh" status >/dev/null ||
    die "the local control plane is not up: run 'make cluster' (hack/cluster.sh up) first"
  cp_bin_dir=$(cat "${repo}/.cluster/bin-dir")
  traefik_dir=$("${repo}/hack/build-traefik.sh" | tail -n1)
  mkdir -p "$dir" "$logs" "$pids"
  exec 9>"${dir}/.lock"
  flock -w 120 9 || die "another 'hack/edge.sh up' holds ${dir}/.lock"
  [[ -f ${dir}/ports ]] || echo "$PORT_OFFSET" >"${dir}/ports"

  install_gateway_api
  if ! running traefik; then
    check_port traefik "$WEB_PORT"
    check_port traefik "$PING_PORT"
    start_traefik
  fi
  wait_until traefik 60 healthy
  # The Gateway is served once Traefik says so (its listener is then an entry point).
  kubectl -n "$NAMESPACE" wait --for=condition=Programmed --timeout=60s "gateway/${GATEWAY}" >/dev/null ||
    failed traefik "did not program Gateway ${NAMESPACE}/${GATEWAY}"
  log "Traefik ready in $((SECONDS - t0))s on http://${HOST}:${WEB_PORT} ($(head -n1 "${traefik_dir}/VERSIONS"))"
}

cmd_crds() {
  [[ -f $kubeconfig ]] && "${repo}/hack/cluster.sh" status >/dev/null ||
    die "the local control plane is not up: run 'make cluster' (hack/cluster.sh up) first"
  cp_bin_dir=$(cat "${repo}/.cluster/bin-dir")
  install_crds
}

cmd_down() {
  local pid i
  pid=$(pid_of traefik) || true
  if [[ -n $pid ]] && is_ours "$pid"; then
    log "stopping traefik (pid ${pid})"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      running traefik || break
      sleep 0.1
    done
    if running traefik; then
      log "killing traefik: it did not stop within 10s"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
  log "stopped; removed ${dir}"
}

case ${1:-} in
  up) cmd_up ;;
  crds) cmd_crds ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up|crds|down|status|env" >&2
    exit 2
    ;;
esac
