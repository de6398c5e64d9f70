#!/usr/bin/env bash
# A real node beside the kwok nodes of the local control plane (hack/cluster.sh): containerd
# + runc + a CNI bridge + kubelet + kube-proxy, so pods really run, probes really probe and
# a Service really routes packets.
#
# Usage: hack/real-node.sh up|down|status|import-image ARCHIVE...
#   up      start the node (the control plane must be up), wait until it is Ready and its
#           images are imported; idempotent
#   down    stop it and remove every trace it left on the host: processes, containers,
#           mounts, network namespaces, the bridge and veths, kube-proxy's and the kubelet's
#           iptables/nftables rules, cgroups, the sysctls it changed, its Node object
#   status  exit 0 when containerd, kubelet, kube-proxy, the API server's relay and the
#           cluster DNS (CoreDNS) run and the Node is Ready
#   import-image ARCHIVE...  import `docker save` archives (hack/build-image.sh's) into the
#           node's containerd, for pods with imagePullPolicy Never or IfNotPresent
#
# Needs root, Linux, and the host packages of hack/host-packages.sh (installed when missing).
#
# The node is named `real-node`, labelled `bluegreen.dev/real-node=true` and tainted
# `bluegreen.dev/real-node=true:NoSchedule`: only pods that tolerate the taint land on it
# (the kwok nodes keep everything else, whose images do not exist here).
#
# Everything lives in <repo>/.cluster/node/. Host-wide names carry BLUEGREEN_PORT_OFFSET
# (as the control plane's ports do): bridge bgn<offset>, cgroup /bluegreen-node-<offset>,
# pod range 10.250.<offset % 250>.0/24 (kwok hands out 10.244.0.0/16). kube-proxy's rules
# are host-wide: one real node per host at a time.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${repo}/.cluster
dir=${cluster}/node
logs=${dir}/logs
pids=${dir}/pids
NODE_NAME=real-node
NODE_LABEL=bluegreen.dev/real-node
# Only one real node per host: kube-proxy's chains (KUBE-SERVICES, ...) are host-wide.
HOST_LOCK=/run/bluegreen-operator-real-node

if [[ -f ${cluster}/ports ]]; then
  OFFSET=$(cat "${cluster}/ports")
else
  OFFSET=${BLUEGREEN_PORT_OFFSET:-0}
fi
[[ $OFFSET =~ ^[0-9]+$ ]] || { echo "real-node: BLUEGREEN_PORT_OFFSET must be a number" >&2; exit 2; }
BRIDGE=bgn${OFFSET}
CNI_NETWORK=bluegreen-node-${OFFSET}
CGROUP_ROOT=/bluegreen-node-${OFFSET}
POD_CIDR=10.250.$((OFFSET % 250)).0/24
POD_GATEWAY=10.250.$((OFFSET % 250)).1
KUBELET_PORT=$((10450 + OFFSET))
KUBELET_HEALTHZ_PORT=$((10448 + OFFSET))
PROXY_METRICS_PORT=$((10449 + OFFSET))
PROXY_HEALTHZ_PORT=$((10456 + OFFSET))
COMPONENTS=(containerd kubelet kube-proxy apiserver-relay coredns)
# The cluster DNS: CoreDNS on the pods' gateway, the kubelet's clusterDNS for every pod.
# Not behind a kube-dns Service, as clusters do it: with a UDP Service, this kube-proxy
# refused connections to other Services' node ports for ~0.25 s whenever a pod started or
# stopped on the node (measured under load), so the pods ask CoreDNS's address directly.
CLUSTER_DOMAIN=cluster.local
DNS_HEALTH_PORT=$((10457 + OFFSET))
DNS_READY_PORT=$((10458 + OFFSET))
# Sysctls the node's components may change (kubelet's kernel defaults, kube-proxy's
# route_localnet for localhost NodePorts, the bridge plugin's ip_forward): saved at `up`,
# put back at `down`.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.ipv4.conf.lo.route_localnet)

