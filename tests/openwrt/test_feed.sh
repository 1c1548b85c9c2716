#!/bin/sh
# openwrt/build-feed.sh (tools/feed, es-feed): builds both signed feeds from a
# static x86_64 musl binary, takes the .ipk apart with standard tools (tar,
# gzip, sha256sum, readelf) against OpenWrt's scripts/ipkg-build layout, and
# checks signatures and the apk v3 side with es-feed's own reader.
#   REAL:      build-feed.sh and es-feed, the files they pack, a static musl
#              router build of entropyservice (target/dist/router/
#              entropyservice-x86_64-unknown-linux-musl when
#              scripts/cross-build.sh made one, else built here with cargo
#              --no-default-features into target/openwrt), GNU tar and gzip
#              reading the .ipk, usign's and apk's formats as checked by the
#              known-answer tests of `cargo test -p es-feed` (../shared/vectors).
#   NOT HERE:  opkg and apk themselves installing the packages (need an
#              OpenWrt system; Debian packages neither).
#
#   test_feed.sh        the x86_64 checks above
#   test_feed.sh dist   both feeds from every router build scripts/cross-build.sh
#                       left in target/dist/router (all targets of scripts/targets.tsv
#                       must be there), signed with throwaway keys, checked
#                       with es-feed check; prints the .ipk and .apk sizes.
# Needs: cargo, GNU tar, gzip, sha256sum, readelf (binutils); cargo with the
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
LC_ALL=C
export LC_ALL

need cargo "rustup (https://rustup.rs)"
need tar tar
need gzip gzip
need sha256sum coreutils
need readelf binutils

if ! (cd "$ROOT" && cargo build -q --release --locked -p es-feed) >"$TMP/tool.log" 2>&1; then
	fail "cargo build -p es-feed" "$(tail -n 20 "$TMP/tool.log")"
	exit 1
