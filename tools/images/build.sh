#!/usr/bin/env bash
# Builds the controller and waiter OCI images from this checkout: no container daemon, no base image pulled.
#
#   tools/images/build.sh [OUT_DIR]        default OUT_DIR: build/images (gitignored)
#
# Outputs OUT_DIR/controller.oci.tar and OUT_DIR/waiter.oci.tar (oci-archive), each holding one image named as the
# chart's defaults: quay.io/istio-pod-network-controller/{controller,waiter}:<Chart appVersion>.
#  - waiter: the statically linked //controller/waiter binary alone, numeric USER 65532:65532.
#  - controller: //controller plus exactly the Debian packages that ship its runtime shared libraries (found with
#    ldd + dpkg -S on this build machine), unpacked by mmdebstrap (--variant=extract) from the machine's own apt
#    sources; USER 0 (the chart runs it as root with four capabilities). A Debian security update is a rebuild.
#    PNC_IMAGE_IPTABLES=1 adds Debian's iptables (only the `restore` backend execs iptables-legacy-restore).
# Both carry OCI labels: source ($PNC_IMAGE_SOURCE, default the git remote), revision, version, and created =
# the last commit's date (no wall clock in the image).
# Tools (Debian): mmdebstrap, umoci, skopeo. Run as root (umoci unpack/repack keep file ownership).
# Load / push (see docs/deploy.md):  skopeo copy oci-archive:OUT/controller.oci.tar docker://REGISTRY/...:TAG
#                                    podman load -i OUT/controller.oci.tar
#                                    ctr -n k8s.io images import OUT/controller.oci.tar
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "${1:-build/images}")
tools/ensure-deps.sh
for t in mmdebstrap umoci skopeo; do
  command -v "$t" >/dev/null || { echo "build.sh: $t missing (tools/debian-packages.txt)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "build.sh: run as root (umoci keeps file ownership)" >&2; exit 1; }

version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/istio-pod-network-controller/Chart.yaml)
revision=$(git rev-parse HEAD)
created=$(git log -1 --format=%cI)
source_url=${PNC_IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || echo unknown)}
repo=quay.io/istio-pod-network-controller
[ -n "$version" ] || { echo "build.sh: no appVersion in Chart.yaml" >&2; exit 1; }

# PNC_IMAGE_MODE=fastbuild packs the default (unoptimized) build instead; PNC_IMAGE_SKIP_BUILD=1 packs what is
# already in that bazel-bin.
mode=${PNC_IMAGE_MODE:-opt}
[ "${PNC_IMAGE_SKIP_BUILD:-0}" = "1" ] || bazel build -c "$mode" //controller:controller //controller/waiter:waiter
bin=$(bazel info -c "$mode" bazel-bin 2>/dev/null)
controller_bin="$bin/controller/controller"
waiter_bin="$bin/controller/waiter/waiter"
file -b "$waiter_bin" | grep -q 'statically linked' || { echo "build.sh: the waiter is not static" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# pack NAME USER ENTRYPOINT ROOTFS_TAR: one layer from ROOTFS_TAR, config, labels -> $out/NAME.oci.tar
pack() {
  local name=$1 user=$2 entry=$3 tarball=$4 layout="$work/$1-layout" bundle="$work/$1-bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:$version"
  umoci unpack --image "$layout:$version" "$bundle"
  tar -xpf "$tarball" -C "$bundle/rootfs"
  umoci repack --image "$layout:$version" "$bundle"
  umoci config --image "$layout:$version" --os linux --architecture amd64 --created "$created" \
    --config.user "$user" --config.entrypoint "$entry" --config.workingdir / --clear config.cmd \
    --config.env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.label "org.opencontainers.image.source=$source_url" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.created=$created" \
    --config.label "org.opencontainers.image.title=istio-pod-network-controller $name" \
    --history.created_by "tools/images/build.sh $name"
  umoci gc --layout "$layout"
  rm -f "$out/$name.oci.tar"
  skopeo copy --quiet "oci:$layout:$version" "oci-archive:$out/$name.oci.tar:$repo/$name:$version"
  echo "$out/$name.oci.tar  $repo/$name:$version  $(du -h "$out/$name.oci.tar" | cut -f1)"
}

# Waiter: the static binary, nothing else.
mkdir -p "$work/waiter-root/usr/local/bin"
install -m 0555 "$waiter_bin" "$work/waiter-root/usr/local/bin/waiter"
tar --numeric-owner --owner=0 --group=0 --mtime="$created" -cf "$work/waiter-root.tar" -C "$work/waiter-root" .
pack waiter 65532:65532 /usr/local/bin/waiter "$work/waiter-root.tar"

# Controller: the Debian packages that own its shared libraries (ldd), resolved on this machine.
mapfile -t libs < <(ldd "$controller_bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u)
pkgs=()
for l in "${libs[@]}"; do
  p=$(dpkg -S "$(realpath "$l")" 2>/dev/null || dpkg -S "$l" 2>/dev/null || dpkg -S "${l/#\/usr\/lib\//\/lib\/}" 2>/dev/null || true)
  [ -n "$p" ] || { echo "build.sh: no Debian package owns $l" >&2; exit 1; }
  pkgs+=("${p%%:*}")
done
[ "${PNC_IMAGE_IPTABLES:-0}" = "1" ] && pkgs+=(iptables)
include=$(printf '%s\n' "${pkgs[@]}" | sort -u | paste -sd, -)
echo "controller image packages: $include" >&2
mmdebstrap --quiet --variant=extract --include="$include" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  bookworm "$work/controller-root" /etc/apt/sources.list.d/debian.sources
install -D -m 0555 "$controller_bin" "$work/controller-root/usr/local/bin/controller"
mkdir -p "$work/controller-root/usr/local/share/istio-pod-network-controller"
printf '%s\n' "${pkgs[@]}" | sort -u >"$work/controller-root/usr/local/share/istio-pod-network-controller/packages.txt"
tar --numeric-owner --mtime="$created" -cf "$work/controller-root.tar" -C "$work/controller-root" .
pack controller 0:0 /usr/local/bin/controller "$work/controller-root.tar"

# Smoke check, no runtime needed: unpack each archive as an image consumer would and run `--help` inside its root
# (chroot; the waiter as its image user). Proves the controller's libraries all resolve inside the image.
for name in waiter controller; do
  skopeo copy --quiet "oci-archive:$out/$name.oci.tar" "oci:$work/check-$name:check"
  umoci unpack --image "$work/check-$name:check" "$work/check-$name-bundle" >/dev/null
  user=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["process"]["user"]["uid"])' \
    "$work/check-$name-bundle/config.json")
  chroot --userspec="$user:$user" "$work/check-$name-bundle/rootfs" "/usr/local/bin/$name" --help >/dev/null ||
    { echo "build.sh: $name --help failed inside its image" >&2; exit 1; }
  echo "checked: $name --help exits 0 inside its image as uid $user" >&2
done
