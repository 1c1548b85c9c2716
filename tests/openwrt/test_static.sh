#!/bin/sh
# Static checks of the OpenWrt packaging files, and the package Makefile's
# install recipe.
#   REAL:      the init script, uci-defaults, build-feed.sh and these tests
#              (sh -n under dash and busybox ash, shellcheck -s sh);
#              openwrt/Makefile and openwrt/files (run by GNU make).
#   STOOD IN:  the OpenWrt SDK around the Makefile: rules.mk (INSTALL_* as
#              OpenWrt defines them), include/package.mk (a BuildPackage that
#              only runs Package/entropyservice/install and prints its fields)
#              and the packages feed's lang/rust/rust-package.mk; the cargo
#              build itself is not run (it needs the SDK's Rust toolchain).
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-static.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

need shellcheck shellcheck
need busybox busybox
need dash dash
need make make

SCRIPTS="openwrt/files/entropyservice.init openwrt/files/entropyservice.uci-defaults openwrt/files/entropyservice.hotplug openwrt/build-feed.sh"
TESTS="tests/openwrt/run.sh tests/openwrt/lib.sh tests/openwrt/openwrt-stubs.sh tests/openwrt/validate_data tests/openwrt/test_static.sh tests/openwrt/test_init.sh tests/openwrt/test_uci_defaults.sh tests/openwrt/test_feed.sh"

cd "$ROOT" || exit 1
for f in $SCRIPTS; do
	check "dash -n $f" dash -n "$f"
	check "busybox ash -n $f" busybox ash -n "$f"
done
for f in $SCRIPTS $TESTS; do
	if out=$(shellcheck -s sh -x -P SCRIPTDIR "$f" 2>&1); then
		pass "shellcheck -s sh $f"
	else
		fail "shellcheck -s sh $f" "$out"
	fi
done

# --- the Makefile with a stand-in SDK -----------------------------------------
S="$TMP/sdk"
P="$S/feeds/packages/utils/entropyservice"
mkdir -p "$S/include" "$S/feeds/packages/lang/rust" "$S/pkg-install/bin" "$P"
cp -R "$ROOT/openwrt/Makefile" "$ROOT/openwrt/files" "$P/"
printf '#!/bin/sh\n' >"$S/pkg-install/bin/entropyservice"
cat >"$S/rules.mk" <<'EOM'
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
EOM
# BuildPackage: each package's fields as evaluated from its own definition
# (one line per package), its conffiles and install recipe into DEST/PKG.
cat >"$S/include/package.mk" <<'EOM'
PKG_INSTALL_DIR:=$(TOPDIR)/pkg-install
define BuildPackage
$$(eval VARIANT:=)
$$(eval DEFAULT_VARIANT:=)
$$(eval PROVIDES:=)
$$(eval CONFLICTS:=)
$$(eval $$(Package/$(1)))
INFO_$(1):=PACKAGE=$(1) VARIANT=$$(VARIANT) DEFAULT_VARIANT=$$(DEFAULT_VARIANT) PROVIDES=$$(PROVIDES) CONFLICTS=$$(CONFLICTS)
check: check-$(1)
check-$(1):
	@echo "VERSION=$(PKG_VERSION)-r$(PKG_RELEASE)"
	@echo "BUILD_DEPENDS=$(PKG_BUILD_DEPENDS)"
	@echo "DEPENDS=$$(DEPENDS)"
	@echo "USERID=$$(USERID)"
	@echo "$$(INFO_$(1))"
	$$(file >$(DEST)/$(1).conffiles,$$(Package/$(1)/conffiles))
	$$(call Package/$(1)/install,$(DEST)/$(1))
endef
compile:
	$(Build/Compile)
EOM
# Build/Compile/Cargo prints the extra cargo arguments it was given.
cat >"$S/feeds/packages/lang/rust/rust-package.mk" <<'EOM'
RUST_ARCH_DEPENDS:=@(aarch64||arm||mips||mipsel||x86_64)
define RustBinPackage
endef
define Build/Compile/Cargo
	@echo "cargo install [$(strip $(2))]"
