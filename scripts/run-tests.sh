#!/usr/bin/env bash
# Runs every test binary `cargo test --lib --bins --tests` builds, several at once, and prints
# each binary's output whole as it ends, with how long it took.
#
# The end-to-end suites spend much of their time waiting (on the API server, the simulator, the
# operator's timers), and every test works in a namespace of its own, so suites do not meet. The
# one exception is reliability.rs's `outage` scenario, which stops the API server: it runs
# alone, last; the suite's other scenarios run with the rest.
#
#   scripts/run-tests.sh [RESULTS]   # RESULTS: a file that gets everything printed, too
#   TEST_JOBS=1 scripts/run-tests.sh # one at a time
set -euo pipefail
SCRIPT_NAME=run-tests.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

results=${1:-/dev/null}
jobs=${TEST_JOBS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The test executables, from cargo's own build report (already built: this only lists them).
mapfile -t executables < <(
	cargo test --locked --lib --bins --tests --no-run --message-format=json 2>/dev/null |
		grep -E '"profile":\{[^}]*"test":true\}' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4
)
[ "${#executables[@]}" -gt 0 ] || die "cargo listed no test executable"

# The suite's name: tests/NAME.rs, or the crate of a unit-test binary (NAME-HASH).
suite() {
	local base
	base=$(basename "$1")
	printf '%s\n' "${base%-*}"
}

# Longest first, so the last to start is a short one: the source's size stands for the time.
weight() {
	local file=tests/$(suite "$1").rs
	if [ -f "$file" ]; then wc -c <"$file"; else echo 0; fi
}
mapfile -t ordered < <(for e in "${executables[@]}"; do
	printf '%s %s\n' "$(weight "$e")" "$e"
done | sort -rn | cut -d' ' -f2-)

# run_one EXECUTABLE [ARGS...]: runs one suite into its log.
run_one() {
	local exe=$1 name start rc=0
	shift
	name=$(basename "$exe")${1:+.${*// /.}}
	start=$(date +%s)
	"$exe" "$@" >"$out/$name.log" 2>&1 </dev/null || rc=$?
	echo "$rc $(($(date +%s) - start)) $(suite "$exe")${1:+ $*}" >"$out/$name.done"
}

failed=()
# Prints every suite that has ended and is not printed yet.
report() {
	local done name rc secs label
	for done in "$out"/*.done; do
		[ -e "$done" ] || continue
		name=$(basename "$done" .done)
		read -r rc secs label <"$done"
		{
			printf '\n     Running %s (%ss, exit %s)\n' "$label" "$secs" "$rc"
			cat "$out/$name.log"
		} | tee -a "$results"
		[ "$rc" -eq 0 ] || failed+=("$label")
		rm -f "$done"
	done
}

running=0
start_job() {
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
		report
	fi
	run_one "$@" &
	running=$((running + 1))
}
alone=()
for exe in "${ordered[@]}"; do
	if [ "$(suite "$exe")" = reliability ]; then
		start_job "$exe" --skip outage
		alone=("$exe" outage)
	else
		start_job "$exe"
	fi
done
wait
report
if [ "${#alone[@]}" -gt 0 ]; then
	run_one "${alone[@]}"
	report
fi

if [ "${#failed[@]}" -gt 0 ]; then
	log "failed: ${failed[*]}"
	exit 101
fi
