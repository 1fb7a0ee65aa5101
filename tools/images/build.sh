#!/usr/bin/env bash
# Builds the controller and waiter OCI images from this checkout: no container daemon, no base image pulled.
#
#   tools/images/build.sh [OUT_DIR]                 default OUT_DIR: build/images (gitignored)
#   tools/images/build.sh [--out DIR] [--cache DIR] [--only waiter|controller]
#                         [--controller-bin FILE] [--waiter-bin FILE] [--no-check]
#
# Outputs OUT_DIR/controller.oci.tar and OUT_DIR/waiter.oci.tar (oci-archive), each holding one image named as the
# chart's defaults: quay.io/istio-pod-network-controller/{controller,waiter}:<Chart appVersion>.
#  - waiter: the statically linked //controller/waiter binary alone (one layer), numeric USER 65532:65532.
#  - controller: two layers. Layer 1: exactly the Debian packages that ship the controller's runtime shared
#    libraries (found with ldd + dpkg -S on this build machine), unpacked by mmdebstrap (--variant=extract) from
#    the machine's own apt sources (Debian's mirrors: the one step that needs the network). Layer 2: the binary and
#    the package list. USER 0 (the chart runs it as root with four capabilities). PNC_IMAGE_IPTABLES=1 adds
#    Debian's iptables (only the `restore` backend execs iptables-legacy-restore).
# Both carry OCI labels: source ($PNC_IMAGE_SOURCE, default the git remote), revision, version, and created =
# the last commit's date (no wall clock in the image; PNC_IMAGE_REVISION / PNC_IMAGE_CREATED override, e.g.
# outside a git checkout).
#
# Binaries: by default `bazel build -c opt` of //controller and //controller/waiter (PNC_IMAGE_MODE=fastbuild
# for the unoptimized build; PNC_IMAGE_SKIP_BUILD=1 packs what is already in that bazel-bin). --controller-bin /
# --waiter-bin pack the given files instead and run neither bazel nor tools/ensure-deps.sh (the image test does
# this with its runfiles).
#
# Cache (--cache, default build/images/cache): layer 1 is kept (compressed, in an OCI layout) keyed by the package
# list, each package's installed version on this machine, the apt sources and the mmdebstrap options, and reused
# while that key holds: a rebuild after a code change repacks only layer 2 (seconds, offline). A Debian update
# installed on the build machine changes the key (new layer 1); PNC_IMAGE_REFRESH=1 forces a new one. Only the
# newest layer 1 is kept.
#
# Ends with a smoke check (skip: --no-check): each archive unpacked as an image consumer would, `--help` run
# inside its root with chroot as the image's user. The runtime test is //tools/images:image_test.
# Tools (Debian): mmdebstrap, umoci, skopeo. Run as root (mmdebstrap, chroot, file ownership in layers).
# Load / push (see docs/deploy.md):  skopeo copy oci-archive:OUT/controller.oci.tar docker://REGISTRY/...:TAG
#                                    podman load -i OUT/controller.oci.tar
#                                    ctr -n k8s.io images import OUT/controller.oci.tar
set -euo pipefail
# The checkout this script lives in (in a Bazel test: the runfiles tree, which holds the chart).
cd "$(dirname "$0")/../.."
root_dir=$(pwd)

out=""
cache=""
controller_bin=""
waiter_bin=""
only=""
check=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --controller-bin) controller_bin=$2; shift 2 ;;
    --waiter-bin) waiter_bin=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-check) check=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build.sh: unknown flag $1 (--help)" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
case "$only" in "" | waiter | controller) ;; *) echo "build.sh: --only waiter|controller" >&2; exit 2 ;; esac
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
out=$(realpath -m "${out:-build/images}")
cache=$(realpath -m "${cache:-build/images/cache}")
t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

