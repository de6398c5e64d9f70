#!/usr/bin/env bash
# A local, real Kubernetes control plane without containers:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (a fake kubelet
#   that keeps 3 fake Nodes Ready and turns scheduled pods Running/Ready with pod IPs).
#
# Usage: hack/cluster.sh up [--real-node]|down|status|env
#   up      start what is not running yet (idempotent), wait for /readyz and 3 Ready nodes,
#           then print `export KUBECONFIG=...`; with --real-node also a real node beside
#           them (hack/real-node.sh: containerd, kubelet, kube-proxy; needs root)
#   down    stop every process `up` started (the real node first) and remove .cluster/
#   status  exit 0 when every component runs and the API server is ready
#   env     print the exports that point a shell at the cluster and its kubectl
#   nodes N at least N kwok nodes (kwok-node-0 ...), for more pods than the 3 hold
#           (110 each); the benchmarks use it
#
# Everything lives in <repo>/.cluster/: pki/, etcd data, logs/<component>.log,
# pids/<component>.pid, kubeconfigs. Binaries come from hack/build-control-plane.sh.
# Listens on 127.0.0.1 only; the ports are below (chosen away from the defaults).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${repo}/.cluster
pki=${dir}/pki
logs=${dir}/logs
pids=${dir}/pids
kubeconfig=${dir}/kubeconfig

HOST=127.0.0.1
LOG_PREFIX=cluster
DOWN_COMMAND="hack/cluster.sh down"
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"
# Fixed ports away from the usual ones. BLUEGREEN_PORT_OFFSET (default 0) shifts them all,
# for a second clone's cluster; `up` records it in .cluster/ports for the other commands.
PORT_OFFSET=$(port_offset)
ETCD_PORT=$((23790 + PORT_OFFSET))
ETCD_PEER_PORT=$((23800 + PORT_OFFSET))
APISERVER_PORT=$((16443 + PORT_OFFSET))
KCM_PORT=$((20257 + PORT_OFFSET))
SCHEDULER_PORT=$((20259 + PORT_OFFSET))
KWOK_PORT=$((20247 + PORT_OFFSET))
SERVICE_CIDR=10.96.0.0/16
SERVICE_APISERVER_IP=10.96.0.1
POD_CIDR=10.244.0.0/16
NODES=(kwok-node-0 kwok-node-1 kwok-node-2)
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)


# --- processes ---------------------------------------------------------------------------

# A pid counts as ours only while it still runs a binary with our .cluster dir in its
# arguments: a recycled pid of some other process is never taken for a component.
is_ours() {
  local pid=$1
  [[ -n $pid && -r /proc/${pid}/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${dir}/"
}

# pids of every process whose command line names this cluster's directory
leftovers() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    if [[ -r /proc/${p}/cmdline ]] && tr '\0' ' ' <"/proc/${p}/cmdline" 2>/dev/null |
      grep -qF -- "${dir}/"; then
      # only real components, not a shell or an editor that happens to name the path
      case $(readlink "/proc/${p}/exe" 2>/dev/null) in
        */etcd | */kube-apiserver | */kube-controller-manager | */kube-scheduler | */kwok) echo "$p" ;;
      esac
    fi
  done
}

start() {
  local name=$1
  shift
  local bin=${bin_dir}/${name}
  log "starting ${name}"
  # setsid: the component survives the shell, make or pytest that started it.
  # 9>&-: the component must not inherit (and so hold) the lock of `up`.
  setsid "$bin" "$@" </dev/null >"${logs}/${name}.log" 2>&1 9>&- &
  echo $! >"${pids}/${name}.pid"
}

# --- health ----------------------------------------------------------------------------

admin_curl() {
  curl -sf --max-time 2 --cacert "${pki}/ca.crt" --cert "${pki}/admin.crt" --key "${pki}/admin.key" \
    "https://${HOST}:${APISERVER_PORT}$1"
}
etcd_healthy() { curl -sf --max-time 2 "http://${HOST}:${ETCD_PORT}/health" | grep -q '"health":"true"'; }
apiserver_ready() { [[ $(admin_curl /readyz) == ok ]]; }
kcm_healthy() { [[ $(curl -skf --max-time 2 "https://${HOST}:${KCM_PORT}/healthz") == ok ]]; }
scheduler_healthy() { [[ $(curl -skf --max-time 2 "https://${HOST}:${SCHEDULER_PORT}/healthz") == ok ]]; }
kwok_healthy() { curl -sf --max-time 2 "http://${HOST}:${KWOK_PORT}/healthz" >/dev/null; }

