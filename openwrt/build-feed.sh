#!/bin/sh
# Build an opkg feed of entropyservice from static binaries, without the
# OpenWrt SDK: one .ipk per OpenWrt architecture, laid out as OpenWrt's
# scripts/ipkg-build makes them, plus Packages, Packages.gz and optionally
# Packages.sig.
#
#   openwrt/build-feed.sh [-o OUTDIR] [-r RELEASE] [-m MAINTAINER]
#                         [-k USIGN_SECRET_KEY] [BINARY | DIR]...
#
# BINARY is named entropyservice-<rust-target> (what scripts/cross-build.sh
# leaves in target/dist); a DIR is searched for such names. Default input:
# target/dist. Targets without a binary are skipped. Each binary must be a
# static ELF for its target; anything else stops the build.
#
# Output (default target/feed): entropyservice_<version>-r<release>_<arch>.ipk,
# Packages, Packages.gz, and Packages.sig with -k (needs OpenWrt's usign).
# On the router: add `src/gz entropyservice URL` to /etc/opkg/customfeeds.conf
# (and the usign public key to /etc/opkg/keys/ when signed).
#
# Byte-for-byte reproducible: file times are SOURCE_DATE_EPOCH (default: the
# last git commit, else Cargo.toml's mtime). Needs GNU tar (--sort=name),
# gzip, sha256sum, od; readelf (binutils) for the static check.
set -eu
# C collation: globs and sort order, hence the Packages index, are stable.
LC_ALL=C
export LC_ALL

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
FILES="$HERE/files"

PKG=entropyservice
LICENSE=GPL-2.0-or-later
SECTION=utils
USERID="$PKG:$PKG"
DESCRIPTION=" Moves randomness over SSH from entropyservice servers into the
 kernel random pool; credits a saved seed at boot before the network is up."

die() {
	echo "build-feed: error: $*" >&2
	exit 1
}

usage() {
	sed -n '7,8p' "$0" | sed 's/^# *//' >&2
	exit 2
}

# OpenWrt architectures that can run each target's static binary. The
# binary brings its own libc, so only the instruction set has to match:
# armv7 hard-float needs a VFP (none on bcm53xx, which takes the armv6 one).
arches_for() {
	case "$1" in
	mips-unknown-linux-musl) echo "mips_24kc" ;;
	mipsel-unknown-linux-musl) echo "mipsel_24kc mipsel_74kc" ;;
	armv7-unknown-linux-musleabihf) echo "arm_cortex-a7_neon-vfpv4 arm_cortex-a9_vfpv3-d16 arm_cortex-a15_neon-vfpv4" ;;
	arm-unknown-linux-musleabi) echo "arm_arm1176jzf-s_vfp arm_cortex-a9" ;;
	aarch64-unknown-linux-musl) echo "aarch64_generic aarch64_cortex-a53 aarch64_cortex-a72" ;;
	x86_64-unknown-linux-musl) echo "x86_64" ;;
	*) return 1 ;;
	esac
}

# ELF identity of each target: class (1=32, 2=64 bit), data (1=LE, 2=BE),
# e_machine (8=MIPS, 40=ARM, 62=x86-64, 183=AArch64).
elf_id_for() {
	case "$1" in
	mips-unknown-linux-musl) echo "1 2 8" ;;
	mipsel-unknown-linux-musl) echo "1 1 8" ;;
	armv7-unknown-linux-musleabihf | arm-unknown-linux-musleabi) echo "1 1 40" ;;
	aarch64-unknown-linux-musl) echo "2 1 183" ;;
	x86_64-unknown-linux-musl) echo "2 1 62" ;;
	esac
}

check_binary() {
	bin="$1" target="$2"
	want=$(elf_id_for "$target")
	# shellcheck disable=SC2046
	set -- $(od -An -tu1 -N20 "$bin")
	if [ "$#" -ne 20 ] || [ "$1 $2 $3 $4" != "127 69 76 70" ]; then
		die "$bin is not an ELF file"
	fi
	if [ "$6" = 1 ]; then machine=$((${19} + 256 * ${20})); else machine=$((${19} * 256 + ${20})); fi
	got="$5 $6 $machine"
	[ "$got" = "$want" ] ||
		die "$bin is ELF class/data/machine '$got', but $target needs '$want'"
	if command -v readelf >/dev/null 2>&1; then
		! readelf -lW "$bin" | grep -q 'INTERP' ||
			die "$bin has a program interpreter: not a static binary"
		! readelf -dW "$bin" | grep -q '(NEEDED)' ||
			die "$bin needs shared libraries: not a static binary"
	else
		echo "build-feed: warning: no readelf; cannot check that $bin is static" >&2
	fi
}

