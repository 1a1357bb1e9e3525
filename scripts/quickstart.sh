#!/usr/bin/env bash
# The operator's main job end to end, on an embedded default: a local Kubernetes API server
# and the identity API simulator are started for you, the CRDs and every manifest in examples/
# are applied, the operator reconciles them, and `kubectl get identity` shows the result.
#
#   scripts/quickstart.sh          # start (idempotent: restarts the simulator and operator)
#   scripts/quickstart.sh stop     # stop the simulator and the operator
#                                  # (scripts/local-kube.sh stop stops the API server too)
set -euo pipefail
SCRIPT_NAME=quickstart.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUN=$CACHE/quickstart
NAMESPACE=identity-demo
SIM_ADDR=127.0.0.1:18080 # examples/*.yaml point their IdentityApis here
METRICS_ADDR=127.0.0.1:18081
# Where cargo puts the binaries (CARGO_TARGET_DIR moves them).
BIN=${CARGO_TARGET_DIR:-target}/debug

stop_pid() {
	local file=$RUN/$1.pid pid
	[ -f "$file" ] || return 0
	pid=$(cat "$file")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
}

stop() {
	stop_pid operator
	stop_pid simulator
}

http_post_file() { # url file
	python3 -c 'import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=open(sys.argv[2], "rb").read(), headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=10).read()' "$1" "$2"
}

start() {
	mkdir -p "$RUN"
	stop
	local kubeconfig
	kubeconfig=$(bash scripts/local-kube.sh start | tail -n1)
	export KUBECONFIG=$kubeconfig
	local kubectl=$CACHE_BIN/kubectl
	timed "build" cargo build --locked --quiet --bins
	# The kubectl plugin is the operator's binary under another name (docs/kubectl-plugin.md).
	mkdir -p "$CACHE_BIN"
	ln -sf "$(cd "$BIN" && pwd)/identity-operator" "$CACHE_BIN/kubectl-identity"

	if (: >"/dev/tcp/${SIM_ADDR%:*}/${SIM_ADDR#*:}") 2>/dev/null; then
		die "something already listens on $SIM_ADDR; stop it (or run: scripts/quickstart.sh stop)"
	fi
	"$BIN/identity-api-sim" --listen "$SIM_ADDR" --client-id demo --client-secret demo-secret \
		>"$RUN/simulator.log" 2>&1 &
	echo $! >"$RUN/simulator.pid"
	for _ in $(seq 100); do grep -q 'listening on' "$RUN/simulator.log" && break; sleep 0.1; done
	grep -q 'listening on' "$RUN/simulator.log" || die "the simulator did not start, see $RUN/simulator.log"
	for seed in examples/sim-seed/*.json; do
		http_post_file "http://$SIM_ADDR/_sim/seed" "$seed" || die "seeding $seed failed"
	done
	log "identity API simulator on http://$SIM_ADDR (state: curl http://$SIM_ADDR/_sim/state)"

	# Kubernetes 1.20's published schema does not know x-kubernetes-validations (CEL), so
	# kubectl's client-side check is switched off for the CRDs; current servers enforce them.
	"$BIN/identity-operator" crds | "$kubectl" apply --validate=false -f - >/dev/null
	local crds
	crds=$("$BIN/identity-operator" crds | awk '/^  name: /{print "crd/" $2}')
	# kubectl 1.20's wait fails at once, rather than waiting, on a CRD whose status has no
	# conditions yet (one applied a moment before can show that): ask again a few times.
	local tries=0
	# shellcheck disable=SC2086 # one argument per CRD
	until "$kubectl" wait --for=condition=Established --timeout=60s $crds >/dev/null; do
		tries=$((tries + 1))
		[ "$tries" -lt 5 ] || die "the CRDs were not Established"
		sleep 1
	done
	"$kubectl" create namespace "$NAMESPACE" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
	"$kubectl" apply -n "$NAMESPACE" -f examples/

	RUST_LOG=${RUST_LOG:-info} "$BIN/identity-operator" run --namespace "$NAMESPACE" \
		--metrics-addr "$METRICS_ADDR" >"$RUN/operator.log" 2>&1 &
	echo $! >"$RUN/operator.pid"
	log "operator running (log: $RUN/operator.log, metrics: http://$METRICS_ADDR/metrics)"

	local resources
	# The namespace's own objects: `identity` also names cluster-scoped kinds, and another
	# run's ClusterIdentityApi is none of this quick start's business.
	resources=$("$kubectl" get identity -n "$NAMESPACE" -o name | grep -v '^clusteridentityapi')
	# shellcheck disable=SC2086 # one argument per resource
	if ! "$kubectl" wait -n "$NAMESPACE" --for=condition=Ready --timeout=90s $resources >/dev/null; then
		"$kubectl" get identity -n "$NAMESPACE"
		die "not everything became Ready; see kubectl describe -n $NAMESPACE <resource> and $RUN/operator.log"
	fi
	"$kubectl" get identity -n "$NAMESPACE"
	cat <<MSG

Everything is Ready. Try:
  export KUBECONFIG=$kubeconfig PATH=$CACHE_BIN:\$PATH
  kubectl identity status -n $NAMESPACE   # every resource with its conditions
  kubectl describe identitybackend corporate-ldap -n $NAMESPACE
  kubectl get events -n $NAMESPACE
  curl -s http://$SIM_ADDR/_sim/state      # what the identity APIs now hold
Stop with: scripts/quickstart.sh stop   (and scripts/local-kube.sh stop for the API server)
MSG
}

case ${1:-start} in
start) start ;;
stop) stop && log "stopped the simulator and the operator" ;;
*) die "usage: $0 [start|stop]" ;;
esac
