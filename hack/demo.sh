#!/usr/bin/env bash
# `make demo`: the README Quickstart, unattended, on the local control plane.
#
#   step 1  v1 (1.0.0, promote: true) goes live on blue
#   step 2  v2 (2.0.0, promote: false) waits on green behind the preview Service
#   step 3  v2-promoted: prod switches to green in one step
#   step 4  kubectl bluegreen rollback: prod flips back to blue at once (blue still runs)
#
# Each step prints the commands it runs with their output, waits for the operator with
# `kubectl wait`, checks the outcome and ends with a line `ok: ...`; the last line is
# `demo: all steps passed`. A failed step exits 1 naming the step, with the app's state and
# the operator log's tail, and leaves the namespace for inspection.
#
# Always the local control plane (.cluster/kubeconfig), never the cluster of your own
# KUBECONFIG. It is started when it is not up; the demo stops it again at the end only if
# it started it from nothing (DEMO_KEEP_CLUSTER=1 keeps it), as the test fixtures do. The
# operator runs in the background for the demo namespace only (its log:
# .cluster/logs/bluegreen-demo-operator.log) and is stopped on any exit, Ctrl-C included.
# An operator for all namespaces (`make run`) going at the same time acts on the demo too:
# the outcome is the same (every write is conditional), but the demo's log shows only part.
#
# Environment: DEMO_NAMESPACE (default bluegreen-demo; one left by an earlier demo is
# deleted first, any other is refused), DEMO_TIMEOUT (seconds for each wait, default 60),
# DEMO_KEEP_CLUSTER=1.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

NS=${DEMO_NAMESPACE:-bluegreen-demo}
TIMEOUT=${DEMO_TIMEOUT:-60}
KEEP_CLUSTER=${DEMO_KEEP_CLUSTER:-0}
APP=hello
EXAMPLES=examples/hello
OPERATOR_LOG=.cluster/logs/${NS}-operator.log

STEP="setup"
operator_pid=""
t_start=$EPOCHREALTIME

# --- output ----------------------------------------------------------------------------

say() { printf '%s\n' "$*"; }

header() {
  STEP=$1
  printf '\n==> %s\n' "$STEP"
}