cargo_version() {
	sed -n '/^\[package\]/,/^\[/s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' \
		"$ROOT/Cargo.toml" | head -n 1
}

# tar exactly as ipkg-build calls it, plus root ownership (it runs in fakeroot).
pack() {
	tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$SOURCE_DATE_EPOCH" "$@"
}

# No `local` in POSIX sh: the functions below share the script's variables,
# and each sets what it uses before use.

# Stages the files of one package into $1 (the data part).
stage_data() {
	data="$1" bin="$2"
	mkdir -p "$data/usr/bin" "$data/etc/init.d" "$data/etc/config" \
		"$data/etc/uci-defaults" "$data/etc/capabilities" \
		"$data/lib/upgrade/keep.d"
	cp "$bin" "$data/usr/bin/$PKG"
	cp "$FILES/$PKG.init" "$data/etc/init.d/$PKG"
	cp "$FILES/$PKG.config" "$data/etc/config/$PKG"
	cp "$FILES/$PKG.uci-defaults" "$data/etc/uci-defaults/90-$PKG"
	cp "$FILES/$PKG.capabilities.json" "$data/etc/capabilities/$PKG.json"
	# What package-pack.mk does for conffiles the package does not ship:
	# sysupgrade keeps the client key and the seed.
	echo "/etc/$PKG/" >"$data/lib/upgrade/keep.d/$PKG"
	find "$data" -type d -exec chmod 0755 {} +
	# INSTALL_BIN, INSTALL_CONF and INSTALL_DATA of OpenWrt's rules.mk
	chmod 0755 "$data/usr/bin/$PKG" "$data/etc/init.d/$PKG" \
		"$data/etc/uci-defaults/90-$PKG"
	chmod 0600 "$data/etc/config/$PKG"
	chmod 0644 "$data/etc/capabilities/$PKG.json" "$data/lib/upgrade/keep.d/$PKG"
}

# Writes CONTROL/* as include/package-pack.mk generates them.
stage_control() {
	control="$1" arch="$2" installed_size="$3"
	mkdir -p "$control"
	{
		echo "Package: $PKG"
		echo "Version: $VERSION"
		echo "Source: $PKG/openwrt"
		echo "SourceName: $PKG"
		echo "License: $LICENSE"
		echo "Section: $SECTION"
		echo "Require-User: $USERID"
		echo "SourceDateEpoch: $SOURCE_DATE_EPOCH"
		echo "Maintainer: $MAINTAINER"
		echo "Architecture: $arch"
		echo "Installed-Size: $installed_size"
		printf 'Description: '
		echo "$DESCRIPTION" | sed -e 's,^[[:space:]]*, ,g'
	} >"$control/control"
	echo "/etc/config/$PKG" >"$control/conffiles"
	# shellcheck disable=SC2016
	{
		echo '#!/bin/sh'
		echo '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
		echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
		echo '. ${IPKG_INSTROOT}/lib/functions.sh'
		echo 'default_postinst $0 $@'
	} >"$control/postinst"
	# shellcheck disable=SC2016
	{
		echo '#!/bin/sh'
		echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
		echo '. ${IPKG_INSTROOT}/lib/functions.sh'
		echo 'default_prerm $0 $@'
	} >"$control/prerm"
	chmod 0755 "$control" "$control/postinst" "$control/prerm"
	chmod 0644 "$control/control" "$control/conffiles"
}

# Builds one .ipk from a staged data.tar.gz for one architecture.
build_ipk() {
	data_tgz="$1" arch="$2" dir="$WORK/ipk-$2"
	ipk="$OUTDIR/${PKG}_${VERSION}_${arch}.ipk"
	mkdir -p "$dir"
	stage_control "$dir/CONTROL" "$arch" "$(gzip -dc "$data_tgz" | wc -c | tr -d ' ')"
	(cd "$dir/CONTROL" && pack -cf - .) | gzip -n >"$dir/control.tar.gz"
	cp "$data_tgz" "$dir/data.tar.gz"
	echo "2.0" >"$dir/debian-binary"
	chmod 0644 "$dir/debian-binary" "$dir/data.tar.gz" "$dir/control.tar.gz"
	(cd "$dir" && pack -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) |
		gzip -n >"$ipk"
	echo "build-feed: $ipk ($(wc -c <"$ipk" | tr -d ' ') bytes)" >&2
}

