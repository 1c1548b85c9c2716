#!/bin/sh
# openwrt/build-feed.sh: builds a feed from a static x86_64 musl binary and
# takes the result apart again with standard tools (tar, gzip, sha256sum,
# readelf), checking it against OpenWrt's scripts/ipkg-build layout.
#   REAL:      build-feed.sh, the files it packs, a static musl build of
#              entropyservice (target/dist/entropyservice-x86_64-unknown-linux-musl
#              when scripts/cross-build.sh made one, else built here with cargo
#              into target/openwrt).
#   NOT HERE:  opkg itself installing the .ipk (needs an OpenWrt system).
# Needs: GNU tar, gzip, sha256sum, readelf (binutils), cargo with the
# x86_64-unknown-linux-musl target unless the binary already exists.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
BUILD="$ROOT/openwrt/build-feed.sh"
FILES="$ROOT/openwrt/files"
TARGET=x86_64-unknown-linux-musl
TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-feed.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
EPOCH=1700000000
export SOURCE_DATE_EPOCH=$EPOCH

need tar tar
need gzip gzip
need sha256sum coreutils
need readelf binutils

BIN="$ROOT/target/dist/entropyservice-$TARGET"
if [ ! -f "$BIN" ]; then
	need cargo "rustup, then: rustup target add $TARGET"
	BIN="$ROOT/target/openwrt/$TARGET/release/entropyservice"
	if ! (cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target/openwrt" \
		cargo build --quiet --release --target "$TARGET") >"$TMP/cargo.log" 2>&1; then
		fail "cargo build --release --target $TARGET (rustup target add $TARGET?)" "$(tail -n 20 "$TMP/cargo.log")"
		exit 1
	fi
fi
mkdir -p "$TMP/dist"
cp "$BIN" "$TMP/dist/entropyservice-$TARGET"

VERSION=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)-r1
IPK_NAME="entropyservice_${VERSION}_x86_64.ipk"
FEED="$TMP/feed"
IPK="$FEED/$IPK_NAME"

if "$BUILD" -o "$FEED" "$TMP/dist" >"$TMP/build.log" 2>&1; then
	pass "build-feed.sh builds a feed from $TMP/dist"
else
	fail "build-feed.sh failed" "$(cat "$TMP/build.log")"
	exit 1
fi
check "one ipk, named <package>_<version>-r<release>_<arch>.ipk" \
	[ "$(cd "$FEED" && echo *.ipk)" = "$IPK_NAME" ]
echo "# $IPK_NAME: $(wc -c <"$IPK") bytes, binary $(wc -c <"$BIN") bytes"

# --- outer archive ---------------------------------------------------------------
check "ipk is gzip (as ipkg-build makes it, not an ar archive)" \
	[ "$(od -An -tx1 -N2 "$IPK" | tr -d ' ')" = 1f8b ]
check "outer members in ipkg-build's order" \
	[ "$(tar -tzf "$IPK" | tr '\n' ' ')" = "./debian-binary ./data.tar.gz ./control.tar.gz " ]
check "debian-binary is 2.0 and a newline" [ "$(tar -xzOf "$IPK" ./debian-binary | od -An -c | tr -s ' ')" = " 2 . 0 \\n" ]

mkdir -p "$TMP/x/data" "$TMP/x/control"
tar -xzf "$IPK" -C "$TMP/x"
tar -xzf "$TMP/x/data.tar.gz" -C "$TMP/x/data"
tar -xzf "$TMP/x/control.tar.gz" -C "$TMP/x/control"

owners() { tar --numeric-owner -tvzf "$1" | awk '{ print $2 }' | sort -u | tr '\n' ' '; }
check "outer members owned by 0/0" [ "$(owners "$IPK")" = "0/0 " ]
check "data.tar.gz owned by 0/0" [ "$(owners "$TMP/x/data.tar.gz")" = "0/0 " ]
check "control.tar.gz owned by 0/0" [ "$(owners "$TMP/x/control.tar.gz")" = "0/0 " ]
stamp=$(TZ=UTC date -d "@$EPOCH" '+%Y-%m-%d %H:%M:%S')
mtimes() { TZ=UTC tar --full-time -tvzf "$1" | awk '{ print $4 " " $5 }' | sort -u; }
check "all mtimes are SOURCE_DATE_EPOCH" eval \
	"[ \"\$(mtimes '$IPK')\$(mtimes '$TMP/x/data.tar.gz')\$(mtimes '$TMP/x/control.tar.gz')\" = '$stamp$stamp$stamp' ]"