# A command line as you would type it: words with shell-special characters in single quotes.
shown() {
  local word out=()
  for word in "$@"; do
    if [[ $word =~ ^[-A-Za-z0-9_./=:,@%+]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//\'/\'\\\'\'}'")
    fi
  done
  printf '%s' "${out[*]}"
}

# run CMD...: print `$ CMD`, then its output (stderr too), indented; fail if it fails
run() {
  local status=0
  printf '$ %s\n' "$(shown "$@")"
  "$@" 2>&1 | sed 's/^/    /' || status=$?
  ((status == 0)) || fail "\`$(shown "$@")\` failed (exit ${status})"
}

# elapsed T0: seconds since T0 (an $EPOCHREALTIME), to a tenth
elapsed() {
  local us=$((10#${EPOCHREALTIME//[.,]/} - 10#${1//[.,]/}))
  printf '%d.%ds' $((us / 1000000)) $((us / 100000 % 10))
}

# --- failure ---------------------------------------------------------------------------

# fail MESSAGE: name the step, show where the app is and what the operator said, exit 1
fail() {
  trap - ERR
  {
    printf '\ndemo: FAILED at %s: %s\n' "$STEP" "$*"
    local app columns=GENERATION:.metadata.generation,OBSERVED:.status.observedGeneration
    columns+=,ACTIVE:.status.activeColor,PREVIEW:.status.previewColor,PHASE:.status.phase
    columns+=,MESSAGE:.status.message
    if [[ $STEP == step* ]] &&
      app=$(kubectl -n "$NS" get bga "$APP" -o "custom-columns=${columns}" 2>/dev/null); then
      printf 'demo: the app now:\n'
      printf '%s\n' "$app" | sed 's/^/    /'
    fi
    if [[ -n $operator_pid ]]; then # started by this run
      if ! kill -0 "$operator_pid" 2>/dev/null; then
        printf 'demo: the operator is not running any more\n'
      fi
      printf 'demo: operator log (%s), last 30 lines:\n' "$OPERATOR_LOG"
      tail -n 30 "$OPERATOR_LOG" | sed 's/^/    /'
    fi
    if [[ $STEP == step* ]]; then
      printf 'demo: namespace %s is left for a look: kubectl bluegreen -n %s status %s\n' "$NS" "$NS" "$APP"
    fi
    printf 'demo: the control plane is left running; "make cluster-down" stops it\n'
  } >&2
  exit 1
}

# In a subshell ($(...)) only pass the status on: the command that used it fails in turn.
on_error() {
  ((BASH_SUBSHELL == 0)) || exit "$1"
  fail "command failed (exit $1, hack/demo.sh line $2): ${3}"
}
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
interrupted() {
  trap - ERR
  {
    printf '\ndemo: interrupted at %s\n' "$STEP"
    [[ $STEP == step* ]] && printf 'demo: namespace %s is left (the next run deletes it first)\n' "$NS"
    printf 'demo: the control plane is left running; "make cluster-down" stops it\n'
  } >&2
  exit 130
}
trap interrupted INT TERM

stop_operator() {
  [[ -n $operator_pid ]] || return 0
  if kill -0 "$operator_pid" 2>/dev/null; then
    kill -TERM "$operator_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      kill -0 "$operator_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$operator_pid" 2>/dev/null || true
  fi
  wait "$operator_pid" 2>/dev/null || true
  operator_pid=""
}
trap stop_operator EXIT

# --- checks ----------------------------------------------------------------------------

app_field() { kubectl -n "$NS" get bga "$APP" -o jsonpath="{$1}"; }

# await JSONPATH VALUE: until the app's field has that value, or fail after $TIMEOUT
await() {
  local path=$1 value=$2 t0=$EPOCHREALTIME out
  if ! out=$(kubectl -n "$NS" wait "bga/$APP" --for="jsonpath={$path}=$value" \
    --timeout="${TIMEOUT}s" 2>&1); then
    fail "timed out after ${TIMEOUT}s waiting for ${path#.} to be ${value} (it is \"$(app_field "$path" 2>/dev/null)\"): ${out}"
  fi
  say "    ... ${path#.} is ${value} ($(elapsed "$t0"))"
}

# await_converged PHASE ACTIVE: the operator has seen the current spec and reached this state
await_converged() {
  local generation
  generation=$(app_field .metadata.generation)
  await .status.observedGeneration "$generation"
  await .status.activeColor "$2"
  await .status.phase "$1"
}

# expect WHAT ACTUAL EXPECTED
expect() {
  [[ $2 == "$3" ]] || fail "${1}: expected \"${3}\", got \"${2}\""
}

selects() { kubectl -n "$NS" get service "$1" -o jsonpath='{.spec.selector.bluegreen\.dev/color}'; }

expect_selectors() {
  expect "the color that Service ${APP} selects" "$(selects "$APP")" "$1"
  expect "the color that Service ${APP}-preview selects" "$(selects "${APP}-preview")" "$2"
}

show_selectors() {
  run kubectl -n "$NS" get services -l "bluegreen.dev/app=${APP}" \
    -o 'custom-columns=SERVICE:.metadata.name,SELECTS:.spec.selector.bluegreen\.dev/color'
}

# ready pods of a color's Deployment, as ready/desired
ready_of() {
  kubectl -n "$NS" get deployment "${APP}-$1" -o jsonpath='{.status.readyReplicas}/{.spec.replicas}'
}

pods_of() {
  kubectl -n "$NS" get pods -l "bluegreen.dev/app=${APP},bluegreen.dev/color=$1" \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort
}

# await_switched COUNT: wait until the app has COUNT Switched Events (fail on more); their
# messages, oldest first, go to $SWITCHED
await_switched() {
  local want=$1 deadline=$((SECONDS + TIMEOUT)) count
  while :; do
    SWITCHED=$(kubectl -n "$NS" get events \
      --field-selector "involvedObject.kind=BlueGreenApp,involvedObject.name=${APP},reason=Switched" \
      --sort-by=.metadata.creationTimestamp -o jsonpath='{range .items[*]}{.message}{"\n"}{end}')
    count=$(grep -c . <<<"$SWITCHED" || true)
    ((count < want && SECONDS < deadline)) || break
    sleep 0.2
  done
  expect "the number of Switched Events" "$count" "$want"
}

# --- setup -----------------------------------------------------------------------------

header "setup: local control plane, CRD, operator for namespace ${NS}"

started_cluster=0
if ! hack/cluster.sh status >/dev/null 2>&1; then
  [[ -e .cluster/kubeconfig ]] || started_cluster=1
  say "starting the local control plane (hack/cluster.sh up)"
fi
hack/cluster.sh up >/dev/null
export KUBECONFIG=${repo}/.cluster/kubeconfig
# the control plane's kubectl; .venv/bin for kubectl-bluegreen, which kubectl runs as
# `kubectl bluegreen`
bin_dir=$(cat .cluster/bin-dir)
export PATH="${repo}/.venv/bin:${bin_dir}:${PATH}"
[[ -x .venv/bin/kubectl-bluegreen ]] || fail "no .venv/bin/kubectl-bluegreen: run 'make venv'"
say "KUBECONFIG=.cluster/kubeconfig, kubectl $(kubectl version --client | sed -n 's/^Client Version: //p')"

run kubectl apply --server-side -f crds/
run kubectl wait --for condition=established --timeout="${TIMEOUT}s" crd/bluegreenapps.bluegreen.dev

# Only a namespace an earlier demo made (its label says so) is deleted.
if made_by=$(kubectl get namespace "$NS" -o jsonpath='{.metadata.labels.bluegreen\.dev/demo}' 2>/dev/null); then
  [[ $made_by == true ]] ||
    fail "namespace ${NS} exists and is not the demo's: delete it, or set DEMO_NAMESPACE to another name"
  say "deleting namespace ${NS} left by an earlier run"
  run kubectl delete namespace "$NS" --timeout="${TIMEOUT}s"
fi
run kubectl create namespace "$NS"
kubectl label namespace "$NS" bluegreen.dev/demo=true >/dev/null
deadline=$((SECONDS + TIMEOUT))
until kubectl -n "$NS" get serviceaccount default >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "namespace ${NS} got no default ServiceAccount in ${TIMEOUT}s"
  sleep 0.2
done

port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$(dirname "$OPERATOR_LOG")"
say "starting the operator: python -m bluegreen --namespace ${NS} (log: ${OPERATOR_LOG})"
.venv/bin/python -m bluegreen --namespace "$NS" --liveness="http://127.0.0.1:${port}/healthz" \
  >"$OPERATOR_LOG" 2>&1 </dev/null &
operator_pid=$!
deadline=$((SECONDS + 30))
until curl -sf --max-time 2 "http://127.0.0.1:${port}/healthz" >/dev/null 2>&1; do
  kill -0 "$operator_pid" 2>/dev/null || fail "the operator exited at start"
  ((SECONDS < deadline)) || fail "the operator was not live after 30s"
  sleep 0.2
done
say "ok: control plane up, CRD established, namespace ${NS} created, operator ${operator_pid} live"

# --- step 1 ----------------------------------------------------------------------------

header "step 1: v1 (1.0.0, promote: true) goes live"
run kubectl -n "$NS" apply -f "${EXAMPLES}/bluegreenapp-v1.yaml"
await_converged Healthy blue
run kubectl -n "$NS" get bga "$APP"
run kubectl bluegreen -n "$NS" status "$APP"
expect "status.previewColor" "$(app_field .status.previewColor)" ""
expect "ready/desired pods of Deployment ${APP}-blue" "$(ready_of blue)" "2/2"
expect_selectors blue blue
say "ok: 1.0.0 is live on blue (phase Healthy, 2/2 pods ready); Services ${APP} and ${APP}-preview select blue"

# --- step 2 ----------------------------------------------------------------------------

header "step 2: v2 (2.0.0, promote: false) on preview"
run kubectl -n "$NS" apply -f "${EXAMPLES}/bluegreenapp-v2.yaml"
await_converged Paused blue
await .status.previewColor green
run kubectl bluegreen -n "$NS" status "$APP"
show_selectors
expect "ready/desired pods of Deployment ${APP}-green" "$(ready_of green)" "2/2"
expect "ready/desired pods of Deployment ${APP}-blue" "$(ready_of blue)" "2/2"
expect_selectors blue green
say "ok: 2.0.0 waits on green (phase Paused, 2/2 pods ready); prod Service ${APP} still selects blue, ${APP}-preview selects green"

# --- step 3 ----------------------------------------------------------------------------

header "step 3: promote (v2-promoted: promote: true)"
run kubectl -n "$NS" apply -f "${EXAMPLES}/bluegreenapp-v2-promoted.yaml"
await_converged Healthy green
run kubectl -n "$NS" get bga "$APP"
printf '$ %s   (its Events)\n' "$(shown kubectl -n "$NS" describe bga "$APP")"
kubectl -n "$NS" describe bga "$APP" | sed -n '/^Events:/,$p' | sed 's/^/    /'
show_selectors
expect "status.previewColor" "$(app_field .status.previewColor)" ""
expect_selectors green green
await_switched 1
[[ $SWITCHED == *"blue to green"* ]] || fail "the Switched Event does not say blue to green: ${SWITCHED}"
expect "ready/desired pods of Deployment ${APP}-blue (kept for the rollback window)" "$(ready_of blue)" "2/2"
blue_pods=$(pods_of blue)
say "ok: prod switched to green in one step (phase Healthy, 1 Event Switched: blue to green); blue keeps its 2 pods for scaleDownDelaySeconds"

# --- step 4 ----------------------------------------------------------------------------

header "step 4: rollback to v1 (kubectl bluegreen rollback)"
run kubectl bluegreen -n "$NS" rollback "$APP"
await_converged Healthy blue
run kubectl -n "$NS" get bga "$APP"
run kubectl bluegreen -n "$NS" status "$APP"
show_selectors
expect "the template's image" "$(app_field '.spec.template.spec.containers[0].image')" \
  "registry.example.com/hello:1.0.0"
expect "status.previewColor" "$(app_field .status.previewColor)" ""
expect_selectors blue blue
await_switched 2
[[ $(tail -n1 <<<"$SWITCHED") == *"green to blue"* ]] ||
  fail "the last Switched Event does not say green to blue: ${SWITCHED}"
expect "the pods of ${APP}-blue (no new pod for an instant rollback)" "$(pods_of blue)" "$blue_pods"
say "ok: prod is back on blue at once (phase Healthy, Event Switched: green to blue) on the same 2 blue pods, no new pod"

# --- cleanup ---------------------------------------------------------------------------

header "cleanup"
STEP="cleanup"
run kubectl delete namespace "$NS" --wait=false
stop_operator
say "stopped the operator"
if ((started_cluster)) && [[ $KEEP_CLUSTER != 1 ]]; then
  hack/cluster.sh down 2>&1 | sed 's/^/    /'
  say "stopped the local control plane the demo had started (DEMO_KEEP_CLUSTER=1 keeps it)"
else
  say "the local control plane is left running (\`make cluster-down\` stops it)"
fi
say "took $(elapsed "$t_start")"
say "demo: all steps passed"
