#!/bin/sh
# Build the signed OpenWrt feeds of entropyservice from static binaries,
# without the OpenWrt SDK, usign or apk: a thin wrapper around the host tool
# tools/feed (es-feed), which holds the one implementation of both layouts.
#
#   openwrt/build-feed.sh -u USIGN_SECRET_KEY -a APK_PRIVATE_KEY
#                         [-o OUTDIR] [-r RELEASE] [-m MAINTAINER] [BINARY | DIR]...
#
# BINARY is named entropyservice-<rust-target> (what scripts/cross-build.sh
# leaves in target/dist/router: the router build, without the admin
# commands; the full builds in target/dist are for servers and hosts); a DIR
# is searched for such names. Default input: target/dist/router. Each binary must be a static ELF of its target (the identity
# column of scripts/targets.tsv); anything else stops the build and leaves
# OUTDIR as it was.
#
# Output (default target/feed), per OpenWrt architecture ARCH of
# scripts/targets.tsv:
#   opkg/ARCH/ entropyservice_<version>-r<release>_ARCH.ipk, Packages,
#              Packages.gz, Packages.sig (usign, for OpenWrt 24.10 and older)
#   apk/ARCH/  entropyservice-<version>-r<release>.apk, packages.adb
#              (apk v3, signed with the EC key, for OpenWrt 25.12 and later)
#   keys/      entropyservice-feed.usign.pub, entropyservice-feed.pem
# Make the keys once with:
#   cargo run -q --release -p es-feed -- usign-keygen -s feed.usign.sec -p feed.usign.pub
#   cargo run -q --release -p es-feed -- apk-keygen --private feed-apk.pem --public feed-apk.pub.pem
# Check a feed: cargo run -q --release -p es-feed -- check --usign-pub ... --apk-pub ... OUTDIR
#
# Byte-for-byte reproducible apart from the ECDSA signatures: file times are
# SOURCE_DATE_EPOCH (default: the last git commit, else Cargo.toml's mtime).
# Needs cargo (the tool is built on first use).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

die() {
	echo "build-feed: error: $*" >&2
	exit 1
}

usage() {
	sed -n '7,8p' "$0" | sed 's/^# *//' >&2
	exit 2
}

OUTDIR="$ROOT/target/feed"
RELEASE=1
MAINTAINER="entropyservice developers"
USIGN_KEY=
APK_KEY=
while getopts o:r:m:u:a:h opt; do
	case "$opt" in
	o) OUTDIR="$OPTARG" ;;
	r) RELEASE="$OPTARG" ;;
	m) MAINTAINER="$OPTARG" ;;
	u) USIGN_KEY="$OPTARG" ;;
	a) APK_KEY="$OPTARG" ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ -n "$USIGN_KEY" ] || die "-u USIGN_SECRET_KEY is needed: OpenWrt 24.10 checks Packages.sig (make one: es-feed usign-keygen)"
[ -n "$APK_KEY" ] || die "-a APK_PRIVATE_KEY is needed: apk 3 refuses unsigned packages (make one: es-feed apk-keygen)"
command -v cargo >/dev/null 2>&1 || die "cargo not found (rustup) to build tools/feed"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null) ||
		SOURCE_DATE_EPOCH=
	[ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH=$(date -r "$ROOT/Cargo.toml" +%s)
fi
export SOURCE_DATE_EPOCH

(cd "$ROOT" && cargo build -q --release --locked -p es-feed) || die "cannot build tools/feed (cargo build -p es-feed)"
TOOL="${CARGO_TARGET_DIR:-$ROOT/target}/release/es-feed"
case "$TOOL" in /*) ;; *) TOOL="$ROOT/$TOOL" ;; esac
exec "$TOOL" build --root "$ROOT" -o "$OUTDIR" -r "$RELEASE" -m "$MAINTAINER" \
	--usign-key "$USIGN_KEY" --apk-key "$APK_KEY" "$@"
