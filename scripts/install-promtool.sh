#!/usr/bin/env bash
# Installs promtool, Prometheus' rule checker, from Debian's prometheus package into
# $CACHE/bin (see scripts/lib.sh) for tests/observability.rs, which runs `promtool check rules`
# and `promtool test rules` on the chart's PrometheusRule.
#
# Only promtool is taken from the package (apt-get download, then dpkg-deb): installing the
# package itself would also install, and on a machine with systemd start, a Prometheus server.
#
# Idempotent. Prints promtool's path on stdout.
set -euo pipefail
SCRIPT_NAME=install-promtool.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROMTOOL=$CACHE_BIN/promtool

extract_promtool() {
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/install-promtool.XXXXXX")
	# shellcheck disable=SC2064 # expand $tmp now: it is local
	trap "rm -rf '$tmp'" RETURN
	local apt_log=$CACHE/logs/apt-download.log
	mkdir -p "$CACHE/logs" "$CACHE_BIN"
	if ! (cd "$tmp" && apt-get download prometheus >>"$apt_log" 2>&1); then
		log "apt-get download failed; updating package lists and retrying"
		as_root apt-get update >>"$apt_log" 2>&1 || die "apt-get update failed, see $apt_log"
		(cd "$tmp" && apt-get download prometheus >>"$apt_log" 2>&1) ||
			die "apt-get download prometheus failed, see $apt_log"
	fi
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
	install -m 0755 "$tmp/root/usr/bin/promtool" "$PROMTOOL.tmp"
	mv "$PROMTOOL.tmp" "$PROMTOOL"
}

if ! "$PROMTOOL" --version >/dev/null 2>&1; then
	timed "extract promtool from Debian's prometheus package" extract_promtool
	"$PROMTOOL" --version >/dev/null 2>&1 || die "$PROMTOOL does not run after install"
	log "$("$PROMTOOL" --version 2>&1 | head -n1)"
fi
printf '%s\n' "$PROMTOOL"
