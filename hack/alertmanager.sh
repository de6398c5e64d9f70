#!/usr/bin/env bash
# Debian's Alertmanager (package prometheus-alertmanager) at the version pinned in
# hack/tools/alertmanager/pins, for the notification tests: `apt-get download` fetches the
# package, its SHA-256 is checked against the pin, and `dpkg-deb -x` extracts its binary
# into the cache outside the clone (the package is not installed: no service is started):
#   ${BLUEGREEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen-operator}/bin/alertmanager-<key>/
# Debian's build reads its notification templates from the package's fixed path
# /usr/share/prometheus/alertmanager/: when that holds none, the package's two templates
# are put there (as root; that is where the package itself installs them).
#
# Usage:
#   hack/alertmanager.sh                  fetch if needed; the last line printed is the bin dir
#   hack/alertmanager.sh --print-bin-dir  print the bin dir; exit 1 if it is not there yet
set -euo pipefail

BUILD_SCRIPT_VERSION=2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins=${repo}/hack/tools/alertmanager/pins
LOG_PREFIX=alertmanager
# shellcheck source=hack/lib.sh
. "${repo}/hack/lib.sh"

templates=/usr/share/prometheus/alertmanager
place_templates() {
  [[ -f ${templates}/default.tmpl ]] && return
  [[ $(id -u) == 0 ]] || die "Alertmanager needs ${templates}/default.tmpl: run this as root once"
  mkdir -p "$templates"
  cp "$1"/*.tmpl "$templates/"
}
if [[ ${1:-} != --print-bin-dir ]] && [[ -f ${cache}/bin/alertmanager-$(pinned_build_key)/.complete ]]; then
  place_templates "${cache}/bin/alertmanager-$(pinned_build_key)/templates"
fi
use_cached_build bin "alertmanager-$(pinned_build_key)" "$@"

command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian's prometheus-alertmanager"
version=$(pin DEB_VERSION)
want_sum=$(pin DEB_SHA256)
start_build
log "fetching prometheus-alertmanager=${version}"
download() { (cd "$tmp" && apt-get -o DPkg::Lock::Timeout=300 download -qq "prometheus-alertmanager=${version}") 2>/dev/null; }
if ! download; then
  # The package lists may be older than the pin (a fresh machine has none): refresh once.
  [[ $(id -u) == 0 ]] || die "cannot fetch prometheus-alertmanager=${version}: run 'apt-get update' as root"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  download || die "cannot fetch prometheus-alertmanager=${version}"
fi
deb=$(ls "$tmp"/prometheus-alertmanager_*.deb)
sum=$(sha256sum "$deb" | cut -d' ' -f1)
[[ $sum == "$want_sum" ]] || die "the package has SHA-256 ${sum}, the pin says ${want_sum}"
dpkg-deb -x "$deb" "$tmp/root"
mv "$tmp/root/usr/bin/prometheus-alertmanager" "$tmp/alertmanager"
mv "$tmp/root/usr/share/prometheus/alertmanager" "$tmp/templates"
rm -rf "$tmp/root" "$deb"
"$tmp/alertmanager" --version 2>&1 | head -1 >"$tmp/INFO"
finish_build
place_templates "${bin_dir}/templates"
log "built: ${bin_dir}"
echo "$bin_dir"