# --- data -------------------------------------------------------------------------
tar -tvzf "$TMP/x/data.tar.gz" | awk '{ print $1 " " $6 }' >"$TMP/data.list"
cat >"$TMP/data.want" <<'EOW'
drwxr-xr-x ./
drwxr-xr-x ./etc/
drwxr-xr-x ./etc/capabilities/
-rw-r--r-- ./etc/capabilities/entropyservice.json
drwxr-xr-x ./etc/config/
-rw------- ./etc/config/entropyservice
drwxr-xr-x ./etc/init.d/
-rwxr-xr-x ./etc/init.d/entropyservice
drwxr-xr-x ./etc/uci-defaults/
-rwxr-xr-x ./etc/uci-defaults/90-entropyservice
drwxr-xr-x ./lib/
drwxr-xr-x ./lib/upgrade/
drwxr-xr-x ./lib/upgrade/keep.d/
-rw-r--r-- ./lib/upgrade/keep.d/entropyservice
drwxr-xr-x ./usr/
drwxr-xr-x ./usr/bin/
-rwxr-xr-x ./usr/bin/entropyservice
EOW
if cmp -s "$TMP/data.list" "$TMP/data.want"; then
	pass "data.tar.gz: exactly the expected files, modes as INSTALL_BIN/CONF/DATA"
else
	fail "data.tar.gz listing" "$(diff "$TMP/data.want" "$TMP/data.list")"
fi
D="$TMP/x/data"
check "packed binary is the input binary" cmp -s "$D/usr/bin/entropyservice" "$BIN"
check "packed init script is openwrt/files/entropyservice.init" cmp -s "$D/etc/init.d/entropyservice" "$FILES/entropyservice.init"
check "packed config is openwrt/files/entropyservice.config" cmp -s "$D/etc/config/entropyservice" "$FILES/entropyservice.config"
check "packed uci-defaults is openwrt/files/entropyservice.uci-defaults" cmp -s "$D/etc/uci-defaults/90-entropyservice" "$FILES/entropyservice.uci-defaults"
check "packed capabilities are openwrt/files/entropyservice.capabilities.json" cmp -s "$D/etc/capabilities/entropyservice.json" "$FILES/entropyservice.capabilities.json"
check "sysupgrade keeps /etc/entropyservice/ (key and seed)" [ "$(cat "$D/lib/upgrade/keep.d/entropyservice")" = "/etc/entropyservice/" ]
for cap in bounding effective ambient permitted inheritable; do
	check "capabilities: $cap holds CAP_SYS_ADMIN only" eval \
		"tr -d ' \t\n' <'$D/etc/capabilities/entropyservice.json' | grep -q '\"$cap\":\\[\"CAP_SYS_ADMIN\"\\]'"
done

readelf -hldW "$D/usr/bin/entropyservice" >"$TMP/readelf.out" 2>&1
check "binary: ELF64 x86-64" eval "grep -q 'Class: *ELF64' '$TMP/readelf.out' && grep -q 'Machine: *Advanced Micro Devices X86-64' '$TMP/readelf.out'"
check "binary: static (no INTERP program header)" lacks_text "$TMP/readelf.out" "INTERP"
check "binary: static (no NEEDED entry)" lacks_text "$TMP/readelf.out" "(NEEDED)"

# --- control ------------------------------------------------------------------------
C="$TMP/x/control"
tar -tvzf "$TMP/x/control.tar.gz" | awk '{ print $1 " " $6 }' >"$TMP/control.list"
printf '%s\n' "drwxr-xr-x ./" "-rw-r--r-- ./conffiles" "-rw-r--r-- ./control" \
	"-rwxr-xr-x ./postinst" "-rwxr-xr-x ./prerm" >"$TMP/control.want"
if cmp -s "$TMP/control.list" "$TMP/control.want"; then
	pass "control.tar.gz: control, conffiles, postinst, prerm with their modes"
else
	fail "control.tar.gz listing" "$(diff "$TMP/control.want" "$TMP/control.list")"
fi
field() { sed -n "s/^$1: //p" "$C/control"; }
check "control: Package" [ "$(field Package)" = entropyservice ]
check "control: Version from Cargo.toml plus -r1" [ "$(field Version)" = "$VERSION" ]
check "control: Architecture" [ "$(field Architecture)" = x86_64 ]
check "control: Installed-Size is the unpacked data.tar size (as ipkg-build counts)" \
	[ "$(field Installed-Size)" = "$(gzip -dc "$TMP/x/data.tar.gz" | wc -c | tr -d ' ')" ]
check "control: Require-User makes default_postinst create the user" [ "$(field Require-User)" = "entropyservice:entropyservice" ]
check "control: License" [ "$(field License)" = "GPL-2.0-or-later" ]
check "control: Section, Source, SourceName, Maintainer present" \
	eval "[ -n \"\$(field Section)\" ] && [ -n \"\$(field Source)\" ] && [ \"\$(field SourceName)\" = entropyservice ] && [ -n \"\$(field Maintainer)\" ]"
check "control: SourceDateEpoch" [ "$(field SourceDateEpoch)" = "$EPOCH" ]
check "control: no Depends (static binary, no libc package needed)" lacks_text "$C/control" "Depends:"
check "control: Description last, continuation lines indented" \
	eval "[ \"\$(sed -n '/^Description:/,\$p' '$C/control' | sed -n '2,\$p' | grep -cv '^ ')\" = 0 ] && tail -n 1 '$C/control' | grep -q '^ '"
