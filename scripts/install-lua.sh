#!/usr/bin/env bash
# Installs a Lua 5.1 interpreter from Debian (package lua5.1) for tests/argocd_health.rs,
# which runs the Argo CD health checks under charts/identity-operator/argocd/health/.
# Argo CD evaluates them with gopher-lua, a Lua 5.1 implementation, so 5.1 it is.
#
# Idempotent. Prints the interpreter's path on stdout.
set -euo pipefail
SCRIPT_NAME=install-lua.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v lua5.1 >/dev/null 2>&1; then
	timed "install lua5.1 from Debian" apt_install lua5.1
fi
command -v lua5.1 >/dev/null 2>&1 || die "lua5.1 is not on PATH after installing it"
command -v lua5.1