if [ -z "$controller_bin$waiter_bin" ]; then
  tools/ensure-deps.sh
  mode=${PNC_IMAGE_MODE:-opt}
  targets=()
  want controller && targets+=(//controller:controller)
  want waiter && targets+=(//controller/waiter:waiter)
  [ "${PNC_IMAGE_SKIP_BUILD:-0}" = "1" ] || bazel build -c "$mode" "${targets[@]}"
  bin=$(bazel info -c "$mode" bazel-bin 2>/dev/null)
  controller_bin="$bin/controller/controller"
  waiter_bin="$bin/controller/waiter/waiter"
  echo "build.sh: binaries (-c $mode) ready after $(elapsed "$t0")" >&2
fi
for t in umoci skopeo tar file; do
  command -v "$t" >/dev/null || { echo "build.sh: $t missing (tools/debian-packages.txt)" >&2; exit 1; }
done
if want controller; then
  command -v mmdebstrap >/dev/null || { echo "build.sh: mmdebstrap missing (tools/debian-packages.txt)" >&2; exit 1; }
  [ -x "$controller_bin" ] || { echo "build.sh: no controller binary at $controller_bin" >&2; exit 1; }
fi
if want waiter; then
  [ -x "$waiter_bin" ] || { echo "build.sh: no waiter binary at $waiter_bin" >&2; exit 1; }
  file -bL "$waiter_bin" | grep -q 'statically linked' || { echo "build.sh: the waiter is not static" >&2; exit 1; }
fi
[ "$(id -u)" -eq 0 ] || { echo "build.sh: run as root (mmdebstrap, chroot, layer ownership)" >&2; exit 1; }

version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/istio-pod-network-controller/Chart.yaml)
[ -n "$version" ] || { echo "build.sh: no appVersion in Chart.yaml" >&2; exit 1; }
in_git() { git -C "$root_dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; }
revision=${PNC_IMAGE_REVISION:-$(in_git && git rev-parse HEAD || echo unknown)}
created=${PNC_IMAGE_CREATED:-$(in_git && git log -1 --format=%cI || echo 1970-01-01T00:00:00Z)}
source_url=${PNC_IMAGE_SOURCE:-$(in_git && git remote get-url origin 2>/dev/null || echo unknown)}
repo=quay.io/istio-pod-network-controller

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$cache"

# layer_tar DIR TARBALL [MTIME]: a reproducible uncompressed layer (sorted, numeric ownership, fixed mtime).
layer_tar() {
  chmod 0755 "$1"
  tar --sort=name --numeric-owner --mtime="${3:-$created}" --format=gnu -cf "$2" -C "$1" .
}

# pack NAME USER ENTRYPOINT BASE_LAYOUT LAYER.tar...: an image from BASE_LAYOUT's `base` tag (an OCI layout holding
# the cached layers; "" = empty) plus those layers (added verbatim, gzip-compressed by umoci), config and labels
# -> $out/NAME.oci.tar
pack() {
  local name=$1 user=$2 entry=$3 base_layout=$4 layout="$work/$1-layout"
  shift 4
  if [ -n "$base_layout" ]; then
    cp -a "$base_layout" "$layout"
  else
    umoci init --layout "$layout"
    umoci new --image "$layout:base"
  fi
  umoci tag --image "$layout:base" "$version"
  umoci rm --image "$layout:base"
  for layer in "$@"; do
    umoci raw add-layer --image "$layout:$version" --history.created "$created" \
      --history.created_by "tools/images/build.sh $name $(basename "$layer")" "$layer"
  done
  umoci config --image "$layout:$version" --os linux --architecture amd64 --created "$created" \
    --config.user "$user" --config.entrypoint "$entry" --config.workingdir / --clear config.cmd \
    --config.env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.label "org.opencontainers.image.source=$source_url" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.created=$created" \
    --config.label "org.opencontainers.image.title=istio-pod-network-controller $name" \
    --no-history
  umoci gc --layout "$layout"
  rm -f "$out/$name.oci.tar.tmp"
  skopeo copy --quiet "oci:$layout:$version" "oci-archive:$out/$name.oci.tar.tmp:$repo/$name:$version"
  mv -f "$out/$name.oci.tar.tmp" "$out/$name.oci.tar"
  echo "$out/$name.oci.tar  $repo/$name:$version  $(du -h "$out/$name.oci.tar" | cut -f1)"
}

# Waiter: the static binary, nothing else.
if want waiter; then
  t=$(date +%s.%N)
  mkdir -p "$work/waiter-root/usr/local/bin"
  install -m 0555 "$waiter_bin" "$work/waiter-root/usr/local/bin/waiter"
  chown -R 0:0 "$work/waiter-root"
  layer_tar "$work/waiter-root" "$work/waiter.tar"
  pack waiter 65532:65532 /usr/local/bin/waiter "" "$work/waiter.tar"
  echo "build.sh: waiter image in $(elapsed "$t")" >&2
fi

# Controller layer 1: the Debian packages that own its shared libraries (ldd), resolved on this machine.
if want controller; then
  t=$(date +%s.%N)
  mapfile -t libs < <(ldd "$controller_bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u)
  # One dpkg -S for every candidate path (the file, its target, the pre-usrmerge /lib spelling of both).
  declare -A cands=() owner=()
  for l in "${libs[@]}"; do
    r=$(realpath "$l")
    cands[$l]="$r $l ${r/#\/usr\/lib\//\/lib\/} ${l/#\/usr\/lib\//\/lib\/}"
  done
  # shellcheck disable=SC2048,SC2086  # the candidates are split on purpose (no spaces in library paths)
  while IFS= read -r line; do
    owner[${line#*: }]=${line%%[:,]*}
  done < <(printf '%s\n' ${cands[*]} | sort -u | xargs dpkg -S 2>/dev/null || true)
  pkgs=()
  for l in "${libs[@]}"; do
    p=""
    for c in ${cands[$l]}; do
      [ -n "${owner[$c]:-}" ] && { p=${owner[$c]}; break; }
    done
    [ -n "$p" ] || { echo "build.sh: no Debian package owns $l" >&2; exit 1; }
    pkgs+=("$p")
  done
  [ "${PNC_IMAGE_IPTABLES:-0}" = "1" ] && pkgs+=(iptables)
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  include=$(printf '%s\n' "${pkgs[@]}" | paste -sd, -)
  sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  mmopts=(--quiet --variant=extract --include="$include"
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*')
  key=$( {
    echo "layer1 v1"
    for p in "${pkgs[@]}"; do dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null | head -1; done
    cat "$sources"
    printf '%s\n' "${mmopts[@]}"
  } | sha256sum | cut -c1-16)
  base="$cache/controller-layer1-$key"
  exec 9>"$cache/.lock"
  flock 9
  if [ -f "$base/layout/index.json" ] && [ "${PNC_IMAGE_REFRESH:-0}" != "1" ]; then
    echo "build.sh: controller layer 1 cached ($base)" >&2
  else
    echo "build.sh: controller layer 1 (mmdebstrap from $sources): $include" >&2
    rm -rf "$base.tmp"
    mkdir -p "$base.tmp"
    # The versions the mirror delivered, read from the downloaded .debs (extract leaves no dpkg database).
    # shellcheck disable=SC2016  # the hook is expanded by mmdebstrap's shell, with $1 = the root
    mmdebstrap "${mmopts[@]}" --extract-hook='for d in "$1"/var/cache/apt/archives/*.deb; do
        dpkg-deb --show --showformat="\${Package} \${Version}\n" "$d"; done | sort >"$1/../packages.txt"' \
      bookworm "$base.tmp/rootfs" "$sources"
    rm -rf "$base.tmp/rootfs/var/cache/apt/archives" "$base.tmp/rootfs/var/lib/apt/lists"
    # mtime: the epoch, so layer 1's digest depends on the packages alone, not on when it was cached.
    layer_tar "$base.tmp/rootfs" "$base.tmp/layer.tar" 1970-01-01T00:00:00Z
    umoci init --layout "$base.tmp/layout"
    umoci new --image "$base.tmp/layout:base"
    umoci raw add-layer --image "$base.tmp/layout:base" --history.created 1970-01-01T00:00:00Z \
      --history.created_by "tools/images/build.sh controller: mmdebstrap --variant=extract $include" \
      "$base.tmp/layer.tar"
    rm -f "$base.tmp/layer.tar"
    [ "$(wc -l <"$base.tmp/packages.txt")" -ge "${#pkgs[@]}" ] ||
      { echo "build.sh: could not read the versions of the unpacked packages" >&2; exit 1; }
    rm -rf "$base.tmp/rootfs"
    find "$cache" -maxdepth 1 -name 'controller-layer1-*' ! -name "$(basename "$base")*" -exec rm -rf {} +
    rm -rf "$base"
    mv "$base.tmp" "$base"
    echo "build.sh: controller layer 1 built in $(elapsed "$t")" >&2
  fi
  flock -u 9
  mkdir -p "$work/controller-top/usr/local/bin" "$work/controller-top/usr/local/share/istio-pod-network-controller"
  install -m 0555 "$controller_bin" "$work/controller-top/usr/local/bin/controller"
  cp "$base/packages.txt" "$work/controller-top/usr/local/share/istio-pod-network-controller/packages.txt"
  chmod 0444 "$work/controller-top/usr/local/share/istio-pod-network-controller/packages.txt"
  chown -R 0:0 "$work/controller-top"
  layer_tar "$work/controller-top" "$work/controller-top.tar"
  pack controller 0:0 /usr/local/bin/controller "$base/layout" "$work/controller-top.tar"
  echo "build.sh: controller image in $(elapsed "$t")" >&2
fi

# Smoke check, no runtime needed: unpack each archive as an image consumer would and run `--help` inside its root
# (chroot, as the image's user). Proves the controller's libraries all resolve inside the image.
if [ "$check" = 1 ]; then
  for name in waiter controller; do
    want "$name" || continue
    skopeo copy --quiet "oci-archive:$out/$name.oci.tar" "oci:$work/check-$name:check"
    umoci unpack --image "$work/check-$name:check" "$work/check-$name-bundle" >/dev/null
    user=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["process"]["user"]["uid"])' \
      "$work/check-$name-bundle/config.json")
    chroot --userspec="$user:$user" "$work/check-$name-bundle/rootfs" "/usr/local/bin/$name" --help >/dev/null ||
      { echo "build.sh: $name --help failed inside its image" >&2; exit 1; }
    echo "checked: $name --help exits 0 inside its image as uid $user" >&2
  done
fi
echo "build.sh: done in $(elapsed "$t0")" >&2
