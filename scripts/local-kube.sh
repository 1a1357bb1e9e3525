#!/usr/bin/env bash
# A real, local Kubernetes API server for the tests and the quick start.
#
#   scripts/local-kube.sh start       build once (cached), start etcd + kube-apiserver +
#                                     kube-controller-manager if not running; prints the
#                                     admin kubeconfig path as its last line (on stdout)
#   scripts/local-kube.sh stop        stop what `start` started (by PID file)
#   scripts/local-kube.sh stop-apiserver  stop only kube-apiserver (an outage, for the
#                                     reliability tests); `start` brings it back
#   scripts/local-kube.sh status      say what runs
#   scripts/local-kube.sh kubeconfig  print the admin kubeconfig path
#   scripts/local-kube.sh reset       stop and wipe the cluster state (keeps the binaries)
#
# Only Debian's packages and the npm registry are reachable here, so the API server is
# built from Debian bookworm's `kubernetes` source package (upstream v1.20.2 with vendor/),
# etcd comes from Debian's etcd-server package, kubectl and helm from npm
# (scripts/install-tools.sh).
#
# Environment:
#   IDENTITY_OPERATOR_CACHE   cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/identity-operator)
#                             bin/ holds the binaries, cluster/ the state, logs, kubeconfig
#   LOCAL_KUBE_PORT           kube-apiserver secure port on 127.0.0.1 (default 16443)
#   LOCAL_KUBE_ETCD_PORT      etcd client port (default 12379; peer port is this + 1)
#   LOCAL_KUBE_TIMEOUT        seconds to wait for each component to become ready (default 90)
set -euo pipefail
SCRIPT_NAME=local-kube.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

KUBE_VERSION=v1.20.2 # the upstream release inside Debian's 1.20.5+really1.20.2
KUBE_GIT_COMMIT_ID=faecb196815e248d3ecfb03c680a4507229c2a56
GO_BIN=/usr/lib/go-1.19/bin