LOG_PREFIX=real-node
DOWN_COMMAND="hack/real-node.sh down"
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

kubectl() { "${cp_bin}/kubectl" --kubeconfig="${cluster}/kubeconfig" "$@"; }

# --- host checks -----------------------------------------------------------------------------

# Why this host cannot run the node, or nothing when it can (the tests print it when they skip).
host_unsupported() {
  [[ $(uname -s) == Linux ]] || { echo "not Linux"; return; }
  [[ $(id -u) == 0 ]] || { echo "needs root (containerd, runc, network namespaces, iptables)"; return; }
  [[ -d /sys/fs/cgroup ]] || { echo "no cgroup filesystem at /sys/fs/cgroup"; return; }
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
    { echo "the kernel has no overlay filesystem"; return; }
  [[ -e /dev/net/tun || -d /sys/class/net ]] || { echo "no network devices"; return; }
  ip link add bgn-probe$$ type bridge 2>/dev/null || { echo "cannot create a bridge (no CAP_NET_ADMIN?)"; return; }
  ip link del bgn-probe$$ 2>/dev/null || true
}

cgroup_v2() { [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; }

# Can this host lower a process's oom_score_adj (CAP_SYS_RESOURCE)? kubelet and runc do it
# for guaranteed pods and for themselves; without the capability runc init fails.
oom_adj_allowed() { sh -c 'echo -999 >/proc/self/oom_score_adj' 2>/dev/null; }

# --- processes -------------------------------------------------------------------------------

is_ours() {
  local pid=$1
  [[ -n $pid && -r /proc/${pid}/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${dir}/"
}

start() {
  local name=$1
  shift
  log "starting ${name}"
  PATH="${node_bin}:${PATH}" setsid "${node_bin}/${name}" "$@" </dev/null >"${logs}/${name}.log" 2>&1 9>&- &
  echo $! >"${pids}/${name}.pid"
}


# Processes started from this node's binaries with this node's dir in their arguments
# (the shims and the pods' processes are handled through their cgroups).
leftovers() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    if { tr '\0' ' ' <"/proc/${p}/cmdline"; } 2>/dev/null | grep -qF -- "${dir}/"; then
      case $(readlink "/proc/${p}/exe" 2>/dev/null) in
        */containerd | */kubelet | */kube-proxy | */containerd-shim-runc-v2 | */socat | */coredns) echo "$p" ;;
      esac
    fi
  done
}

# --- configuration ---------------------------------------------------------------------------

# client_cert <name> <subject>: signed by the control plane's CA, embedded in a kubeconfig
node_kubeconfig() {
  local name=$1 subject=$2 pki=${cluster}/pki server
  openssl ecparam -name prime256v1 -genkey -noout -out "${dir}/pki/${name}.key" 2>/dev/null
  openssl req -new -key "${dir}/pki/${name}.key" -subj "$subject" -out "${dir}/pki/${name}.csr" 2>/dev/null
  openssl x509 -req -in "${dir}/pki/${name}.csr" -CA "${pki}/ca.crt" -CAkey "${pki}/ca.key" \
    -CAcreateserial -days 365 -sha256 -out "${dir}/pki/${name}.crt" \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') 2>/dev/null
  server=$(awk '$1 == "server:" {print $2; exit}' "${cluster}/kubeconfig")
  cat >"${dir}/${name}.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bluegreen-local
  cluster: {server: "${server}", certificate-authority: "${pki}/ca.crt"}
users:
- name: ${name}
  user: {client-certificate: "${dir}/pki/${name}.crt", client-key: "${dir}/pki/${name}.key"}
contexts:
- name: bluegreen-local
  context: {cluster: bluegreen-local, user: "${name}"}
current-context: bluegreen-local
EOF
}

write_containerd_config() {
  local restrict_oom=false
  oom_adj_allowed || restrict_oom=true
  cat >"${dir}/containerd.toml" <<EOF
version = 3
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
[grpc]
  address = "${dir}/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${pause_image}"
[plugins.'io.containerd.cri.v1.runtime']
  # true when this host denies raising oom_score_adj (no CAP_SYS_RESOURCE)
  restrict_oom_score_adj = ${restrict_oom}
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "${node_bin}/runc"
        # runc's state beside the node's, not in /run/containerd/runc
        Root = "${dir}/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["${node_bin}/cni"]
    conf_dir = "${dir}/cni/net.d"
    max_conf_num = 1
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
}

write_cni_config() {
  mkdir -p "${dir}/cni/net.d" "${dir}/cni/ipam"
  # No masquerading and no portmap: traffic only goes between the host and the pods.
  cat >"${dir}/cni/net.d/10-${CNI_NETWORK}.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "${CNI_NETWORK}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${dir}/cni/ipam",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${POD_GATEWAY}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
}

write_kubelet_config() {
  local cgroup_v1_lines="" oom=-999
  # kubelet >= 1.35 refuses cgroup v1 unless told; on a cgroup v2 host nothing is needed.
  cgroup_v2 || cgroup_v1_lines="failCgroupV1: false"
  oom_adj_allowed || oom=0
  cat >"${dir}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: ${KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${KUBELET_HEALTHZ_PORT}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "${cluster}/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://${dir}/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: ${CGROUP_ROOT}
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
${cgroup_v1_lines}
oomScoreAdj: ${oom}
failSwapOn: false
podLogsDir: ${dir}/pod-logs
resolvConf: /etc/resolv.conf
# The pods' DNS (dnsPolicy ClusterFirst): CoreDNS.
clusterDNS: [${POD_GATEWAY}]
clusterDomain: ${CLUSTER_DOMAIN}
registerNode: true
maxPods: 30
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
nodeStatusReportFrequency: 10s
serializeImagePulls: false
syncFrequency: 10s
staticPodPath: ""
localStorageCapacityIsolation: false
EOF
}

write_kube_proxy_config() {
  local oom=-999
  oom_adj_allowed || oom=0
  cat >"${dir}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "${dir}/kube-proxy.kubeconfig"}
hostnameOverride: ${NODE_NAME}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:${PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:${PROXY_METRICS_PORT}
# iptables mode: it alone serves NodePorts on 127.0.0.1 (route_localnet), which is where
# load tests may send traffic; nftables mode does not answer NodePorts on localhost.
mode: iptables
nodePortAddresses: [127.0.0.0/8]
clusterCIDR: ${POD_CIDR}
oomScoreAdj: ${oom}
# 0 leaves the host's conntrack table settings as they are
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {minSyncPeriod: 1s, syncPeriod: 30s, localhostNodePorts: true}
EOF
}

node_manifest() {
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: ${NODE_NAME}
  labels:
    kubernetes.io/hostname: ${NODE_NAME}
    kubernetes.io/os: linux
    ${NODE_LABEL}: "true"
spec:
  podCIDR: ${POD_CIDR}
  podCIDRs: [${POD_CIDR}]
  taints:
  - {key: ${NODE_LABEL}, value: "true", effect: NoSchedule}
EOF
}

save_sysctls() {
  local s
  [[ -f ${dir}/sysctls.saved ]] && return
  for s in "${SYSCTLS[@]}"; do
    [[ -e /proc/sys/${s//.//} ]] && echo "${s}=$(cat "/proc/sys/${s//.//}")"
  done >"${dir}/sysctls.saved"
}

restore_sysctls() {
  local key value path
  [[ -f ${dir}/sysctls.saved ]] || return 0
  while IFS='=' read -r key value; do
    path=/proc/sys/${key//.//}
    [[ $(cat "$path" 2>/dev/null) == "$value" ]] && continue
    log "restoring ${key}=${value}"
    echo "$value" >"$path" 2>/dev/null || log "warning: cannot restore ${key}=${value}"
  done <"${dir}/sysctls.saved"
}

# The kubelet refuses a cgroupRoot that does not exist: make it in every hierarchy.
make_cgroup_root() {
  local h
  if cgroup_v2; then
    mkdir -p "/sys/fs/cgroup${CGROUP_ROOT}"
    # hand the controllers down, as the kubelet needs them below its root
    for h in cpu cpuset memory pids io hugetlb; do
      grep -qw "$h" /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null &&
        echo "+$h" >"/sys/fs/cgroup${CGROUP_ROOT}/cgroup.subtree_control" 2>/dev/null || true
    done
    return
  fi
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}
    [[ $(stat -fc %T "$h") == cgroupfs ]] || continue
    mkdir -p "${h}${CGROUP_ROOT}"
    # a new cpuset cgroup starts with no CPUs and no memory nodes: copy the parent's
    if [[ -f ${h}/cpuset.cpus ]]; then
      cat "${h}/cpuset.cpus" >"${h}${CGROUP_ROOT}/cpuset.cpus"
      cat "${h}/cpuset.mems" >"${h}${CGROUP_ROOT}/cpuset.mems"
    fi
  done
}

# The bridge with the pods' gateway address exists before the first pod: the kubelet
# takes that address as the node's IP (it refuses a loopback one). The CNI bridge plugin
# adopts it.
make_bridge() {
  [[ -d /sys/class/net/${BRIDGE} ]] || ip link add "$BRIDGE" type bridge
  ip addr replace "${POD_GATEWAY}/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

# --- health ----------------------------------------------------------------------------------

# Pods reach the API server as in any cluster, through the `kubernetes` Service
# (KUBERNETES_SERVICE_HOST, 10.96.0.1:443, routed by kube-proxy) to its endpoint. The API
# server here listens on 127.0.0.1 only, which no pod can reach: a relay on the pods'
# gateway address forwards to it, and the Service's EndpointSlice names the relay.
apiserver_port() { awk '$1 == "server:" {print $2; exit}' "${cluster}/kubeconfig" | sed 's/.*://'; }
relay_healthy() { (exec 3<>"/dev/tcp/${POD_GATEWAY}/$(apiserver_port)") 2>/dev/null; }
start_relay() {
  log "starting apiserver-relay"
  # -lf: its log, which also puts the node's dir in its command line (is_ours)
  setsid socat -lf "${logs}/apiserver-relay.log" \
    "TCP-LISTEN:$(apiserver_port),bind=${POD_GATEWAY},fork,reuseaddr" \
    "TCP:127.0.0.1:$(apiserver_port)" </dev/null >/dev/null 2>&1 9>&- &
  echo $! >"${pids}/apiserver-relay.pid"
}
# gateway_slice <namespace> <service> <port>...: an EndpointSlice of the selector-less
# Service whose one endpoint is the pods' gateway, i.e. a program on this host.
gateway_slice() {
  local namespace=$1 service=$2 port
  shift 2
  cat <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${service}-real-node
  namespace: ${namespace}
  labels:
    kubernetes.io/service-name: ${service}
    endpointslice.kubernetes.io/managed-by: real-node.bluegreen.dev
addressType: IPv4
endpoints:
- addresses: ["${POD_GATEWAY}"]
  conditions: {ready: true}
ports:
EOF
  for port in "$@"; do echo "- ${port}"; done
}
apiserver_slice() { gateway_slice default kubernetes "{name: https, port: $(apiserver_port), protocol: TCP}"; }

# CoreDNS answers the cluster's names from the API server (Services, their EndpointSlices,
# namespaces) as the user system:bluegreen-real-node:coredns, with the rights CoreDNS's own
# manifests grant it; nothing outside the cluster domain (no upstream is reachable here).
DNS_RBAC_NAME=bluegreen-real-node:coredns
dns_ready() { curl -sf --max-time 2 "http://127.0.0.1:${DNS_READY_PORT}/ready" >/dev/null; }
write_corefile() {
  cat >"${dir}/Corefile" <<EOF
.:53 {
    bind ${POD_GATEWAY}
    errors
    health 127.0.0.1:${DNS_HEALTH_PORT}
    ready 127.0.0.1:${DNS_READY_PORT}
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        kubeconfig ${dir}/coredns.kubeconfig bluegreen-local
        ttl 5
    }
    cache 5
}
EOF
}
dns_objects() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "${DNS_RBAC_NAME}"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "${DNS_RBAC_NAME}"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "${DNS_RBAC_NAME}"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:${DNS_RBAC_NAME}"}
EOF
}
start_coredns() {
  log "starting coredns"
  setsid "${dns_bin}/coredns" -conf "${dir}/Corefile" </dev/null >"${logs}/coredns.log" 2>&1 9>&- &
  echo $! >"${pids}/coredns.pid"
}

containerd_ready() { "${node_bin}/ctr" --address "${dir}/containerd.sock" version; }
kubelet_healthy() { [[ $(curl -sf --max-time 2 "http://127.0.0.1:${KUBELET_HEALTHZ_PORT}/healthz") == ok ]]; }
proxy_healthy() { curl -sf --max-time 2 "http://127.0.0.1:${PROXY_HEALTHZ_PORT}/healthz" >/dev/null; }
node_ready() {
  [[ $(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

healthy() {
  case $1 in
    containerd) containerd_ready ;;
    kubelet) kubelet_healthy ;;
    kube-proxy) proxy_healthy ;;
    apiserver-relay) relay_healthy ;;
    coredns) dns_ready ;;
  esac
}

find_bins() {
  cp_bin=$("${repo}/hack/build-control-plane.sh" --print-bin-dir) || die "the control-plane binaries are not built: run 'make binaries'"
  dns_bin=$("${repo}/hack/build-go-tool.sh" coredns --print-bin-dir) || die "CoreDNS is not built: run 'make node-binaries'"
  node_bin=${1:-}
  if [[ -z $node_bin ]]; then
    node_bin=$("${repo}/hack/build-node.sh" --print-bin-dir) || die "the node binaries are not built: run 'make node-binaries'"
  fi
}

# --- commands ------------------------------------------------------------------------------

cmd_status() {
  local name ok=0 state
  find_bins "$(cat "${dir}/bin-dir" 2>/dev/null || true)"
  for name in "${COMPONENTS[@]}"; do
    if ! running "$name"; then
      state="not running"
      ok=1
    elif healthy "$name" >/dev/null 2>&1; then
      state="running, healthy (pid $(pid_of "$name"))"
    else
      state="running, NOT healthy (pid $(pid_of "$name")), log: ${logs}/${name}.log"
      ok=1
    fi
    printf '%-24s %s\n' "$name" "$state"
  done
  if node_ready 2>/dev/null; then
    printf '%-24s %s\n' "node ${NODE_NAME}" Ready
  else
    printf '%-24s %s\n' "node ${NODE_NAME}" "not Ready"
    ok=1
  fi
  return $ok
}

cmd_up() {
  local t0=$SECONDS why owner images line
  why=$(host_unsupported) && [[ -n $why ]] && die "this host cannot run a real node: ${why}"
  [[ -f ${cluster}/kubeconfig && -f ${cluster}/pki/ca.key ]] || die "the control plane is not up: run 'hack/cluster.sh up' first"
  "${repo}/hack/host-packages.sh" run
  node_bin=$("${repo}/hack/build-node.sh" | tail -n1)
  "${repo}/hack/build-go-tool.sh" coredns >/dev/null
  find_bins "$node_bin"
  images=$("${repo}/hack/node-images.sh" | tail -n1)
  pause_image=$(awk '$1 == "pause.tar" {print $2}' "${images}/IMAGES")

  mkdir -p "$dir" "$logs" "$pids" "${dir}/pki"
  exec 9>"${dir}/.lock"
  flock -w 120 9 || die "another 'hack/real-node.sh up' holds ${dir}/.lock"
  if [[ -f $HOST_LOCK ]]; then
    owner=$(cat "$HOST_LOCK")
    if [[ $owner != "$dir" && -d $owner ]]; then
      die "another real node runs on this host (${owner}); stop it first: one kube-proxy per host"
    fi
  fi
  echo "$dir" >"$HOST_LOCK"
  echo "$node_bin" >"${dir}/bin-dir"

  if cmd_status >/dev/null 2>&1; then
    log "real node already up"
    return
  fi
  save_sysctls
  [[ -f ${dir}/nft-tables.before ]] || nft list tables >"${dir}/nft-tables.before" 2>/dev/null || true
  # host directories the node's programs create when missing; `down` removes those it made
  if [[ ! -f ${dir}/host-dirs.made ]]; then
    for d in /run/containerd /var/lib/cni /var/log/containers; do
      [[ -e $d ]] || echo "$d"
    done >"${dir}/host-dirs.made"
  fi
  [[ -f ${dir}/kubelet.kubeconfig ]] || node_kubeconfig kubelet "/O=system:nodes/CN=system:node:${NODE_NAME}"
  [[ -f ${dir}/kube-proxy.kubeconfig ]] || node_kubeconfig kube-proxy "/CN=system:kube-proxy"
  [[ -f ${dir}/coredns.kubeconfig ]] || node_kubeconfig coredns "/CN=system:${DNS_RBAC_NAME}"
  write_containerd_config
  write_cni_config
  write_kubelet_config
  write_kube_proxy_config
  write_corefile
  mkdir -p "${dir}/containerd" "${dir}/pod-logs" "${dir}/kubelet"
  make_cgroup_root
  make_bridge

  if ! running containerd; then
    (( ${#dir} < 90 )) || die "the path ${dir} is too long for containerd's unix socket"
    start containerd --config "${dir}/containerd.toml" --log-level warn
  fi
  wait_until containerd 30 containerd_ready
  for line in pause.tar testserver.tar; do
    "${node_bin}/ctr" --address "${dir}/containerd.sock" -n k8s.io images import \
      "${images}/${line}" >/dev/null || die "cannot import ${images}/${line}"
  done

  # The controller-manager here does not allocate node CIDRs: the Node is created with its
  # own range (and its taint and label) before the kubelet registers it.
  kubectl get node "$NODE_NAME" >/dev/null 2>&1 || node_manifest | kubectl create -f - >/dev/null

  running apiserver-relay || start_relay
  wait_until apiserver-relay 10 relay_healthy
  apiserver_slice | kubectl apply -f - >/dev/null
  dns_objects | kubectl apply -f - >/dev/null
  running coredns || start_coredns
  wait_until coredns 30 dns_ready

  if ! running kubelet; then
    start kubelet --config="${dir}/kubelet.yaml" --kubeconfig="${dir}/kubelet.kubeconfig" \
      --root-dir="${dir}/kubelet" --cert-dir="${dir}/kubelet/pki" \
      --hostname-override="$NODE_NAME" --node-ip="$POD_GATEWAY" --v=1
  fi
  if ! running kube-proxy; then
    start kube-proxy --config="${dir}/kube-proxy.yaml" --v=1
  fi
  wait_until kubelet 60 kubelet_healthy
  wait_until kube-proxy 60 proxy_healthy
  wait_until kubelet 60 node_ready
  log "real node ${NODE_NAME} Ready in $((SECONDS - t0))s (pods ${POD_CIDR} on bridge ${BRIDGE}; $(tr '\n' ' ' <"${node_bin}/VERSIONS" | sed 's/ $//'))"
}

# Stop the pods' containers: kill every task in containerd's namespace, then the shims.
# Their ids are kept: libcni caches results under /var/lib/cni named after them.
stop_containers() {
  local ctr=("${node_bin}/ctr" --address "${dir}/containerd.sock" -n k8s.io) id
  containerd_ready >/dev/null 2>&1 || return 0
  "${ctr[@]}" containers ls -q >>"${dir}/container-ids" 2>/dev/null || true
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
}

# kill_group <pid...>: TERM, wait up to 10 s, then KILL
stop_pids() {
  local i left
  [[ $# -gt 0 ]] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    left=0
    for p in "$@"; do [[ -d /proc/$p ]] && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  sleep 0.3
}

# Every process left in the node's cgroups (pods' processes, shims), then the cgroups.
remove_cgroups() {
  local d procs
  for d in /sys/fs/cgroup/*"${CGROUP_ROOT}" /sys/fs/cgroup"${CGROUP_ROOT}"; do
    [[ -d $d ]] || continue
    # cgroups vanish while this reads them: a failed read is fine
    procs=$({ find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true; } | sort -u)
    # shellcheck disable=SC2086 # one pid per word
    [[ -z $procs ]] || kill -KILL $procs 2>/dev/null || true
  done
  sleep 0.2
  for d in /sys/fs/cgroup/*"${CGROUP_ROOT}" /sys/fs/cgroup"${CGROUP_ROOT}"; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $d ]] || log "warning: cannot remove cgroup ${d}"
  done
}

unmount_all() {
  local m
  # deepest first; lazily, so a busy one still goes
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: cannot unmount ${m}"
  done < <(awk -v d="${dir}/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}

remove_network() {
  local veth
  if [[ -d /sys/class/net/${BRIDGE} ]]; then
    for veth in /sys/class/net/"${BRIDGE}"/brif/*; do
      [[ -e $veth ]] && ip link del "$(basename "$veth")" 2>/dev/null
    done
    ip link del "$BRIDGE" 2>/dev/null || log "warning: cannot delete bridge ${BRIDGE}"
  fi
  # libcni's cache of this network's results, and of the loopback plugin's for our pods
  rm -rf /var/lib/cni/results/"${CNI_NETWORK}"-* 2>/dev/null || true
  if [[ -f ${dir}/container-ids ]]; then
    while read -r id; do
      [[ -n $id ]] && rm -f /var/lib/cni/results/*-"${id}"-* 2>/dev/null
    done <"${dir}/container-ids"
  fi
  return 0
}

# Directories on the host the node's programs made (none existed before `up`), once empty
# of anything but what they left: runc's and the shims' run dirs, libcni's cache.
remove_host_dirs() {
  local d
  [[ -f ${dir}/host-dirs.made ]] || return 0
  while read -r d; do
    [[ -d $d ]] || continue
    if [[ -z $(find "$d" -mindepth 1 -not -type d -print -quit) ]]; then
      rm -rf "$d"
    else
      log "warning: ${d} holds files the node did not make; left in place"
    fi
  done <"${dir}/host-dirs.made"
}

remove_rules() {
  local table chain
  # kube-proxy knows its own rules (iptables and nftables, v4 and v6)
  if [[ -x ${node_bin}/kube-proxy ]]; then
    "${node_bin}/kube-proxy" --cleanup --v=0 >"${logs}/kube-proxy-cleanup.log" 2>&1 || true
  fi
  # the kubelet's canary chains, which tell it when the rules were flushed, and the
  # KUBE-FIREWALL chain (with its jumps from INPUT and OUTPUT)
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null || continue
    for from in INPUT OUTPUT; do
      while "$cmd" -w -t filter -D "$from" -j KUBE-FIREWALL 2>/dev/null; do :; done
    done
    for table in mangle nat filter; do
      for chain in KUBE-KUBELET-CANARY KUBE-PROXY-CANARY KUBE-FIREWALL; do
        "$cmd" -w -t "$table" -F "$chain" 2>/dev/null && "$cmd" -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  command -v nft >/dev/null || return 0
  for table in "ip kube-proxy" "ip6 kube-proxy"; do
    nft delete table $table 2>/dev/null || true
  done
  # iptables (nft backend) creates its tables on first use: delete those that did not
  # exist before `up` and hold no rule now
  while read -r _ family name; do
    grep -qx "table ${family} ${name}" "${dir}/nft-tables.before" 2>/dev/null && continue
    nft -a list table "$family" "$name" 2>/dev/null |
      grep '# handle' | grep -qvE '^[[:space:]]*(table|chain) ' && continue
    nft delete table "$family" "$name" 2>/dev/null || log "warning: cannot delete nftables table ${family} ${name}"
  done < <(nft list tables 2>/dev/null)
}

# What `down` must have removed; prints what is still there.
remaining_traces() {
  local d
  [[ -z $(leftovers) ]] || echo "processes: $(leftovers | tr '\n' ' ')"
  [[ ! -d /sys/class/net/${BRIDGE} ]] || echo "bridge ${BRIDGE}"
  ! awk -v d="${dir}/" 'index($2, d) == 1' /proc/self/mounts | grep -q . || echo "mounts under ${dir}"
  for d in /sys/fs/cgroup/*"${CGROUP_ROOT}" /sys/fs/cgroup"${CGROUP_ROOT}"; do
    [[ ! -d $d ]] || echo "cgroup ${d}"
  done
  ! iptables-save 2>/dev/null | grep -q 'KUBE-' || echo "iptables rules KUBE-*"
}

cmd_down() {
  local p left
  [[ -d $dir ]] || { log "no real node here"; return 0; }
  # best effort through every step, then check what is left
  set +e
  node_bin=$(cat "${dir}/bin-dir" 2>/dev/null || true)
  cp_bin=$("${repo}/hack/build-control-plane.sh" --print-bin-dir 2>/dev/null || true)
  # the kubelet first, so it does not restart what is being stopped
  for p in kubelet kube-proxy apiserver-relay coredns; do
    running "$p" && { log "stopping ${p}"; stop_pids "$(pid_of "$p")"; }
  done
  stop_containers
  p=$(pid_of containerd || true)
  if [[ -n $p ]] && is_ours "$p"; then
    log "stopping containerd"
    stop_pids "$p"
  fi
  # shims and anything else of ours still running
  # shellcheck disable=SC2046 # one pid per word
  stop_pids $(leftovers)
  remove_cgroups
  unmount_all
  remove_network
  remove_rules
  remove_host_dirs
  restore_sysctls
  # the kubelet's links to the pods' logs
  [[ -d /var/log/containers ]] && find /var/log/containers -maxdepth 1 -lname "${dir}/*" -delete
  if [[ -x ${cp_bin}/kubectl ]] && "${repo}/hack/cluster.sh" status >/dev/null 2>&1; then
    kubectl delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
    kubectl -n default delete endpointslice kubernetes-real-node --ignore-not-found >/dev/null 2>&1 || true
    dns_objects | kubectl delete -f - --ignore-not-found >/dev/null 2>&1 || true
  fi
  left=$(remaining_traces)
  [[ -z $left ]] || die "could not remove everything; still there: ${left}"
  [[ $(cat "$HOST_LOCK" 2>/dev/null) == "$dir" ]] && rm -f "$HOST_LOCK"
  rm -rf "$dir" || die "cannot remove ${dir} (something is still mounted?)"
  log "stopped; removed ${dir}"
}

cmd_import_image() {
  local archive
  [[ $# -gt 0 ]] || die "usage: $0 import-image ARCHIVE..."
  find_bins "$(cat "${dir}/bin-dir" 2>/dev/null || true)"
  containerd_ready >/dev/null 2>&1 || die "the real node is not up: run 'hack/real-node.sh up' first"
  for archive in "$@"; do
    "${node_bin}/ctr" --address "${dir}/containerd.sock" -n k8s.io images import "$archive" >/dev/null ||
      die "cannot import ${archive}"
    log "imported ${archive}"
  done
}

case ${1:-} in
  up) cmd_up ;;
  import-image) shift; cmd_import_image "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  check-host)
    # prints why this host cannot run a real node; exit 1 then
    why=$(host_unsupported)
    [[ -z $why ]] || { echo "$why"; exit 1; }
    ;;
  *)
    echo "usage: $0 up|down|status|check-host|import-image ARCHIVE..." >&2
    exit 2
    ;;
esac
