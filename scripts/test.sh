#!/usr/bin/env bash
# The project's whole test suite, as the README and CI run it. Needs root
# (RNDADDENTROPY, mount and network namespaces, sshd) and the tools that
# .ci/run installs. Each stage prints its wall time; any failure stops the run.
#
#   scripts/test.sh            # everything
#   scripts/test.sh host       # only the host cargo tests and shell tests
#   ES_TEST_FROM="cross builds" scripts/test.sh   # from that stage on
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: the tests need root (CI runs as root)" >&2; exit 77; }

# ES_TEST_FROM=PREFIX skips the stages before the first whose name starts
# with PREFIX (to rerun the tail of a failed run).
FROM=${ES_TEST_FROM:-}
stage() {
  local name=$1; shift
  if [ -n "$FROM" ]; then
    case "$name" in "$FROM"*) FROM= ;; *) echo "=== $name: skipped (ES_TEST_FROM)"; return 0 ;; esac
  fi
  local t0=$SECONDS
  echo "=== $name"
  "$@"
  echo "=== $name: $((SECONDS - t0)) s"
}

stage "cargo test (host: unit, offline, Dropbear and OpenSSH end to end)" cargo test --locked
stage "the README's demo (scripts/demo.sh), checked" scripts/demo-check.sh
stage "feed tool (es-feed): clippy, and tests against the real usign and apk 3 vectors in ../shared/vectors" \
  sh -c 'cargo clippy --locked -p es-feed --all-targets -- -D warnings && cargo test --locked -p es-feed'
stage "OpenWrt shell tests (init script, uci-defaults, feed)" tests/openwrt/run.sh
[ "${1:-all}" = host ] && exit 0
stage "cross builds: six static targets within budget" scripts/cross-build.sh
stage "cross builds through cross in a container: same checks, byte-identical" scripts/cross-docker.sh
stage "OpenWrt feeds (opkg + apk v3) from the cross-built binaries, throwaway keys, checked by es-feed" \
  sh tests/openwrt/test_feed.sh dist
stage "Debian package and systemd units under a real systemd (container)" tests/systemd/run.sh
stage "unit and offline tests under qemu-user (mips, armv7)" scripts/qemu-user-test.sh
stage "real MIPS kernel in qemu-system-mipsel" tests/vm/run.sh
stage "fuzz every outside-data parser (${FUZZ_SECONDS:-60} s each)" scripts/fuzz.sh
