#!/usr/bin/env bash
# A real Prometheus for the Prometheus checks' tests: built from its pinned Go module
# (hack/tools/prometheus, by hack/build-go-tool.sh), run as a plain process beside the
# control plane, scraping the real node's pods found through Kubernetes service discovery
# against the local API server.
#
# Usage: hack/prometheus.sh up|down|status|url
#   up      start it (the control plane must be up; the real node for anything to scrape),
#           wait until it is ready; idempotent. Prints its URL last.
#   down    stop it and remove its data
#   status  exit 0 when it runs and is ready
#   url     print its URL (http://127.0.0.1:<19090 + BLUEGREEN_PORT_OFFSET>)
#
# What it scrapes: every container port of the pods labelled bluegreen.dev/app on the
# real node (kwok's pods have addresses nothing answers on), every 2 s (checks in tests
# have seconds, not minutes). Each series gets the labels a check's query selects by:
# namespace, pod, app, color, revision (from the pods' bluegreen.dev/* labels).
# The pods' IPs on the node's bridge are reachable from the host, where this runs.
#
# Why a build and not Debian's package: Debian's prometheus 2.42 installs in ~10 s but is
# built without the Kubernetes service discovery (`kubernetes_sd_configs` is refused: its
# binary has discovery/file, dns, http, ..., no kubernetes). The module builds with only
# that discovery (tags remove_all_sd,enable_kubernetes_sd) in ~2.7 min cold on 2 cores,
# against ~14 min with every discovery and its cloud SDKs.
#
# Everything lives in <repo>/.cluster/prometheus/ (config, data, log, pid).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${repo}/.cluster
dir=${cluster}/prometheus
logs=${dir}
pids=${dir}
HOST=127.0.0.1
LOG_PREFIX=prometheus
DOWN_COMMAND="hack/prometheus.sh down"
COMPONENTS=(prometheus)
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

if [[ -f ${cluster}/ports ]]; then
  OFFSET=$(cat "${cluster}/ports")
else
  OFFSET=${BLUEGREEN_PORT_OFFSET:-0}
fi
[[ $OFFSET =~ ^[0-9]+$ ]] || die "BLUEGREEN_PORT_OFFSET must be a number"
PORT=$((19090 + OFFSET))
URL=http://${HOST}:${PORT}
NODE_NAME=real-node
SCRAPE_INTERVAL=2s

is_ours() {
  local pid=$1
  [[ -n $pid && -r /proc/${pid}/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${dir}/"
}
ready() { curl -sf --max-time 2 "${URL}/-/ready" >/dev/null; }
healthy() { ready; }

write_config() {
  cat >"${dir}/prometheus.yml" <<EOF
global:
  scrape_interval: ${SCRAPE_INTERVAL}
  scrape_timeout: ${SCRAPE_INTERVAL}
scrape_configs:
  - job_name: bluegreen-pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: ${cluster}/kubeconfig
        selectors:
          - role: pod
            label: bluegreen.dev/app
            field: spec.nodeName=${NODE_NAME}
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_phase]
        regex: Running
        action: keep
      - source_labels: [__meta_kubernetes_pod_container_port_protocol]
        regex: TCP
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_label_bluegreen_dev_app]
        target_label: app
      - source_labels: [__meta_kubernetes_pod_label_bluegreen_dev_color]
        target_label: color
      - source_labels: [__meta_kubernetes_pod_label_bluegreen_dev_revision]
        target_label: revision
EOF
}

cmd_up() {
  [[ -f ${cluster}/kubeconfig ]] || die "the control plane is not up: run 'hack/cluster.sh up' first"
  bin=$("${repo}/hack/build-go-tool.sh" prometheus | tail -n1)
  mkdir -p "$dir"
  if running prometheus && ready; then
    log "already up"
    echo "$URL"
    return
  fi
  running prometheus && kill "$(pid_of prometheus)" 2>/dev/null || true
  check_port prometheus "$PORT"
  write_config
  rm -rf "${dir}/data"
  log "starting prometheus $(awk '{print $2}' "${bin}/VERSIONS") on ${URL}"
  setsid "${bin}/prometheus" \
    --config.file="${dir}/prometheus.yml" \
    --storage.tsdb.path="${dir}/data" \
    --storage.tsdb.retention.time=2h \
    --web.listen-address="${HOST}:${PORT}" \
    --web.enable-lifecycle \
    </dev/null >"${dir}/prometheus.log" 2>&1 9>&- &
  echo $! >"${dir}/prometheus.pid"
  wait_until prometheus 60 ready
  log "ready"
  echo "$URL"
}

cmd_down() {
  local pid
  if pid=$(pid_of prometheus) && is_ours "$pid" prometheus; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do is_ours "$pid" prometheus || break; sleep 0.1; done
    is_ours "$pid" prometheus && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) components_status ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 up|down|status|url" >&2; exit 2 ;;
esac