# The stanza scripts/ipkg-make-index.sh writes: the control file with
# Filename, Size and SHA256sum before Description.
index_stanza() {
	ipk="$1"
	name=${ipk##*/}
	size=$(wc -c <"$ipk" | tr -d ' ')
	sum=$(sha256sum "$ipk" | cut -d ' ' -f 1)
	tar -xzOf "$ipk" ./control.tar.gz | tar -xzOf - ./control |
		sed -e "s/^Description:/Filename: $name\\
Size: $size\\
SHA256sum: $sum\\
Description:/"
	echo ""
}

OUTDIR="$ROOT/target/feed"
RELEASE=1
MAINTAINER="entropyservice developers"
USIGN_KEY=
while getopts o:r:m:k:h opt; do
	case "$opt" in
	o) OUTDIR="$OPTARG" ;;
	r) RELEASE="$OPTARG" ;;
	m) MAINTAINER="$OPTARG" ;;
	k) USIGN_KEY="$OPTARG" ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ "$#" -gt 0 ] || set -- "$ROOT/target/dist"

if [ -n "$USIGN_KEY" ]; then
	command -v usign >/dev/null 2>&1 ||
		die "-k needs OpenWrt's usign, which is not installed (Debian does not package it; build https://git.openwrt.org/project/usign.git)"
	[ -r "$USIGN_KEY" ] || die "cannot read usign secret key $USIGN_KEY"
fi
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils)"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed (--sort=name)"

VERSION="$(cargo_version)"
[ -n "$VERSION" ] || die "no version in $ROOT/Cargo.toml"
VERSION="$VERSION-r$RELEASE"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null) ||
		SOURCE_DATE_EPOCH=
	[ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH=$(date -r "$ROOT/Cargo.toml" +%s)
fi
case "$SOURCE_DATE_EPOCH" in
'' | *[!0-9]*) die "SOURCE_DATE_EPOCH '$SOURCE_DATE_EPOCH' is not a number of seconds" ;;
esac

# Collect "target path" pairs from the arguments.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/build-feed.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
: >"$WORK/inputs"
for arg in "$@"; do
	if [ -d "$arg" ]; then
		for f in "$arg"/"$PKG"-*; do
			[ -f "$f" ] || continue
			t=${f##*/}
			t=${t#"$PKG"-}
			arches_for "$t" >/dev/null || continue
			echo "$t $f" >>"$WORK/inputs"
		done
	elif [ -f "$arg" ]; then
		t=${arg##*/}
		t=${t#"$PKG"-}
		arches_for "$t" >/dev/null || die "$arg: name is not $PKG-<known rust target>"
		echo "$t $arg" >>"$WORK/inputs"
	else
		die "$arg: no such file or directory"
	fi
done
[ -s "$WORK/inputs" ] || die "no $PKG-<rust-target> binaries in: $*"

mkdir -p "$OUTDIR"
rm -f "$OUTDIR/${PKG}"_*.ipk "$OUTDIR/Packages" "$OUTDIR/Packages.gz" "$OUTDIR/Packages.sig"

while read -r target bin; do
	check_binary "$bin" "$target"
	data="$WORK/data-$target"
	stage_data "$data" "$bin"
	(cd "$data" && pack -cpf - .) | gzip -n >"$WORK/data-$target.tar.gz"
	for arch in $(arches_for "$target"); do
		build_ipk "$WORK/data-$target.tar.gz" "$arch"
	done
done <"$WORK/inputs"

(
	cd "$OUTDIR"
	for ipk in "$PKG"_*.ipk; do
		index_stanza "$ipk"
	done
) >"$OUTDIR/Packages"
gzip -9nc "$OUTDIR/Packages" >"$OUTDIR/Packages.gz"
if [ -n "$USIGN_KEY" ]; then
	usign -S -m "$OUTDIR/Packages" -s "$USIGN_KEY" -x "$OUTDIR/Packages.sig"
fi
echo "build-feed: feed in $OUTDIR" >&2