healthy() {
  case $1 in
    etcd) etcd_healthy ;;
    kube-apiserver) apiserver_ready ;;
    kube-controller-manager) kcm_healthy ;;
    kube-scheduler) scheduler_healthy ;;
    kwok) kwok_healthy ;;
  esac
}

# --- certificates and kubeconfigs --------------------------------------------------------

# ECDSA P-256 keys: Kubernetes accepts them everywhere and they take milliseconds to make.
newkey() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; chmod 600 "$1"; }

# client_cert <name> <subject>
client_cert() {
  local name=$1 subject=$2
  newkey "${pki}/${name}.key"
  openssl req -new -key "${pki}/${name}.key" -subj "$subject" -out "${pki}/${name}.csr" 2>/dev/null
  openssl x509 -req -in "${pki}/${name}.csr" -CA "${pki}/ca.crt" -CAkey "${pki}/ca.key" \
    -CAcreateserial -days 3650 -sha256 -out "${pki}/${name}.crt" \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') 2>/dev/null
  rm -f "${pki}/${name}.csr"
}

# write_kubeconfig <file> <cert name>: credentials embedded, so the file stands alone
write_kubeconfig() {
  local file=$1 name=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bluegreen-local
  cluster:
    server: https://${HOST}:${APISERVER_PORT}
    certificate-authority-data: $(base64 -w0 <"${pki}/ca.crt")
users:
- name: ${name}
  user:
    client-certificate-data: $(base64 -w0 <"${pki}/${name}.crt")
    client-key-data: $(base64 -w0 <"${pki}/${name}.key")
contexts:
- name: bluegreen-local
  context:
    cluster: bluegreen-local
    user: ${name}
current-context: bluegreen-local
EOF
  chmod 600 "$file"
}

make_pki() {
  [[ -f ${pki}/.complete ]] && return
  command -v openssl >/dev/null || die "openssl is needed to make the cluster's certificates (apt-get install openssl)"
  rm -rf "$pki"
  mkdir -p "$pki"
  newkey "${pki}/ca.key"
  openssl req -x509 -new -key "${pki}/ca.key" -subj "/CN=bluegreen-local-ca" -days 3650 -sha256 \
    -out "${pki}/ca.crt" 2>/dev/null
  # serving certificate of the API server
  newkey "${pki}/apiserver.key"
  openssl req -new -key "${pki}/apiserver.key" -subj "/CN=kube-apiserver" -out "${pki}/apiserver.csr" 2>/dev/null
  openssl x509 -req -in "${pki}/apiserver.csr" -CA "${pki}/ca.crt" -CAkey "${pki}/ca.key" \
    -CAcreateserial -days 3650 -sha256 -out "${pki}/apiserver.crt" -extfile <(
      printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
      printf 'extendedKeyUsage=serverAuth\n'
      printf 'subjectAltName=IP:%s,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' \
        "$HOST" "$SERVICE_APISERVER_IP"
    ) 2>/dev/null
  rm -f "${pki}/apiserver.csr"
  # identities: admin (system:masters), and the ones the bootstrap RBAC roles expect
  client_cert admin "/O=system:masters/CN=kubernetes-admin"
  client_cert kube-controller-manager "/CN=system:kube-controller-manager"
  client_cert kube-scheduler "/CN=system:kube-scheduler"
  client_cert kwok "/O=system:masters/CN=kwok"
  # service-account token signing key pair
  newkey "${pki}/sa.key"
  openssl ec -in "${pki}/sa.key" -pubout -out "${pki}/sa.pub" 2>/dev/null
  write_kubeconfig "$kubeconfig" admin
  write_kubeconfig "${dir}/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "${dir}/kube-scheduler.kubeconfig" kube-scheduler
  write_kubeconfig "${dir}/kwok.kubeconfig" kwok
  touch "${pki}/.complete"
}

# --- components -----------------------------------------------------------------------

start_etcd() {
  start etcd \
    --name=node0 \
    --data-dir="${dir}/etcd" \
    --listen-client-urls="http://${HOST}:${ETCD_PORT}" \
    --advertise-client-urls="http://${HOST}:${ETCD_PORT}" \
    --listen-peer-urls="http://${HOST}:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls="http://${HOST}:${ETCD_PEER_PORT}" \
    --initial-cluster="node0=http://${HOST}:${ETCD_PEER_PORT}" \
    --auto-compaction-retention=1 \
    --quota-backend-bytes=$((2 * 1024 * 1024 * 1024)) \
    --unsafe-no-fsync=true \
    --log-level=warn
}

