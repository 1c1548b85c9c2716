#!/usr/bin/env bash
# Build the Debian package from a static binary made by scripts/cross-build.sh,
# with dpkg-deb and the files in this directory (no debhelper, no cargo-deb:
# the binary is already built and checked, and this needs nothing beyond dpkg).
#
#   dist/debian/build-deb.sh [RUST_TARGET]   # default x86_64-unknown-linux-musl
#
# DEB_MAINTAINER sets the Maintainer field ("Name <mail>"; the default is a
# placeholder that lintian flags). Reads target/dist/entropyservice-RUST_TARGET; writes
# target/dist/entropyservice_VERSION-1_ARCH.deb and prints its path.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ES_SCRIPT=build-deb
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

TARGET=${1:-x86_64-unknown-linux-musl}
case "$TARGET" in
x86_64-unknown-linux-musl) ARCH=amd64 ;;
aarch64-unknown-linux-musl) ARCH=arm64 ;;
armv7-unknown-linux-musleabihf) ARCH=armhf ;;
*) die "no Debian architecture for $TARGET (x86_64, aarch64 or armv7 musl)" ;;
esac
BIN=$ROOT/target/dist/entropyservice-$TARGET
[ -x "$BIN" ] || die "$BIN missing: run scripts/cross-build.sh $TARGET first"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb missing (Debian's dpkg package)"

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
[ -n "$VERSION" ] || die "no version in Cargo.toml"
DEBVER=$VERSION-1
MAINTAINER=${DEB_MAINTAINER:-entropyservice developers <entropyservice@localhost>}
OUT=$ROOT/target/dist/entropyservice_${DEBVER}_$ARCH.deb

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/es-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/entropyservice
DOC=$PKG/usr/share/doc/entropyservice
install -d -m 0755 "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/lib/systemd/system" "$DOC" \
    "$PKG/usr/share/lintian/overrides"
install -d -m 0750 "$PKG/etc/entropyservice"
install -m 0755 "$BIN" "$PKG/usr/bin/entropyservice"
install -m 0644 "$ROOT/dist/systemd/entropyservice-seed.service" \
    "$ROOT/dist/systemd/entropyservice@.service" "$PKG/lib/systemd/system/"
install -m 0644 "$ROOT/dist/systemd/example.conf" "$PKG/etc/entropyservice/example.conf"
install -m 0644 "$ROOT/README.md" "$ROOT/dist/debian/copyright" "$DOC/"
gzip -9n "$DOC/README.md"
install -m 0644 "$ROOT/dist/debian/lintian-overrides" "$PKG/usr/share/lintian/overrides/entropyservice"

# Reproducible: every time stamp is the last commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
{
    printf 'entropyservice (%s) unstable; urgency=medium\n\n' "$DEBVER"
    printf '  * Release %s.\n\n' "$VERSION"
    printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$DOC/changelog.Debian.gz"

install -m 0644 "$ROOT/dist/debian/conffiles" "$PKG/DEBIAN/conffiles"
install -m 0755 "$ROOT/dist/debian/postinst" "$ROOT/dist/debian/prerm" \
    "$ROOT/dist/debian/postrm" "$PKG/DEBIAN/"
SIZE_KB=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$DEBVER/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$SIZE_KB/" \
    -e "s|@MAINTAINER@|$MAINTAINER|" \
    "$ROOT/dist/debian/control.in" >"$PKG/DEBIAN/control"
find "$PKG" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

dpkg-deb --root-owner-group -Zxz --build "$PKG" "$OUT" >/dev/null \
    || die "dpkg-deb --build failed"
echo "$OUT"
