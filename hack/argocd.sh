#!/usr/bin/env bash
# A local Argo CD beside the local control plane (hack/cluster.sh), for the GitOps tests
# and for trying the project's Argo CD integration by hand. No UI, no argocd-server:
#   redis-server                    (Debian's package; installed when missing)
#   argocd-repo-server              renders manifests from Git
#   argocd-application-controller   syncs Applications, assesses health
# all listening on 127.0.0.1 only, with state, logs and pids in .argocd/.
#
# `up` also installs into the cluster what argocd-server or the install manifests would:
# the Argo CD CRDs, the `argocd` namespace with its base config, the `default` AppProject,
# and then the project's health check, applied exactly as docs/argocd.md tells users:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/argocd/argocd-cm-patch.yaml
#
# Usage: hack/argocd.sh up|down|status|env
#   up      build (or reuse) Argo CD, start what is not running; needs `hack/cluster.sh up`
#   down    stop everything `up` started and remove .argocd/
#   status  one line per component; exit 1 unless all are up and healthy
#   env     the KUBECONFIG and PATH (with the argocd binary) to use this Argo CD
#
# BLUEGREEN_PORT_OFFSET (default 0) shifts every port, as for hack/cluster.sh.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${repo}/.argocd
logs=${dir}/logs
pids=${dir}/pids
kubeconfig=${repo}/.cluster/kubeconfig
HOST=127.0.0.1
NAMESPACE=argocd

LOG_PREFIX=argocd
DOWN_COMMAND="hack/argocd.sh down"
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"
# A running Argo CD keeps the ports it was started with.
PORT_OFFSET=$(port_offset)
REDIS_PORT=$((26379 + PORT_OFFSET))
REPO_SERVER_PORT=$((28081 + PORT_OFFSET))
REPO_SERVER_METRICS_PORT=$((28084 + PORT_OFFSET))
# The controller's metrics server (which also serves /healthz) binds every address: Argo CD
# hard-codes 0.0.0.0 for it. Nothing here talks to it except through 127.0.0.1.
CONTROLLER_METRICS_PORT=$((28082 + PORT_OFFSET))
COMPONENTS=(redis-server argocd-repo-server argocd-application-controller)


# --- processes ---------------------------------------------------------------------------
# Each component runs in its own directory under .argocd/; a pid counts as ours only while
# that process still runs there (redis rewrites its command line, its directory stays).

is_ours() {
  local pid=$1 name=$2
  [[ -n $pid ]] && [[ $(readlink "/proc/${pid}/cwd" 2>/dev/null) == "${dir}/${name}" ]]
}

# start <name> <binary> <args...>, with the environment the caller exported
start() {
  local name=$1 bin=$2
  shift 2
  mkdir -p "${dir}/${name}"
  log "starting ${name}"
  # setsid: it survives the shell, make or pytest that started it; 9>&-: it must not hold
  # the lock of `up`.
  (cd "${dir}/${name}" && exec setsid "$bin" "$@" </dev/null >"${logs}/${name}.log" 2>&1 9>&-) &
  echo $! >"${pids}/${name}.pid"
}

# --- health ----------------------------------------------------------------------------

redis_healthy() { [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }
repo_server_healthy() { curl -sf --max-time 2 "http://${HOST}:${REPO_SERVER_METRICS_PORT}/healthz" >/dev/null; }
controller_healthy() { curl -sf --max-time 2 "http://${HOST}:${CONTROLLER_METRICS_PORT}/healthz" >/dev/null; }

healthy() {
  case $1 in
    redis-server) redis_healthy ;;
    argocd-repo-server) repo_server_healthy ;;
    argocd-application-controller) controller_healthy ;;
  esac
}

# --- prerequisites -------------------------------------------------------------------------

# Redis comes from the distribution's package, installed here where it is missing so that
# `make test` works on a fresh machine.
ensure_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
  command -v apt-get >/dev/null ||
    die "redis-server is not installed and there is no apt-get: install Redis (redis-server, redis-cli) and put it on PATH"
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "redis-server is not installed: run 'apt-get install redis-server' as root"
    sudo=(sudo)
  fi
  log "installing redis-server from the distribution's packages"
  # The package's own service must not start (or stay enabled): this script runs its own.
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends redis-server >/dev/null
  command -v redis-server >/dev/null || die "redis-server is still missing after apt-get install"
}

kubectl() { "${cp_bin_dir}/kubectl" --kubeconfig="$kubeconfig" "$@"; }

# What the install manifests and argocd-server would create: CRDs, namespace, base config
# (argocd-cm, argocd-rbac-cm, argocd-secret, ...), the default AppProject. Then the
# project's health check, with the command docs/argocd.md gives users.
install_config() {
  local manifests=${argocd_dir}/manifests
  kubectl apply --server-side --force-conflicts -f "${manifests}/crds/application-crd.yaml" \
    -f "${manifests}/crds/appproject-crd.yaml" -f "${manifests}/crds/applicationset-crd.yaml" >/dev/null
  kubectl wait --for=condition=Established --timeout=60s \
    crd/applications.argoproj.io crd/appprojects.argoproj.io >/dev/null
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  local f
  for f in "${manifests}"/config/argocd-*.yaml; do
    # create, not apply: a second `up` keeps what a user or a test changed since
    kubectl -n "$NAMESPACE" create -f "$f" >/dev/null 2>&1 || true
  done
  kubectl -n "$NAMESPACE" apply -f - >/dev/null <<'EOF'
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: default
spec:
  sourceRepos: ["*"]
  destinations:
    - {server: "*", namespace: "*"}
  clusterResourceWhitelist:
    - {group: "*", kind: "*"}
EOF
  (cd "$repo" && kubectl -n argocd patch configmap argocd-cm --type merge \
    --patch-file deploy/argocd/argocd-cm-patch.yaml >/dev/null)
}