start_apiserver() {
  start kube-apiserver \
    --etcd-servers="http://${HOST}:${ETCD_PORT}" \
    --bind-address="$HOST" \
    --advertise-address="$HOST" \
    --endpoint-reconciler-type=none \
    --secure-port="$APISERVER_PORT" \
    --tls-cert-file="${pki}/apiserver.crt" \
    --tls-private-key-file="${pki}/apiserver.key" \
    --client-ca-file="${pki}/ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="${pki}/sa.pub" \
    --service-account-signing-key-file="${pki}/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --allow-privileged=true \
    --profiling=false \
    --cert-dir="${dir}/apiserver-certs"
}

start_controller_manager() {
  start kube-controller-manager \
    --kubeconfig="${dir}/kube-controller-manager.kubeconfig" \
    --bind-address="$HOST" \
    --secure-port="$KCM_PORT" \
    --cert-dir="${dir}/kcm-certs" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="${pki}/sa.key" \
    --root-ca-file="${pki}/ca.crt" \
    --cluster-signing-cert-file="${pki}/ca.crt" \
    --cluster-signing-key-file="${pki}/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --cluster-cidr="$POD_CIDR" \
    --kube-api-qps=100 \
    --kube-api-burst=200 \
    --profiling=false
}

start_scheduler() {
  start kube-scheduler \
    --kubeconfig="${dir}/kube-scheduler.kubeconfig" \
    --bind-address="$HOST" \
    --secure-port="$SCHEDULER_PORT" \
    --cert-dir="${dir}/scheduler-certs" \
    --leader-elect=false \
    --kube-api-qps=100 \
    --kube-api-burst=200 \
    --profiling=false
}

start_kwok() {
  start kwok \
    --kubeconfig="${dir}/kwok.kubeconfig" \
    --config="${bin_dir}/kwok.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$POD_CIDR" \
    --node-ip=192.0.2.1 \
    --server-address="${HOST}:${KWOK_PORT}" \
    --node-lease-duration-seconds=40
}

