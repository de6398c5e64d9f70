#!/usr/bin/env bash
# Build (or reuse) the image archives the real node imports instead of pulling from a
# registry (none is reachable here):
#   pause.tar       bluegreen.local/pause:<k8s version>   the CRI sandbox image (hack/build-node.sh's pause)
#   testserver.tar  bluegreen.local/testserver:test        hack/testserver, static Go HTTP server
# Cached beside the binaries, keyed on the node binaries and the sources:
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/images/<key>/
# The IMAGES file there maps each archive to its tag.
#
# Usage: hack/node-images.sh [--print-dir]   (the last line printed is the images dir)
set -euo pipefail

BUILD_SCRIPT_VERSION=1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}

log() { printf 'node-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

node_bin=$("$repo/hack/build-node.sh" --print-bin-dir) || {
  [[ ${1:-} == --print-dir ]] || die "node binaries are not built: run hack/build-node.sh"
}
key=$({
  echo "build-script-version=${BUILD_SCRIPT_VERSION} node-bin=$(basename "$node_bin")"
  cat "$repo"/hack/testserver/go.mod "$repo"/hack/testserver/*.go "$repo/hack/image-archive.py"
} | sha256sum | cut -c1-16)
dir=${cache}/images/${key}

if [[ ${1:-} == --print-dir ]]; then
  echo "$dir"
  [[ -f $dir/.complete ]]
  exit
elif [[ $# -gt 0 ]]; then
  die "unknown argument: $1 (usage: $0 [--print-dir])"
fi
if [[ -f $dir/.complete ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "${cache}/images"
tmp=$(mktemp -d "${cache}/images/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
start=$SECONDS

k8s_version=$(awk '$1 == "kubernetes" {print $2}' "$node_bin/VERSIONS")
pause_tag=bluegreen.local/pause:${k8s_version}
testserver_tag=bluegreen.local/testserver:test

(cd "$repo/hack/testserver" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= \
  go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/testserver" .)
python3 "$repo/hack/image-archive.py" "$tmp/pause.tar" --tag "$pause_tag" \
  --file "$node_bin/pause:/pause" --entrypoint /pause --user 65535 >/dev/null
python3 "$repo/hack/image-archive.py" "$tmp/testserver.tar" --tag "$testserver_tag" \
  --file "$tmp/testserver:/testserver" --entrypoint /testserver --user 65532 >/dev/null
rm "$tmp/testserver"
printf 'pause.tar %s\ntestserver.tar %s\n' "$pause_tag" "$testserver_tag" >"$tmp/IMAGES"
touch "$tmp/.complete"

if mv -T "$tmp" "$dir" 2>/dev/null; then
  trap - EXIT
else
  [[ -f $dir/.complete ]] || die "cannot move the images into ${dir}"
fi
log "built in $((SECONDS - start))s: $(du -sh "$dir" | cut -f1)"
echo "$dir"
