#!/bin/sh
# The OpenWrt packaging tests: tests/openwrt/run.sh from anywhere.
# Exits non-zero when any check fails; the last line is "N passed, N failed".
# Needs (Debian): shellcheck busybox dropbear-bin make binutils, GNU tar,
# gzip, and cargo with the x86_64-unknown-linux-musl target unless
# target/dist/entropyservice-x86_64-unknown-linux-musl already exists.
# A missing tool is a failed check, never a skip.
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp "${TMPDIR:-/tmp}/es-openwrt-tests.XXXXXX")
trap 'rm -f "$OUT"' EXIT

# run NAME COMMAND...: a test script's lines pass through; one that dies
# without saying "not ok" still counts as a failure.
run() {
	name="$1"
	shift
	echo "# $name"
	"$@" >"$OUT" 2>&1
	rc=$?
	cat "$OUT"
	cat "$OUT" >>"$OUT.all"
	if [ "$rc" != 0 ] && ! grep -q '^not ok' "$OUT"; then
		echo "not ok - $name exited with status $rc" | tee -a "$OUT.all"
	fi
}
: >"$OUT.all"
trap 'rm -f "$OUT" "$OUT.all"' EXIT

# The init script's `client --check` runs the real binary (the host build,
# brought up to date: a stale one would judge with old rules).
if [ -z "${ES_REAL_BIN:-}" ]; then
	ES_REAL_BIN="$HERE/../../target/debug/entropyservice"
	(cd "$HERE/../.." && cargo build --quiet --bin entropyservice) ||
		echo "not ok - cannot build target/debug/entropyservice for the init tests" | tee -a "$OUT.all"
fi
export ES_REAL_BIN

run static sh "$HERE/test_static.sh"
if command -v busybox >/dev/null 2>&1; then
	run "init script (busybox ash)" env TEST_SHELL_NAME=ash busybox ash "$HERE/test_init.sh"
else
	echo "not ok - init script: needs busybox (apt-get install -y busybox) for OpenWrt's ash" >>"$OUT.all"
fi
run "init script (dash)" env TEST_SHELL_NAME=dash dash "$HERE/test_init.sh"
run uci-defaults sh "$HERE/test_uci_defaults.sh"
run feed sh "$HERE/test_feed.sh"

grep '^not ok' "$OUT.all" | sed 's/^/FAILED: /'
passed=$(grep -c '^ok' "$OUT.all")
failed=$(grep -c '^not ok' "$OUT.all")
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