API_PORT=${LOCAL_KUBE_PORT:-16443}
ETCD_PORT=${LOCAL_KUBE_ETCD_PORT:-12379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
READY_TIMEOUT=${LOCAL_KUBE_TIMEOUT:-90}

SRC_DIR=$CACHE/src
BUILD_LOGS=$CACHE/logs
CLUSTER=$CACHE/cluster
PKI=$CLUSTER/pki
LOGS=$CLUSTER/logs
RUN=$CLUSTER/run
KUBECONFIG_FILE=$CLUSTER/admin.kubeconfig
LOCK_FILE=$CACHE/local-kube.lock
COMPONENTS=(etcd kube-apiserver kube-controller-manager)

usage() {
	sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# Runs a command with its output appended to a log; on failure shows the log's tail
# and names the step and the log.
run_logged() {
	local what=$1 logfile=$2
	shift 2
	mkdir -p "$(dirname "$logfile")"
	if ! "$@" >>"$logfile" 2>&1; then
		tail -n 40 "$logfile" | sed 's/^/    /' >&2
		die "$what failed; full log: $logfile"
	fi
}

# --- building the binaries ----------------------------------------------------------

in_dir() { (cd "$1" && shift && "$@"); }

# deb-src lines for a private apt configuration, derived from the system's deb entries.
derive_deb_src() {
	local f=/etc/apt/sources.list.d/debian.sources
	if [ -r "$f" ]; then
		awk '
		function flush(   n, m, i, j, U, S, opt) {
			if (enabled != "no" && types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "" && suites != "") {
				opt = (signed != "") ? "[signed-by=" signed "] " : ""
				n = split(uris, U, /[ \t]+/); m = split(suites, S, /[ \t]+/)
				for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
					if (U[i] != "" && S[j] != "") print "deb-src " opt U[i] " " S[j] " " comps
			}
			types = uris = suites = comps = signed = enabled = ""
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		/^[ \t]/ { next }   # continuation line (an inline key): not a path
		{
			key = tolower($1); sub(/:$/, "", key)
			val = $0; sub(/^[^:]*:[ \t]*/, "", val)
			if (key == "types") types = val
			else if (key == "uris") uris = val
			else if (key == "suites") suites = val
			else if (key == "components") comps = val
			else if (key == "signed-by" && val ~ /^\//) signed = val
			else if (key == "enabled") enabled = tolower(val)
		}
		END { flush() }' "$f"
	fi
	if [ -r /etc/apt/sources.list ]; then
		sed -n 's/^[[:space:]]*deb[[:space:]]\{1,\}/deb-src /p' /etc/apt/sources.list
	fi
}

fetch_kubernetes_source() {
	local apt_dir=$CACHE/apt
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" "$SRC_DIR"
	derive_deb_src >"$apt_dir/sources.list"
	[ -s "$apt_dir/sources.list" ] ||
		die "found no deb entries in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
	log "private apt sources ($apt_dir/sources.list):"
	sed 's/^/    /' "$apt_dir/sources.list" >&2
	# The system's apt configuration and lists stay untouched: sources, lists and
	# caches all point into $CACHE/apt.
	local apt_opts=(
		-o "Dir::Etc::SourceList=$apt_dir/sources.list"
		-o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o "APT::Sandbox::User=root"
	)
	run_logged "apt-get update (private deb-src config)" "$BUILD_LOGS/apt-source.log" \
		apt-get "${apt_opts[@]}" update
	local dl=$SRC_DIR/download
	rm -rf "$dl" && mkdir -p "$dl"
	run_logged "apt-get source kubernetes" "$BUILD_LOGS/apt-source.log" \
		in_dir "$dl" apt-get "${apt_opts[@]}" source --download-only kubernetes
	local dsc
	dsc=$(find "$dl" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n1)
	[ -n "$dsc" ] || die "apt-get source kubernetes downloaded no .dsc; see $BUILD_LOGS/apt-source.log"
	case $dsc in
	*really1.20.2* | *_1.20.2*) ;;
	*) warn "expected Debian's kubernetes 1.20.5+really1.20.2, got $(basename "$dsc"); trying anyway" ;;
	esac
	mv "$dl"/* "$SRC_DIR"/ && rmdir "$dl"
}

unpack_kubernetes_source() {
	local dsc tmp
	dsc=$(find "$SRC_DIR" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n1)
	tmp=$SRC_DIR/kubernetes.unpacking
	rm -rf "$tmp"
	# dpkg-source applies Debian's patches. --no-check: no keyring needed, apt checked the hashes.
	run_logged "dpkg-source -x $(basename "$dsc")" "$BUILD_LOGS/unpack.log" \
		dpkg-source --no-check -x "$dsc" "$tmp"
	[ -d "$tmp/vendor/k8s.io" ] || die "unpacked source $tmp has no vendor/ tree"
	# Upstream moved to reflect2 1.0.2 for Go >= 1.18 (1.0.1 crashes at run time there);
	# Debian's golang-github-modern-go-reflect2-dev is exactly 1.0.2.
	local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
	[ -f "$r2/reflect2.go" ] || die "$r2 missing (package golang-github-modern-go-reflect2-dev)"
	rm -rf "$tmp/vendor/github.com/modern-go/reflect2"
	mkdir -p "$tmp/vendor/github.com/modern-go/reflect2"
	find "$r2" -maxdepth 1 -type f -name '*.go' ! -name '*_test.go' -exec cp {} "$tmp/vendor/github.com/modern-go/reflect2/" \;
	find "$r2" -maxdepth 1 -type f \( -name '*.s' -o -name LICENSE \) -exec cp {} "$tmp/vendor/github.com/modern-go/reflect2/" \;
	rm -rf "$SRC_DIR/kubernetes"
	mv "$tmp" "$SRC_DIR/kubernetes"
}

build_kubernetes() {
	local src=$SRC_DIR/kubernetes
	# (hack/lib/golang.sh points GOCACHE at _output/local/go/cache for the main build;
	# ours serves the tools Go runs before that.)
	mkdir -p "$CACHE/go-build"
	run_logged "make WHAT=\"cmd/kube-apiserver cmd/kube-controller-manager\" (in $src)" "$BUILD_LOGS/build.log" \
		env -u GOFLAGS -u GOOS -u GOARCH -u GOPATH -u GOROOT \
		PATH="$GO_BIN:$PATH" GOPROXY=off GOCACHE="$CACHE/go-build" CGO_ENABLED=0 \
		KUBE_GIT_VERSION="$KUBE_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
		KUBE_GIT_COMMIT="$KUBE_GIT_COMMIT_ID" KUBE_GIT_TREE_STATE=clean \
		make -C "$src" WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
	local out=$src/_output/local/bin/linux/amd64 b
	[ -d "$out" ] || out=$src/_output/bin
	mkdir -p "$CACHE_BIN"
	for b in kube-apiserver kube-controller-manager; do
		[ -x "$out/$b" ] || die "build finished but $out/$b is missing; see $BUILD_LOGS/build.log"
		cp "$out/$b" "$CACHE_BIN/.$b.tmp" && mv "$CACHE_BIN/.$b.tmp" "$CACHE_BIN/$b"
	done
}

install_etcd() {
	# Extracted, not installed: installing etcd-server would start a system service.
	local dir=$CACHE/etcd-server
	rm -rf "$dir" && mkdir -p "$dir"
	run_logged "apt-get download etcd-server" "$BUILD_LOGS/etcd.log" \
		in_dir "$dir" apt-get -o APT::Sandbox::User=root download etcd-server
	local deb
	deb=$(find "$dir" -maxdepth 1 -name 'etcd-server_*.deb' | head -n1)
	[ -n "$deb" ] || die "apt-get download etcd-server gave no .deb; see $BUILD_LOGS/etcd.log"
	run_logged "dpkg-deb -x $(basename "$deb")" "$BUILD_LOGS/etcd.log" dpkg-deb -x "$deb" "$dir/root"
	mkdir -p "$CACHE_BIN"
	cp "$dir/root/usr/bin/etcd" "$CACHE_BIN/.etcd.tmp" && mv "$CACHE_BIN/.etcd.tmp" "$CACHE_BIN/etcd"
}

ensure_binaries() {
	local t0
	t0=$(date +%s)
	mkdir -p "$CACHE_BIN" "$BUILD_LOGS"
	if [ ! -x "$CACHE_BIN/kube-apiserver" ] || [ ! -x "$CACHE_BIN/kube-controller-manager" ]; then
		log "building kube-apiserver and kube-controller-manager $KUBE_VERSION from Debian's source package (once; ~6 min on 2 cores)"
		timed "install build dependencies (apt)" \
			apt_install golang-1.19-go rsync make dpkg-dev xz-utils golang-github-modern-go-reflect2-dev
		if ! compgen -G "$SRC_DIR/kubernetes_*.dsc" >/dev/null; then
			timed "apt-get source kubernetes" fetch_kubernetes_source
		fi
		if [ ! -d "$SRC_DIR/kubernetes" ]; then
			timed "dpkg-source -x and swap in reflect2 1.0.2" unpack_kubernetes_source
		fi
		timed "make kube-apiserver kube-controller-manager (log: $BUILD_LOGS/build.log)" build_kubernetes
	fi
	if [ ! -x "$CACHE_BIN/etcd" ]; then
		apt_install dpkg-dev
		if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
			as_root apt-get update >>"$BUILD_LOGS/etcd.log" 2>&1 || die "apt-get update failed, see $BUILD_LOGS/etcd.log"
		fi
		timed "etcd from Debian's etcd-server (dpkg-deb -x)" install_etcd
	fi
	command -v openssl >/dev/null 2>&1 || apt_install openssl
	command -v flock >/dev/null 2>&1 || apt_install util-linux
	if [ ! -x "$CACHE_BIN/kubectl" ] || [ ! -x "$CACHE_BIN/helm" ]; then
		timed "kubectl and helm (scripts/install-tools.sh)" bash "$SCRIPT_DIR/install-tools.sh" >/dev/null
	fi
	local dt=$(($(date +%s) - t0))
	[ "$dt" -lt 2 ] || log "binaries ready in $CACHE_BIN after ${dt}s"
}

# --- certificates and kubeconfig ----------------------------------------------------

gen_pki() {
	[ -f "$PKI/.complete" ] && return 0
	local tmp=$PKI.tmp
	rm -rf "$tmp" && mkdir -p "$tmp"
	(
		cd "$tmp"
		umask 077
		cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost, IP:10.0.0.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
		openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config openssl.cnf \
			-extensions ca -subj "/CN=identity-operator-local-ca" -keyout ca.key -out ca.crt
		sign() { # name subject extensions
			openssl req -new -nodes -newkey rsa:2048 -config openssl.cnf -subj "$2" \
				-keyout "$1.key" -out "$1.csr"
			openssl x509 -req -sha256 -days 3650 -in "$1.csr" -CA ca.crt -CAkey ca.key \
				-set_serial "0x$(openssl rand -hex 16)" -extfile openssl.cnf -extensions "$3" -out "$1.crt"
			rm -f "$1.csr"
		}
		sign apiserver "/CN=kube-apiserver" server
		sign admin "/O=system:masters/CN=admin" client
		openssl genrsa -out sa.key 2048
		openssl rsa -in sa.key -pubout -out sa.pub
		printf '%s,admin,admin,system:masters\n' "$(openssl rand -hex 32)" >tokens.csv
		touch .complete
	) >"$LOGS/pki.log" 2>&1 || die "generating certificates failed; log: $LOGS/pki.log"
	rm -rf "$PKI" && mv "$tmp" "$PKI"
}

write_kubeconfig() {
	local b64="base64 -w0"
	umask 077
	cat >"$KUBECONFIG_FILE.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: identity-operator-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $($b64 <"$PKI/admin.crt")
    client-key-data: $($b64 <"$PKI/admin.key")
contexts:
- name: identity-operator-local
  context:
    cluster: identity-operator-local
    user: admin
    namespace: default
current-context: identity-operator-local
EOF
	mv "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"
}

# --- processes ----------------------------------------------------------------------

pid_of() { # prints the PID of a component we started and that still runs
	local pidfile=$RUN/$1.pid pid
	[ -f "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	# Guard against a recycled PID: the process must be our binary.
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "^$CACHE_BIN/$1 " || return 1
	echo "$pid"
}

port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

launch() { # name args...: starts a component detached, in its own session
	local name=$1 logfile=$LOGS/$1.log
	shift
	[ -f "$logfile" ] && mv "$logfile" "$logfile.prev"
	# No stdin, no inherited lock (fd 9), output to the log: callers that capture our
	# output (tests) must not wait on the daemons.
	# The component writes its own PID just before it becomes the binary: `$!` may name a
	# process that is not (yet) the binary, as when setsid forks because the caller runs
	# with job control (each job leads its own process group), or has not exec'd yet.
	rm -f "$RUN/$name.pid"
	setsid sh -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$CACHE_BIN/$name" "$@" \
		</dev/null >"$logfile" 2>&1 9>&- &
	local _ pid=
	for _ in $(seq 1 100); do # until it runs as our binary: up to 10 s on a loaded machine
		pid=$(pid_of "$name") && break
		sleep 0.1
	done
	log "started $name (pid ${pid:-gone}, log $logfile)"
}

fail_component() { # name message
	local logfile=$LOGS/$1.log
	[ -f "$logfile" ] && tail -n 25 "$logfile" | sed 's/^/    /' >&2
	die "$1: $2; log: $logfile"
}

# await name command...: polls until the command succeeds (0); 1 when the component's
# process is gone, 2 after LOCAL_KUBE_TIMEOUT seconds.
await() {
	local name=$1 deadline=$(($(date +%s) + READY_TIMEOUT))
	shift
	until "$@" >/dev/null 2>&1; do
		pid_of "$name" >/dev/null || return 1
		[ "$(date +%s)" -lt "$deadline" ] || return 2
		sleep 0.5
	done
}

# bring_up name starter description check: starts the component unless it runs, then
# waits until `check` holds. A leftover process that exits meanwhile (say one still
# shutting down after a SIGTERM) is replaced once; one we launched that exits is an error.
bring_up() {
	local name=$1 starter=$2 what=$3 check=$4 launched rc
	for _ in 1 2; do
		launched=0
		if ! pid_of "$name" >/dev/null; then
			timed "start $name" "$starter"
			launched=1
		fi
		rc=0
		await "$name" "$check" || rc=$?
		case $rc in
		0) return 0 ;;
		2) fail_component "$name" "not $what after ${READY_TIMEOUT}s" ;;
		esac
		[ "$launched" -eq 0 ] || fail_component "$name" "exited while waiting until $what"
		log "$name (pid from an earlier start) exited while not yet $what; starting it again"
	done
	fail_component "$name" "exited while waiting until $what"
}

etcd_healthy() {
	local reply
	reply=$(
		exec 3<>"/dev/tcp/127.0.0.1/$ETCD_PORT" || exit 1
		printf 'GET /health HTTP/1.0\r\n\r\n' >&3
		while IFS= read -r -t 3 line <&3 || [ -n "$line" ]; do printf '%s\n' "$line"; done
	) 2>/dev/null || return 1
	[[ $reply == *'"health":"true"'* ]]
}

kubectl() { "$CACHE_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=5s "$@"; }
apiserver_ready() { [ "$(kubectl get --raw /readyz 2>/dev/null)" = ok ]; }
defaults_exist() { kubectl get namespace default && kubectl -n default get serviceaccount default; }

start_etcd() {
	if pid_of etcd >/dev/null; then return 0; fi
	port_busy "$ETCD_PORT" && die "port $ETCD_PORT (etcd) is taken by another process; set LOCAL_KUBE_ETCD_PORT"
	port_busy "$ETCD_PEER_PORT" && die "port $ETCD_PEER_PORT (etcd peer) is taken by another process; set LOCAL_KUBE_ETCD_PORT"
	launch etcd --name local --data-dir "$CLUSTER/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new
}

start_apiserver() {
	if pid_of kube-apiserver >/dev/null; then return 0; fi
	port_busy "$API_PORT" && die "port $API_PORT (kube-apiserver) is taken by another process; set LOCAL_KUBE_PORT"
	launch kube-apiserver \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" --insecure-port 0 \
		--cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
		--authorization-mode RBAC --allow-privileged=true \
		--service-cluster-ip-range 10.0.0.0/24 \
		--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--api-audiences https://kubernetes.default.svc.cluster.local \
		--endpoint-reconciler-type none
}

start_controller_manager() {
	if pid_of kube-controller-manager >/dev/null; then return 0; fi
	launch kube-controller-manager \
		--kubeconfig "$KUBECONFIG_FILE" --port 0 --secure-port 0 --leader-elect=false \
		--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-ttl'
}

all_healthy() {
	local c
	for c in "${COMPONENTS[@]}"; do pid_of "$c" >/dev/null || return 1; done
	apiserver_ready
}

cmd_start() {
	ensure_binaries
	mkdir -p "$PKI" "$LOGS" "$RUN"
	if all_healthy; then
		log "already running (kube-apiserver https://127.0.0.1:$(api_port_in_use))"
		echo "$KUBECONFIG_FILE"
		return 0
	fi
	local t0
	t0=$(date +%s)
	gen_pki
	# A running kube-apiserver keeps the port its kubeconfig names.
	if [ ! -f "$KUBECONFIG_FILE" ] || ! pid_of kube-apiserver >/dev/null; then write_kubeconfig; fi
	bring_up etcd start_etcd "healthy" etcd_healthy
	bring_up kube-apiserver start_apiserver "ready (/readyz)" apiserver_ready
	bring_up kube-controller-manager start_controller_manager \
		"the default namespace and ServiceAccount exist" defaults_exist
	log "cluster up after $(($(date +%s) - t0))s: kube-apiserver $KUBE_VERSION on https://127.0.0.1:$API_PORT"
	log "use it with: export KUBECONFIG=$KUBECONFIG_FILE PATH=$CACHE_BIN:\$PATH"
	echo "$KUBECONFIG_FILE"
}

api_port_in_use() {
	sed -n 's#^ *server: https://127.0.0.1:\([0-9]*\)$#\1#p' "$KUBECONFIG_FILE" 2>/dev/null || echo "$API_PORT"
}

stop_component() {
	local name=$1 pid
	if ! pid=$(pid_of "$name"); then
		rm -f "$RUN/$name.pid"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		[ -d "/proc/$pid" ] || break
		sleep 0.1
	done
	if [ -d "/proc/$pid" ]; then
		warn "$name (pid $pid) ignored SIGTERM for 10s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$RUN/$name.pid"
	log "stopped $name (pid $pid)"
}

cmd_stop() {
	stop_component kube-controller-manager
	stop_component kube-apiserver
	stop_component etcd
}

cmd_reset() {
	cmd_stop
	rm -rf "$CLUSTER"
	log "removed cluster state $CLUSTER (binaries in $CACHE_BIN kept)"
}

cmd_status() {
	local c pid running=0
	for c in "${COMPONENTS[@]}"; do
		if pid=$(pid_of "$c"); then
			running=$((running + 1))
			printf '%-24s running (pid %s, rss %s MB)\n' "$c" "$pid" \
				"$(($(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status") / 1024))"
		else
			printf '%-24s stopped\n' "$c"
		fi
	done
	if [ "$running" -gt 0 ] && [ -x "$CACHE_BIN/kubectl" ]; then
		if apiserver_ready; then
			printf '%-24s ok (https://127.0.0.1:%s)\n' "/readyz" "$(api_port_in_use)"
		else
			printf '%-24s not ready\n' "/readyz"
		fi
	fi
	printf '%-24s %s\n' "kubeconfig" "$KUBECONFIG_FILE" "binaries" "$CACHE_BIN" "logs" "$LOGS"
	[ "$running" -eq ${#COMPONENTS[@]} ]
}

with_lock() {
	mkdir -p "$CACHE"
	exec 9>"$LOCK_FILE"
	if ! flock -n 9; then
		log "waiting for another local-kube.sh (lock $LOCK_FILE) ..."
		flock 9
	fi
	"$@"
}

main() {
	[ $# -eq 1 ] || usage
	case $1 in
	start) with_lock cmd_start ;;
	stop) with_lock cmd_stop ;;
	stop-apiserver) with_lock stop_component kube-apiserver ;;
	status) cmd_status ;;
	kubeconfig)
		[ -f "$KUBECONFIG_FILE" ] || die "no kubeconfig yet: run '$0 start'"
		echo "$KUBECONFIG_FILE"
		;;
	reset) with_lock cmd_reset ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