fi
ES="${CARGO_TARGET_DIR:-$ROOT/target}/release/es-feed"
case "$ES" in /*) ;; *) ES="$ROOT/$ES" ;; esac

# Throwaway keys, made by es-feed itself.
if ! "$ES" usign-keygen -s "$TMP/usign.sec" -p "$TMP/usign.pub" -c "throwaway test key" >"$TMP/usign.id" ||
	! "$ES" apk-keygen --private "$TMP/apk.pem" --public "$TMP/apk.pub.pem" >/dev/null; then
	fail "es-feed usign-keygen / apk-keygen"
	exit 1
fi
check "usign secret key is mode 600" [ "$(stat -c %a "$TMP/usign.sec")" = 600 ]
check "apk private key is mode 600" [ "$(stat -c %a "$TMP/apk.pem")" = 600 ]
check "apk private key is an EC PRIVATE KEY PEM (what openssl ecparam writes)" has_line "$TMP/apk.pem" "-----BEGIN EC PRIVATE KEY-----"
check "usign keygen prints the key id (16 hex digits at most)" eval "grep -Eqx '[0-9a-f]{1,16}' '$TMP/usign.id'"
KEYS="-u $TMP/usign.sec -a $TMP/apk.pem"

VERSION=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)-r1

if [ "${1:-}" = dist ]; then
	# --- the cross builds ----------------------------------------------------------
	arches=
	missing=
	while IFS="$(printf '\t')" read -r target archlist _; do
		case "$target" in '#'* | '') continue ;; esac
		if [ -f "$ROOT/target/dist/router/entropyservice-$target" ]; then
			arches="$arches $(echo "$archlist" | tr ',' ' ')"
		else
			missing="$missing $target"
		fi
	done <"$ROOT/scripts/targets.tsv"
	if [ -n "$missing" ]; then
		fail "target/dist/router lacks the router builds of:$missing (run scripts/cross-build.sh)"
		exit 1
	fi
	# shellcheck disable=SC2086
	if "$BUILD" $KEYS -o "$TMP/feed" "$ROOT/target/dist/router" >"$TMP/dist.log" 2>&1; then
		pass "both feeds built from target/dist/router"
	else
		fail "build-feed.sh from target/dist/router" "$(cat "$TMP/dist.log")"
		exit 1
	fi
	set --
	for a in $arches; do set -- "$@" --arch "$a"; done
	rc=0
	if "$ES" check --usign-pub "$TMP/usign.pub" --apk-pub "$TMP/apk.pub.pem" "$@" "$TMP/feed" >"$TMP/check.log" 2>&1; then
		pass "es-feed check: every architecture signed and consistent ($(wc -l <"$TMP/check.log") architectures)"
	else
		fail "es-feed check of the feed from target/dist/router" "$(cat "$TMP/check.log")"
		rc=1
	fi
	sed 's/^/# /' "$TMP/check.log"
	exit "$rc"
fi

BIN="$ROOT/target/dist/router/entropyservice-$TARGET"
if [ ! -f "$BIN" ]; then
	BIN="$ROOT/target/openwrt/$TARGET/release/entropyservice"
	if ! (cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target/openwrt" \
		cargo build --quiet --release --no-default-features --target "$TARGET") >"$TMP/cargo.log" 2>&1; then
		fail "cargo build --release --no-default-features --target $TARGET (rustup target add $TARGET?)" "$(tail -n 20 "$TMP/cargo.log")"
		exit 1
	fi
fi
mkdir -p "$TMP/dist"
cp "$BIN" "$TMP/dist/entropyservice-$TARGET"

IPK_NAME="entropyservice_${VERSION}_x86_64.ipk"
APK_NAME="entropyservice-${VERSION}.apk"
FEED="$TMP/feed"
OPKG="$FEED/opkg/x86_64"
APK="$FEED/apk/x86_64"
IPK="$OPKG/$IPK_NAME"

# shellcheck disable=SC2086
if "$BUILD" $KEYS -o "$FEED" "$TMP/dist" >"$TMP/build.log" 2>&1; then
	pass "build-feed.sh builds both feeds from $TMP/dist"
else
	fail "build-feed.sh failed" "$(cat "$TMP/build.log")"
	exit 1
fi
check "opkg feed: one ipk, named <package>_<version>-r<release>_<arch>.ipk" \
	[ "$(cd "$OPKG" && echo *)" = "Packages Packages.gz Packages.sig $IPK_NAME" ]
check "apk feed: one apk named <package>-<version>-r<release>.apk beside packages.adb" \
	[ "$(cd "$APK" && echo *)" = "$APK_NAME packages.adb" ]
check "public keys published beside the feeds" \
	[ "$(cd "$FEED/keys" && echo *)" = "entropyservice-feed.pem entropyservice-feed.usign.pub" ]
echo "# $IPK_NAME: $(wc -c <"$IPK") bytes, $APK_NAME: $(wc -c <"$APK/$APK_NAME") bytes, binary $(wc -c <"$BIN") bytes"

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
drwxr-xr-x ./etc/hotplug.d/
drwxr-xr-x ./etc/hotplug.d/iface/
-rw-r--r-- ./etc/hotplug.d/iface/90-entropyservice
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
# The router package carries the router build: it answers the admin commands
# with "not in this build" (the full build has no such text).
"$D/usr/bin/entropyservice" authorize >"$TMP/authorize.out" 2>&1
check "packed binary is the router build: \`authorize\` is not in it (status 64)" \
	eval "[ $? = 64 ] && grep -q 'not in this build' '$TMP/authorize.out'"
check "packed init script is openwrt/files/entropyservice.init" cmp -s "$D/etc/init.d/entropyservice" "$FILES/entropyservice.init"
check "packed config is openwrt/files/entropyservice.config" cmp -s "$D/etc/config/entropyservice" "$FILES/entropyservice.config"
check "packed uci-defaults is openwrt/files/entropyservice.uci-defaults" cmp -s "$D/etc/uci-defaults/90-entropyservice" "$FILES/entropyservice.uci-defaults"
check "packed capabilities are openwrt/files/entropyservice.capabilities.json" cmp -s "$D/etc/capabilities/entropyservice.json" "$FILES/entropyservice.capabilities.json"
check "packed hotplug script is openwrt/files/entropyservice.hotplug" cmp -s "$D/etc/hotplug.d/iface/90-entropyservice" "$FILES/entropyservice.hotplug"
check "sysupgrade keeps the client key, never the seeds" [ "$(cat "$D/lib/upgrade/keep.d/entropyservice")" = "$(printf '%s\n' /etc/entropyservice/id_client /etc/entropyservice/id_client.pub)" ]
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
check "conffiles lists the UCI file and the client key (openwrt/Makefile's conffiles)" [ "$(cat "$C/conffiles")" = "$(printf '%s\n' /etc/config/entropyservice /etc/entropyservice/id_client /etc/entropyservice/id_client.pub)" ]
# shellcheck disable=SC2016
printf '%s\n' '#!/bin/sh' '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0' \
	'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
	'. ${IPKG_INSTROOT}/lib/functions.sh' 'default_postinst $0 $@' >"$TMP/postinst.want"
# shellcheck disable=SC2016
printf '%s\n' '#!/bin/sh' '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
	'. ${IPKG_INSTROOT}/lib/functions.sh' 'default_prerm $0 $@' >"$TMP/prerm.want"
check "postinst is package-pack.mk's default_postinst script" cmp -s "$C/postinst" "$TMP/postinst.want"
check "prerm is package-pack.mk's default_prerm script" cmp -s "$C/prerm" "$TMP/prerm.want"

# --- index and its signature ------------------------------------------------------------
{
	sed '/^Description:/,$d' "$C/control"
	echo "Filename: $IPK_NAME"
	echo "Size: $(wc -c <"$IPK" | tr -d ' ')"
	echo "SHA256sum: $(sha256sum "$IPK" | cut -d ' ' -f 1)"
	sed -n '/^Description:/,$p' "$C/control"
	echo
} >"$TMP/Packages.want"
if cmp -s "$OPKG/Packages" "$TMP/Packages.want"; then
	pass "Packages: control stanza with Filename, Size and SHA256sum of the ipk"
else
	fail "Packages stanza" "$(diff "$TMP/Packages.want" "$OPKG/Packages")"
fi
check "Packages.gz decompresses to Packages" eval "gzip -dc '$OPKG/Packages.gz' | cmp -s - '$OPKG/Packages'"
check "Packages.sig: usign format, signed by the throwaway key" \
	has_line "$OPKG/Packages.sig" "untrusted comment: signed by key $(cat "$TMP/usign.id")"
check "Packages.sig verifies with the usign public key" eval \
	"'$ES' usign-verify -p '$TMP/usign.pub' -m '$OPKG/Packages' -x '$OPKG/Packages.sig' 2>/dev/null"
check "the published usign key is the throwaway key" eval \
	"[ \"\$(sed -n 2p '$FEED/keys/entropyservice-feed.usign.pub')\" = \"\$(sed -n 2p '$TMP/usign.pub')\" ]"
cp "$OPKG/Packages" "$TMP/Packages.changed"
echo >>"$TMP/Packages.changed"
if "$ES" usign-verify -p "$TMP/usign.pub" -m "$TMP/Packages.changed" -x "$OPKG/Packages.sig" 2>"$TMP/v.log"; then
	fail "a changed Packages verified"
else
	check "a changed Packages fails verification" has_text "$TMP/v.log" "verification failed"
fi

# --- apk v3 -----------------------------------------------------------------------------
check "apk and index verify with the apk public key (signatures, sizes, SHA-256 of every file)" eval \
	"'$ES' apk-verify --key '$TMP/apk.pub.pem' '$APK/$APK_NAME' '$APK/packages.adb' >/dev/null"
check "the published apk key is the throwaway key" cmp -s "$FEED/keys/entropyservice-feed.pem" "$TMP/apk.pub.pem"
check "apk is deflate-compressed ADB (ADBd), which the router's apk reads without zstd" \
	[ "$(head -c 4 "$APK/$APK_NAME")" = ADBd ]
"$ES" dump --key "$TMP/apk.pub.pem" "$APK/$APK_NAME" >"$TMP/apk.dump"
"$ES" dump --key "$TMP/apk.pub.pem" "$APK/packages.adb" >"$TMP/adb.dump"
check "apk: package schema" has_line "$TMP/apk.dump" "#%SCHEMA: 676B6370"
check "apk: version $VERSION" has_line "$TMP/apk.dump" "  version: $VERSION"
check "apk: arch x86_64" has_line "$TMP/apk.dump" "  arch: x86_64"
check "apk: no depends (static binary)" lacks_text "$TMP/apk.dump" "depends:"
check "apk: signature OK with the public key" eval "grep -q '^# sig v00 h04 .*: OK\$' '$TMP/apk.dump'"
check "apk: post-install, pre-deinstall and post-upgrade scripts" eval \
	"grep -qx '  post-install: |' '$TMP/apk.dump' && grep -qx '  pre-deinstall: |' '$TMP/apk.dump' && grep -qx '  post-upgrade: |' '$TMP/apk.dump'"
check "apk: post-install creates the user and runs default_postinst" eval \
	"grep -qx '    add_group_and_user' '$TMP/apk.dump' && grep -qx '    default_postinst' '$TMP/apk.dump'"
check "apk: lib/apk/packages/ has .list, .conffiles, .conffiles_static, .rusers" eval \
	"for f in list conffiles conffiles_static rusers; do grep -qx \"      - name: entropyservice.\$f\" '$TMP/apk.dump' || exit 1; done"
check "apk: /etc/config/entropyservice is 0600 root:root" eval \
	"grep -A6 -x '      - name: entropyservice' '$TMP/apk.dump' | grep -qx '          mode: 0600'"
check "index: one package, the apk's size" has_line "$TMP/adb.dump" "    file-size: $(wc -c <"$APK/$APK_NAME" | tr -d ' ')"
check "index: signature OK with the public key" eval "grep -q '^# sig v00 h04 .*: OK\$' '$TMP/adb.dump'"
"$ES" apk-keygen --private "$TMP/other.pem" --public "$TMP/other.pub.pem" >/dev/null
if "$ES" apk-verify --key "$TMP/other.pub.pem" "$APK/$APK_NAME" >"$TMP/wrongkey.log" 2>&1; then
	fail "the apk verified with another key"
else
	check "the apk does not verify with another key" has_text "$TMP/wrongkey.log" "another key"
fi
if "$ES" check --usign-pub "$TMP/usign.pub" --apk-pub "$TMP/apk.pub.pem" --arch x86_64 "$FEED" >"$TMP/check.log" 2>&1; then
	pass "es-feed check: the whole feed is consistent and signed"
else
	fail "es-feed check" "$(cat "$TMP/check.log")"
fi

# --- reproducible, and refusals ------------------------------------------------------
# shellcheck disable=SC2086
"$BUILD" $KEYS -o "$TMP/feed2" "$TMP/dist" >/dev/null 2>&1
check "a second build: same ipk, Packages, Packages.gz and Packages.sig, byte for byte" eval \
	"cmp -s '$IPK' '$TMP/feed2/opkg/x86_64/$IPK_NAME' && cmp -s '$OPKG/Packages' '$TMP/feed2/opkg/x86_64/Packages' && cmp -s '$OPKG/Packages.gz' '$TMP/feed2/opkg/x86_64/Packages.gz' && cmp -s '$OPKG/Packages.sig' '$TMP/feed2/opkg/x86_64/Packages.sig'"
"$ES" dump "$TMP/feed2/apk/x86_64/$APK_NAME" | grep -v '^# sig' >"$TMP/apk2.dump"
check "a second build: the same apk apart from the ECDSA signature" eval \
	"grep -v '^# sig' '$TMP/apk.dump' | cmp -s - '$TMP/apk2.dump'"

mkdir -p "$TMP/dyn"
cp "$(command -v sh)" "$TMP/dyn/entropyservice-$TARGET"
readelf -lW "$TMP/dyn/entropyservice-$TARGET" | grep -q INTERP ||
	fail "this host's sh is static; the dynamic-binary refusal is not exercised"
# shellcheck disable=SC2086
if "$BUILD" $KEYS -o "$TMP/feed-dyn" "$TMP/dyn" >"$TMP/dyn.log" 2>&1; then
	fail "a dynamically linked binary was packed"
else
	check "a dynamically linked binary is refused, saying why" has_text "$TMP/dyn.log" "not a static binary"
fi

mkdir -p "$TMP/wrong"
cp "$BIN" "$TMP/wrong/entropyservice-aarch64-unknown-linux-musl"
# shellcheck disable=SC2086
if "$BUILD" $KEYS -o "$TMP/feed-wrong" "$TMP/wrong" >"$TMP/wrong.log" 2>&1; then
	fail "an x86-64 binary was packed as aarch64"
else
	check "a binary of the wrong architecture is refused, saying why" has_text "$TMP/wrong.log" \
		"is ELF class/data/machine '2 1 62', but aarch64-unknown-linux-musl needs '2 1 183'"
fi

if "$BUILD" -o "$TMP/feed-unsigned" "$TMP/dist" >"$TMP/nokey.log" 2>&1; then
	fail "a feed was built without signing keys"
else
	check "no usign key: refused, saying what to do" has_text "$TMP/nokey.log" "-u USIGN_SECRET_KEY is needed"
fi
chmod 644 "$TMP/usign.sec"
# shellcheck disable=SC2086
if "$BUILD" $KEYS -o "$TMP/feed-loose" "$TMP/dist" >"$TMP/loose.log" 2>&1; then
	fail "a group/world-readable secret key was used"
else
	check "a group/world-readable secret key is refused" has_text "$TMP/loose.log" "chmod 600"
fi
chmod 600 "$TMP/usign.sec"
if "$ES" usign-keygen -s "$TMP/usign.sec" -p "$TMP/other.pub" >"$TMP/over.log" 2>&1; then
	fail "usign-keygen overwrote an existing key"
else
	check "usign-keygen never overwrites a key" has_text "$TMP/over.log" "not overwriting a key"
fi
