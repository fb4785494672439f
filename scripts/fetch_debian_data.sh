#!/usr/bin/env bash
# Unpack the Debian-packaged datasets lorsp reads, without root and without
# installing anything: Fashion-MNIST (dataset-fashion-mnist) and OpenCV's
# digits.png (opencv-doc). The files land under
#   ${LORSP_DEBIAN_DIR:-$HOME/.cache/lorsp/debian}/usr/share/...
# (the layout `dpkg -x` gives), and nothing else of the packages is kept.
# Idempotent: a package whose files are already there is not downloaded.
set -euo pipefail

dest="${LORSP_DEBIAN_DIR:-$HOME/.cache/lorsp/debian}"

fashion_files=(
  usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
  usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
  usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
  usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
)
opencv_files=(
  usr/share/doc/opencv-doc/examples/data/digits.png
)

die() { echo "error: $*" >&2; exit 2; }

all_present() {  # all_present FILE... : true when every file exists under $dest
  local f
  for f in "$@"; do [ -s "$dest/$f" ] || return 1; done
}

for tool in apt-get dpkg-deb tar; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; this script needs a Debian/Ubuntu system (or install the files by hand under $dest)"
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

apt_opts=(-q)
# As root, apt drops to the _apt user, which cannot write to a mktemp dir.
if [ "$(id -u)" -eq 0 ]; then apt_opts+=(-o APT::Sandbox::User=root); fi

fetch_package() {  # fetch_package PACKAGE FILE... : copy FILEs of PACKAGE into $dest
  local pkg="$1"; shift
  if all_present "$@"; then
    echo "$pkg: already in $dest"
    return 0
  fi
  echo "$pkg: downloading"
  (cd "$tmp" && apt-get download "${apt_opts[@]}" "$pkg" >/dev/null) \
    || die "apt-get download $pkg failed; run 'apt-get update' (or 'sudo apt-get install $pkg') and try again"
  local deb
  deb="$(ls "$tmp"/"${pkg}"_*.deb 2>/dev/null | head -n 1)"
  [ -n "$deb" ] || die "apt-get download $pkg produced no .deb file in $tmp"
  local stage="$tmp/stage-$pkg" members=() f
  mkdir -p "$stage"
  for f in "$@"; do members+=("./$f"); done
  # Extract only the members lorsp needs (same layout as `dpkg -x`).
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$stage" -f - "${members[@]}" \
    || die "could not extract ${members[*]} from $deb"
  for f in "$@"; do
    [ -f "$stage/$f" ] && [ ! -L "$stage/$f" ] || die "$pkg does not contain a regular file $f"
    mkdir -p "$(dirname "$dest/$f")"
    cp "$stage/$f" "$dest/$f.part" && mv -f "$dest/$f.part" "$dest/$f"
  done
  rm -rf "$stage" "$deb"
  echo "$pkg: unpacked $# file(s) into $dest"
}

fetch_package dataset-fashion-mnist "${fashion_files[@]}"
fetch_package opencv-doc "${opencv_files[@]}"