nodes_manifest() {
  local i name
  for i in "${!NODES[@]}"; do
    name=${NODES[$i]}
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: ${name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/agent: ""
    type: kwok
spec: {}
status:
  addresses:
  - {type: InternalIP, address: 192.0.2.$((11 + i))}
  - {type: Hostname, address: ${name}}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110", ephemeral-storage: 1Ti}
  capacity: {cpu: "32", memory: 256Gi, pods: "110", ephemeral-storage: 1Ti}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
EOF
  done
}

kubectl() { "${bin_dir}/kubectl" --kubeconfig="$kubeconfig" "$@"; }

find_bin_dir() {
  if [[ -f ${dir}/bin-dir ]] && [[ -f $(cat "${dir}/bin-dir")/.complete ]]; then
    cat "${dir}/bin-dir"
  else
    "${repo}/hack/build-control-plane.sh" --print-bin-dir
  fi
}

# --- commands ----------------------------------------------------------------------------

cmd_status() { components_status; }

cmd_env() {
  local bin_dir
  bin_dir=$(find_bin_dir) || die "the control-plane binaries are not built: run 'make binaries'"
  echo "export KUBECONFIG=${kubeconfig}"
  echo "export PATH=${bin_dir}:\$PATH"
}

cmd_up() {
  local t0=$SECONDS
  bin_dir=$("${repo}/hack/build-control-plane.sh" | tail -n1)
  [[ -x ${bin_dir}/kube-apiserver ]] || die "no control-plane binaries in ${bin_dir}"
  mkdir -p "$dir" "$logs" "$pids"
  exec 9>"${dir}/.lock"
  flock -w 120 9 || die "another 'hack/cluster.sh up' holds ${dir}/.lock"
  if [[ -f ${dir}/bin-dir && $(cat "${dir}/bin-dir") != "$bin_dir" ]] && running kube-apiserver; then
    log "warning: the running control plane uses the binaries in $(cat "${dir}/bin-dir");"
    log "         'make cluster-down && make cluster' switches to ${bin_dir}"
    bin_dir=$(cat "${dir}/bin-dir")
  fi
  echo "$bin_dir" >"${dir}/bin-dir"
  [[ -f ${dir}/ports ]] || echo "$PORT_OFFSET" >"${dir}/ports"
  make_pki

  if cmd_status >/dev/null; then
    log "control plane already up"
    echo "export KUBECONFIG=${kubeconfig}"
    return
  fi

  if ! running etcd; then
    check_port etcd "$ETCD_PORT"
    check_port etcd "$ETCD_PEER_PORT"
    start_etcd
  fi
  if ! running kube-apiserver; then
    check_port kube-apiserver "$APISERVER_PORT"
    start_apiserver
  fi
  wait_until etcd 30 etcd_healthy
  wait_until kube-apiserver 90 apiserver_ready

  # The others only talk to the API server: start them together.

  if ! running kube-controller-manager; then
    check_port kube-controller-manager "$KCM_PORT"
    start_controller_manager
  fi
  if ! running kube-scheduler; then
    check_port kube-scheduler "$SCHEDULER_PORT"
    start_scheduler
  fi
  if ! running kwok; then
    check_port kwok "$KWOK_PORT"
    start_kwok
  fi
  nodes_manifest | kubectl apply --server-side --force-conflicts -f - >/dev/null ||
    die "could not create the fake nodes"
  wait_until kube-controller-manager 60 kcm_healthy
  wait_until kube-scheduler 60 scheduler_healthy
  wait_until kwok 60 kwok_healthy
  wait_until kwok 60 kubectl wait --for=condition=Ready node "${NODES[@]}" --timeout=1s
  # pods need the namespace's default ServiceAccount, made by the controller-manager
  wait_until kube-controller-manager 60 kubectl get serviceaccount default --namespace=default

  log "control plane ready in $((SECONDS - t0))s ($(tr '\n' ' ' <"${bin_dir}/VERSIONS"| sed 's/ $//'))"
  echo "export KUBECONFIG=${kubeconfig}"
}

cmd_nodes() {
  local count=${1:-} i
  [[ $count =~ ^[0-9]+$ ]] && ((count >= 1 && count <= 200)) ||
    { echo "usage: $0 nodes COUNT (1 to 200)" >&2; exit 2; }
  cmd_status >/dev/null || die "the control plane is not up: run 'hack/cluster.sh up'"
  bin_dir=$(cat "${dir}/bin-dir")
  NODES=()
  for ((i = 0; i < count; i++)); do NODES+=("kwok-node-${i}"); done
  nodes_manifest | kubectl apply --server-side --force-conflicts -f - >/dev/null ||
    die "could not create the fake nodes"
  # --timeout is for all the nodes together, checked one after another
  wait_until kwok 90 kubectl wait --for=condition=Ready node "${NODES[@]}" --timeout=30s
  log "${count} kwok nodes Ready"
}

cmd_down() {
  local name pid i left
  if [[ -d ${dir}/node ]]; then
    "${repo}/hack/real-node.sh" down || die "could not remove the real node; see above"
  fi
  # the proxy in front of the node (hack/edge.sh) is a client of this API server too
  if [[ -d ${repo}/.edge ]]; then
    "${repo}/hack/edge.sh" down || die "could not stop the proxy; see above"
  fi
  # reverse order: the API server's clients first, etcd last
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    name=${COMPONENTS[$i]}
    pid=$(pid_of "$name") || continue
    if is_ours "$pid"; then
      log "stopping ${name} (pid ${pid})"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 100; i++)); do
    left=$(leftovers)
    [[ -z $left ]] && break
    sleep 0.1
  done
  if [[ -n $left ]]; then
    log "killing what did not stop within 10s: $(echo "$left" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $left 2>/dev/null || true
    sleep 0.5
    left=$(leftovers)
    [[ -z $left ]] || die "processes still running after SIGKILL: ${left}"
  fi
  rm -rf "$dir"
  log "stopped; removed ${dir}"
}

case ${1:-} in
  up)
    case ${2:-} in
      "") cmd_up ;;
      --real-node) cmd_up && "${repo}/hack/real-node.sh" up ;;
      *) echo "usage: $0 up [--real-node]" >&2; exit 2 ;;
    esac
    ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  nodes) cmd_nodes "${2:-}" ;;
  *)
    echo "usage: $0 up|down|status|env|nodes COUNT" >&2
    exit 2
    ;;
esac