endef
Build/Compile=$(call Build/Compile/Cargo)
EOM
mkdir -p "$TMP/dest"
if make -s -C "$P" TOPDIR="$S" DEST="$TMP/dest" check >"$TMP/make.out" 2>&1; then
	pass "Makefile: the install recipe runs"
else
	fail "Makefile: the install recipe runs" "$(cat "$TMP/make.out")"
fi
version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
check "Makefile: PKG_VERSION matches Cargo.toml ($version)" has_line "$TMP/make.out" "VERSION=$version-r1"
check "Makefile: builds with rust/host" has_line "$TMP/make.out" "BUILD_DEPENDS=rust/host"
check "Makefile: DEPENDS on RUST_ARCH_DEPENDS" has_line "$TMP/make.out" "DEPENDS=@(aarch64||arm||mips||mipsel||x86_64)"
check "Makefile: USERID for the jail's user" has_line "$TMP/make.out" "USERID=entropyservice:entropyservice"
# No seed in conffiles (they go into keep.d and `sysupgrade -b` backups): a
# backup restored onto several routers would credit one seed on each.
for pkg in entropyservice entropyservice-full; do
	check "Makefile: $pkg: conffiles are the UCI file and the client key, no seed" \
		[ "$(cat "$TMP/dest/$pkg.conffiles" 2>/dev/null)" = "/etc/config/entropyservice
/etc/entropyservice/id_client
/etc/entropyservice/id_client.pub" ]
done
# The variants, as dnsmasq / dnsmasq-full: the router build is the default
# package; the full build provides and conflicts with it.
check "Makefile: entropyservice is the router variant, the default" has_line "$TMP/make.out" \
	"PACKAGE=entropyservice VARIANT=router DEFAULT_VARIANT=1 PROVIDES= CONFLICTS="
check "Makefile: entropyservice-full is the full variant, provides and conflicts with entropyservice" has_line "$TMP/make.out" \
	"PACKAGE=entropyservice-full VARIANT=full DEFAULT_VARIANT= PROVIDES=entropyservice CONFLICTS=entropyservice"
for v in router full; do
	make -s -C "$P" TOPDIR="$S" BUILD_VARIANT=$v compile >"$TMP/compile-$v.out" 2>&1
done
check "Makefile: the router variant builds with cargo --no-default-features" \
	has_line "$TMP/compile-router.out" "cargo install [--no-default-features]"
check "Makefile: the full variant builds with the default features" \
	has_line "$TMP/compile-full.out" "cargo install []"
check "Makefile: says to copy, not link, the package directory" \
	eval "grep -q 'a copy,\$' '$ROOT/openwrt/Makefile' && ! grep -q 'copy or link' '$ROOT/openwrt/Makefile'"
(cd "$TMP/dest/entropyservice" 2>/dev/null && find . -type f -exec stat -c '%a %n' {} + | sort) >"$TMP/dest.list"
printf '%s\n' "600 ./etc/config/entropyservice" "644 ./etc/capabilities/entropyservice.json" \
	"644 ./etc/hotplug.d/iface/90-entropyservice" \
	"755 ./etc/init.d/entropyservice" "755 ./etc/uci-defaults/90-entropyservice" \
	"755 ./usr/bin/entropyservice" >"$TMP/dest.want"
if cmp -s "$TMP/dest.list" "$TMP/dest.want"; then
	pass "Makefile: installs the package's files with their modes"
else
	fail "Makefile: installed files" "$(diff "$TMP/dest.want" "$TMP/dest.list")"
fi
(cd "$TMP/dest/entropyservice-full" 2>/dev/null && find . -type f -exec stat -c '%a %n' {} + | sort) >"$TMP/dest-full.list"
check "Makefile: entropyservice-full installs the same files" cmp -s "$TMP/dest-full.list" "$TMP/dest.want"
