#!/usr/bin/env bash
# `make run`: the operator in the foreground, on the cluster KUBECONFIG reaches, or on the
# local control plane (started here) when it reaches none. Extra arguments go to the
# operator, e.g. `make run ARGS="--namespace demo"`.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=$(hack/build-control-plane.sh --print-bin-dir)
export PATH="$bin_dir:$PATH"

reachable() { kubectl get --raw /readyz --request-timeout=5s >/dev/null 2>&1; }

if [[ -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ]] && reachable; then
  echo "run: using the cluster of the current kubeconfig ($(kubectl config current-context))"
else
  echo "run: no cluster reachable; starting the local control plane"
  hack/cluster.sh up >/dev/null
  export KUBECONFIG="$PWD/.cluster/kubeconfig"
fi

echo "run: installing the CRD"
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s crd/bluegreenapps.bluegreen.dev >/dev/null
# Established is not yet served: for a moment after a CRD is first installed the API server
# answers lists of it with 429 "storage is (re)initializing", which the operator would log
# as an ERROR. Wait until the apps can be listed (the operator would retry anyway).
for _ in $(seq 60); do
  kubectl get bluegreenapps.bluegreen.dev --request-timeout=5s >/dev/null 2>&1 && break
  sleep 0.5
done

cat <<MSG
run: starting the operator (Ctrl-C stops it). In another shell:
  export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}
  kubectl apply -f examples/hello/bluegreenapp-v1.yaml
  kubectl get bga -w
MSG
# shellcheck disable=SC2086  # ARGS is a list of words on purpose
exec .venv/bin/python -m bluegreen ${ARGS:-}
