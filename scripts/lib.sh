# shellcheck shell=bash
# Shared helpers for the project's shell scripts. Source it, don't run it.
#
# Everything the scripts build or download lives in one cache directory outside
# the work tree, so a fresh clone on the same machine reuses it:
#   IDENTITY_OPERATOR_CACHE  (default: ${XDG_CACHE_HOME:-$HOME/.cache}/identity-operator)

CACHE=${IDENTITY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/identity-operator}
# shellcheck disable=SC2034 # used by the scripts that source this
CACHE_BIN=$CACHE/bin
SCRIPT_NAME=${SCRIPT_NAME:-$(basename "$0")}

# Progress goes to stderr: stdout is kept for the one result line callers parse.
log() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
	printf '[%s] error: %s\n' "$SCRIPT_NAME" "$*" >&2
	exit 1
}

# timed "stage name" command args...: runs the command and reports how long it took.
timed() {
	local name=$1 start rc=0
	shift
	start=$(date +%s)
	log "stage '$name' ..."
	"$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		log "stage '$name' FAILED after $(($(date +%s) - start))s (exit $rc)"
		return "$rc"
	fi
	log "stage '$name' took $(($(date +%s) - start))s"
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $* (run as root or install sudo)"
	fi
}

deb_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# apt_install pkg...: installs the Debian packages that are missing, updating
# the package lists first when they are empty (a fresh machine) or stale.
apt_install() {
	local missing=() p
	for p in "$@"; do
		deb_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing Debian packages: ${missing[*]}"
	local apt_log=$CACHE/logs/apt-install.log
	mkdir -p "$CACHE/logs"
	if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
		as_root apt-get update >>"$apt_log" 2>&1 || die "apt-get update failed, see $apt_log"
	fi
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${missing[@]}" >>"$apt_log" 2>&1; then
		log "apt-get install failed; updating package lists and retrying"
		as_root apt-get update >>"$apt_log" 2>&1 || die "apt-get update failed, see $apt_log"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			"${missing[@]}" >>"$apt_log" 2>&1 ||
			die "apt-get install ${missing[*]} failed, see $apt_log"
	fi
}