check "conffiles lists /etc/config/entropyservice" [ "$(cat "$C/conffiles")" = "/etc/config/entropyservice" ]
# shellcheck disable=SC2016
printf '%s\n' '#!/bin/sh' '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0' \
	'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
	'. ${IPKG_INSTROOT}/lib/functions.sh' 'default_postinst $0 $@' >"$TMP/postinst.want"
# shellcheck disable=SC2016
printf '%s\n' '#!/bin/sh' '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
	'. ${IPKG_INSTROOT}/lib/functions.sh' 'default_prerm $0 $@' >"$TMP/prerm.want"
check "postinst is package-pack.mk's default_postinst script" cmp -s "$C/postinst" "$TMP/postinst.want"
check "prerm is package-pack.mk's default_prerm script" cmp -s "$C/prerm" "$TMP/prerm.want"

# --- index --------------------------------------------------------------------------
{
	sed '/^Description:/,$d' "$C/control"
	echo "Filename: $IPK_NAME"
	echo "Size: $(wc -c <"$IPK" | tr -d ' ')"
	echo "SHA256sum: $(sha256sum "$IPK" | cut -d ' ' -f 1)"
	sed -n '/^Description:/,$p' "$C/control"
	echo
} >"$TMP/Packages.want"
if cmp -s "$FEED/Packages" "$TMP/Packages.want"; then
	pass "Packages: control stanza with Filename, Size and SHA256sum of the ipk"
else
	fail "Packages stanza" "$(diff "$TMP/Packages.want" "$FEED/Packages")"
fi
check "Packages.gz decompresses to Packages" eval "gzip -dc '$FEED/Packages.gz' | cmp -s - '$FEED/Packages'"

# --- reproducible, and refusals ------------------------------------------------------
"$BUILD" -o "$TMP/feed2" "$TMP/dist" >/dev/null 2>&1
check "a second build is byte-for-byte identical" eval \
	"cmp -s '$IPK' '$TMP/feed2/$IPK_NAME' && cmp -s '$FEED/Packages' '$TMP/feed2/Packages' && cmp -s '$FEED/Packages.gz' '$TMP/feed2/Packages.gz'"

mkdir -p "$TMP/dyn"
cp "$(command -v sh)" "$TMP/dyn/entropyservice-$TARGET"
readelf -lW "$TMP/dyn/entropyservice-$TARGET" | grep -q INTERP ||
	fail "this host's sh is static; the dynamic-binary refusal is not exercised"
if "$BUILD" -o "$TMP/feed-dyn" "$TMP/dyn" >"$TMP/dyn.log" 2>&1; then
	fail "a dynamically linked binary was packed"
else
	check "a dynamically linked binary is refused, saying why" has_text "$TMP/dyn.log" "not a static binary"
fi

mkdir -p "$TMP/wrong"
cp "$BIN" "$TMP/wrong/entropyservice-aarch64-unknown-linux-musl"
if "$BUILD" -o "$TMP/feed-wrong" "$TMP/wrong" >"$TMP/wrong.log" 2>&1; then
	fail "an x86-64 binary was packed as aarch64"
else
	check "a binary of the wrong architecture is refused, saying why" has_text "$TMP/wrong.log" \
		"is ELF class/data/machine '2 1 62', but aarch64-unknown-linux-musl needs '2 1 183'"
fi

if command -v usign >/dev/null 2>&1; then
	usign -G -s "$TMP/key.sec" -p "$TMP/key.pub" >/dev/null 2>&1
	"$BUILD" -o "$TMP/feed-signed" -k "$TMP/key.sec" "$TMP/dist" >/dev/null 2>&1
	check "-k signs Packages with usign" usign -V -m "$TMP/feed-signed/Packages" -p "$TMP/key.pub" -q
else
	: >"$TMP/key.sec"
	if "$BUILD" -o "$TMP/feed-signed" -k "$TMP/key.sec" "$TMP/dist" >"$TMP/sign.log" 2>&1; then
		fail "-k without usign installed did not fail"
	else
		check "-k without usign fails and says usign is missing" has_text "$TMP/sign.log" "needs OpenWrt's usign, which is not installed"
	fi
fi

# --- the cross builds, when scripts/cross-build.sh has made them ------------------------
if ls "$ROOT"/target/dist/entropyservice-* >/dev/null 2>&1; then
	if "$BUILD" -o "$TMP/feed-dist" "$ROOT/target/dist" >"$TMP/dist.log" 2>&1; then
		n=0
		for ipk in "$TMP/feed-dist"/*.ipk; do
			n=$((n + 1))
			echo "# ${ipk##*/}: $(wc -c <"$ipk") bytes"
		done
		pass "feed from target/dist ($n ipk)"
	else
		fail "feed from target/dist" "$(cat "$TMP/dist.log")"
	fi
fi
