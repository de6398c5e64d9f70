# Shared by the hack/ scripts; sourced, never run. The sourcing script sets LOG_PREFIX.
# shellcheck shell=bash

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- binaries built into the cache --------------------------------------------------------
# A build goes to ${cache}/<kind>/<key>/, where the key hashes the pins: every clone on the
# machine shares it, and only a pin change rebuilds. It is built in a temporary directory
# beside it and renamed into place when complete, so a half-built one is never used.

cache=${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}

# The first 16 hex digits of the SHA-256 of stdin.
cache_key() { sha256sum | cut -c1-16; }

# pinned_build_key: the key of a build made from the sourcing script's ${pins} file and its
# BUILD_SCRIPT_VERSION (bumped when the way it builds changes).
pinned_build_key() { { echo "build-script-version=${BUILD_SCRIPT_VERSION}"; cat "$pins"; } | cache_key; }

# use_cached_build <kind> <key> "$@": sets bin_dir. With --print-bin-dir, prints it and
# exits 0 if it is built, 1 if not; without arguments, exits printing it if it is built.
use_cached_build() {
  bin_dir=${cache}/$1/$2
  shift 2
  if [[ ${1:-} == --print-bin-dir ]]; then
    echo "$bin_dir"
    [[ -f ${bin_dir}/.complete ]]
    exit
  elif [[ $# -gt 0 ]]; then
    die "unknown argument: $1 (usage: $0 [--print-bin-dir])"
  fi
  if [[ -f ${bin_dir}/.complete ]]; then
    log "up to date: ${bin_dir}"
    # what the build said of itself (the image's size and layers)
    [[ ! -f ${bin_dir}/INFO ]] || log "$(cat "${bin_dir}/INFO")"
    echo "$bin_dir"
    exit 0
  fi
}

# start_build: sets tmp, a new directory beside bin_dir, removed if the script fails.
start_build() {
  mkdir -p "$(dirname "$bin_dir")"
  tmp=$(mktemp -d "$(dirname "$bin_dir")/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"
}

# finish_build: marks tmp complete and renames it to bin_dir.
finish_build() {
  touch "$tmp/.complete"
  # Another build may have finished the same key meanwhile: keep whichever came first.
  if mv -T "$tmp" "$bin_dir" 2>/dev/null; then
    trap - EXIT
  else
    [[ -f ${bin_dir}/.complete ]] || die "cannot move the build into ${bin_dir}"
  fi
}

# pin <name>: the value of NAME=... in ${pins} (set by the sourcing script); dies if missing.
pin() {
  local value
  value=$(sed -n "s/^$1=//p" "$pins")
  [[ -n $value ]] || die "$1 is missing from ${pins}"
  echo "$value"
}

# download_module <module> <version> <sum>: prints the module's directory in the module
# cache after checking its sum against the pin.
download_module() {
  local module=$1 version=$2 want_sum=$3 json dir sum
  json=$(cd / && go mod download -json "${module}@${version}") || die "cannot download ${module}@${version}"
  dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")
  sum=$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$json")
  [[ $sum == "$want_sum" ]] || die "${module}@${version} has sum ${sum}, the pin says ${want_sum}"
  [[ -d $dir ]] || die "no directory for ${module}@${version}"
  echo "$dir"
}

# use_pinned_go_toolchain: a module that needs a newer Go than the control plane gets the
# pinned toolchain (GO_TOOLCHAIN in ${pins}), which the go command fetches from the module
# proxy and checks against the checksum database; static, without cgo, and the user's
# GOFLAGS (e.g. -mod=vendor) must not change what is built.
use_pinned_go_toolchain() {
  command -v go >/dev/null || die "Go is not installed; install Go (https://go.dev/dl/, or a distribution package) and put it on PATH"
  export GOTOOLCHAIN GOFLAGS= CGO_ENABLED=0
  GOTOOLCHAIN=$(pin GO_TOOLCHAIN)
}

# copy_writable <dir> <to>: a copy of a read-only directory (the module cache's) to build in.
copy_writable() {
  cp -r "$1" "$2"
  chmod -R u+w "$2"
}

# port_offset: what shifts every port of the sourcing script's components, for a second
# clone beside the first: BLUEGREEN_PORT_OFFSET (default 0), or, once `up` recorded it in
# ${dir}/ports, that one (running components keep the ports they were started with).
port_offset() {
  local offset=${BLUEGREEN_PORT_OFFSET:-0}
  [[ -f ${dir}/ports ]] && offset=$(cat "${dir}/ports")
  [[ $offset =~ ^[0-9]+$ ]] || { log "error: BLUEGREEN_PORT_OFFSET must be a number"; exit 2; }
  echo "$offset"
}

# --- background components -----------------------------------------------------------------
# The sourcing script sets pids and logs (directories), COMPONENTS, DOWN_COMMAND, and
# defines `is_ours PID NAME` (does this pid still run our component?) and `healthy NAME`.

pid_of() { [[ -f ${pids}/$1.pid ]] && cat "${pids}/$1.pid"; }

running() {
  local pid
  pid=$(pid_of "$1") || return 1
  is_ours "$pid" "$1"
}

failed() {
  local name=$1 why=$2
  log "error: ${name} ${why}; its log is ${logs}/${name}.log, last lines:"
  tail -n 25 "${logs}/${name}.log" 2>/dev/null | sed 's/^/    /' >&2 || true
  log "stop the rest with: ${DOWN_COMMAND}"
  exit 1
}

# wait_until <component> <seconds> <command...>: poll the command while the component lives
wait_until() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    # Asked after the pause, not before it: right after `&` the pid can still be the
    # forked shell, not yet the program (a check that fails at once, like a refused
    # connect, would otherwise call a starting program gone).
    sleep 0.2
    running "$name" || failed "$name" "exited during startup"
    ((SECONDS < deadline)) || failed "$name" "was not healthy after ${timeout}s"
  done
}

port_free() { ! (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null; }

check_port() {
  local name=$1 port=$2
  port_free "$port" || die "port ${HOST}:${port} for ${name} is taken by another program (ss -ltnp 'sport = :${port}')"
}

# One line per component; returns 1 unless every one runs and is healthy.
components_status() {
  local name ok=0 state
  for name in "${COMPONENTS[@]}"; do
    if ! running "$name"; then
      state="not running"
      ok=1
    elif healthy "$name"; then
      state="running, healthy (pid $(pid_of "$name"))"
    else
      state="running, NOT healthy (pid $(pid_of "$name")), log: ${logs}/${name}.log"
      ok=1
    fi
    printf '%-32s %s\n' "$name" "$state"
  done
  return $ok
}