# --- components ----------------------------------------------------------------------------

start_redis() {
  start redis-server "$(command -v redis-server)" \
    --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
    --save "" --appendonly no --dir "${dir}/redis-server" --logfile ""
}

start_repo_server() {
  # git-verify-wrapper.sh (from the same Argo CD module) must be on PATH: the repo-server
  # runs git through it, and every manifest generation fails without it. TLS is pointless
  # on loopback and would need certificates. GnuPG (commit verification) would need
  # /app/config/gpg/keys, the image's path: without ARGOCD_GPG_ENABLED=false it exits.
  PATH="${argocd_dir}:${PATH}" TMPDIR="${dir}/argocd-repo-server" ARGOCD_GPG_ENABLED=false \
    ARGOCD_BINARY_NAME=argocd-repo-server \
    start argocd-repo-server "${argocd_dir}/argocd" \
    --address "$HOST" --port "$REPO_SERVER_PORT" \
    --metrics-address "$HOST" --metrics-port "$REPO_SERVER_METRICS_PORT" \
    --disable-tls --client-ca-path "" \
    --redis "${HOST}:${REDIS_PORT}" --loglevel info --logformat text
}

start_controller() {
  # ARGOCD_FAKE_IN_CLUSTER: the in-cluster destination (https://kubernetes.default.svc)
  # is the cluster of KUBECONFIG, i.e. the local API server.
  ARGOCD_FAKE_IN_CLUSTER=true KUBECONFIG="$kubeconfig" ARGOCD_BINARY_NAME=argocd-application-controller \
    start argocd-application-controller "${argocd_dir}/argocd" \
    --namespace "$NAMESPACE" \
    --repo-server "${HOST}:${REPO_SERVER_PORT}" --repo-server-plaintext \
    --redis "${HOST}:${REDIS_PORT}" \
    --metrics-port "$CONTROLLER_METRICS_PORT" \
    --status-processors 4 --operation-processors 2 \
    --loglevel info --logformat text
}

# --- commands ----------------------------------------------------------------------------

cmd_status() { components_status; }

cmd_env() {
  local argocd_dir
  argocd_dir=$("${repo}/hack/build-argocd.sh" --print-bin-dir) || die "Argo CD is not built: run 'make argocd'"
  echo "export KUBECONFIG=${kubeconfig}"
  echo "export PATH=${argocd_dir}:\$PATH"
}

cmd_up() {
  local t0=$SECONDS
  [[ -f $kubeconfig ]] && "${repo}/hack/cluster.sh" status >/dev/null ||
    die "the local control plane is not up: run 'make cluster' (hack/cluster.sh up) first"
  cp_bin_dir=$(cat "${repo}/.cluster/bin-dir")
  argocd_dir=$("${repo}/hack/build-argocd.sh" | tail -n1)
  ensure_redis
  command -v git >/dev/null || die "git is needed by the repo-server (apt-get install git)"
  mkdir -p "$dir" "$logs" "$pids"
  exec 9>"${dir}/.lock"
  flock -w 120 9 || die "another 'hack/argocd.sh up' holds ${dir}/.lock"
  [[ -f ${dir}/ports ]] || echo "$PORT_OFFSET" >"${dir}/ports"

  install_config
  if cmd_status >/dev/null; then
    log "Argo CD already up"
    return
  fi
  if ! running redis-server; then
    check_port redis-server "$REDIS_PORT"
    start_redis
  fi
  wait_until redis-server 30 redis_healthy
  if ! running argocd-repo-server; then
    check_port argocd-repo-server "$REPO_SERVER_PORT"
    check_port argocd-repo-server "$REPO_SERVER_METRICS_PORT"
    start_repo_server
  fi
  if ! running argocd-application-controller; then
    check_port argocd-application-controller "$CONTROLLER_METRICS_PORT"
    start_controller
  fi
  wait_until argocd-repo-server 60 repo_server_healthy
  wait_until argocd-application-controller 90 controller_healthy
  log "Argo CD ready in $((SECONDS - t0))s ($(head -n1 "${argocd_dir}/VERSIONS"))"
}

cmd_down() {
  local name pid i left
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    name=${COMPONENTS[$i]}
    pid=$(pid_of "$name") || continue
    if is_ours "$pid" "$name"; then
      log "stopping ${name} (pid ${pid})"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 100; i++)); do
    left=""
    for name in "${COMPONENTS[@]}"; do
      running "$name" && left+="$(pid_of "$name") "
    done
    [[ -z $left ]] && break
    sleep 0.1
  done
  if [[ -n $left ]]; then
    log "killing what did not stop within 10s: ${left}"
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $left 2>/dev/null || true
  fi
  rm -rf "$dir"
  log "stopped; removed ${dir}"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac
