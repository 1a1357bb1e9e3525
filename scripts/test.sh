#!/usr/bin/env bash
# Runs every test the way CI does: formatting, lints, then unit, simulator and end-to-end
# tests against a real local Kubernetes API server (built and started by local-kube.sh on
# first use) and the identity API simulator. Prints how long each stage took.
#
#   scripts/test.sh                  # everything
#   scripts/test.sh --test crds      # extra arguments go to `cargo test`
set -euo pipefail
SCRIPT_NAME=test.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
command -v cargo >/dev/null 2>&1 || die "cargo is required (the Rust toolchain)"
timed "local Kubernetes API server" bash scripts/local-kube.sh start >/dev/null
timed "Lua 5.1 for the Argo CD health checks" bash scripts/install-lua.sh >/dev/null
timed "promtool for the alert rules" bash scripts/install-promtool.sh >/dev/null
timed "cargo fmt --check" cargo fmt --all -- --check
timed "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
timed "build" cargo test --locked --lib --bins --tests --no-run
results=$(mktemp)
trap 'rm -f "$results"' EXIT
if [ $# -eq 0 ]; then
	# Every suite, three at a time (reliability.rs alone, last): see run-tests.sh.
	timed "tests" bash scripts/run-tests.sh "$results"
else
	timed "tests" bash -o pipefail -c 'cargo test --locked --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$0"' "$results" "$@"
fi
log "all stages passed in $(($(date +%s) - started))s"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ {p += $4; f += $6; i += $8} END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, i}' "$results"
