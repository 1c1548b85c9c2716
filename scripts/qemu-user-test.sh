#!/usr/bin/env bash
# Run the project's tests for foreign targets under qemu-user-static:
#   - the unit tests inside src/ (cargo test --lib --bins), all of them;
#   - the integration tests in tests/tests.rs that need no SSH (module `offline`).
# for mips-unknown-linux-musl (big-endian, 32-bit, the OpenWrt mips_24kc case)
# and armv7-unknown-linux-musleabihf.
#
#   scripts/qemu-user-test.sh                 # both targets
#   scripts/qemu-user-test.sh mips-unknown-linux-musl
#
# ENTROPYSERVICE_QEMU_USER=1 is set for the tests: qemu-user translates
# RNDGETENTCNT/RNDADDTOENTCNT/RNDRESEEDCRNG but not RNDADDENTROPY (ENOSYS),
# and the kernel tests accept exactly that when they see the variable.
#
# Test binaries run through the cargo runner in .cargo/config.toml
# (qemu-<arch>-static). The integration tests spawn the foreign
# CARGO_BIN_EXE_entropyservice themselves, which needs the kernel to know how to
# exec a MIPS/ARM ELF: this script mounts binfmt_misc if needed and registers
# Debian's qemu-user-static entries (/usr/lib/binfmt.d/qemu-{mips,arm}.conf,
# flags OPF) unless they are there already. That is a machine-wide setting, the
# same one Debian's qemu-user-static + systemd-binfmt would make at boot.
# QEMU_USER_TEST_NO_BINFMT=1 skips that and runs only the unit tests.
#
# Environment: CARGO_TARGET_DIR (default target/qemu-user), NIGHTLY (default
# nightly), QEMU_USER_TEST_TIMEOUT (seconds per cargo invocation, default 900).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "$#" -gt 0 ]; then TARGETS=("$@"); else
    TARGETS=(mips-unknown-linux-musl armv7-unknown-linux-musleabihf)
fi
NIGHTLY=${NIGHTLY:-nightly}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/qemu-user}
TIMEOUT=${QEMU_USER_TEST_TIMEOUT:-900}
NO_BINFMT=${QEMU_USER_TEST_NO_BINFMT:-0}

ES_SCRIPT=qemu-user-test
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

qemu_arch() {
    case "$1" in
        mips-*) echo mips ;;
        mipsel-*) echo mipsel ;;
        armv7-*|arm-*) echo arm ;;
        aarch64-*) echo aarch64 ;;
        *) die "no qemu-user mapping for target $1" ;;
    esac
}

# --- tools ---------------------------------------------------------------------
for t in "${TARGETS[@]}"; do
    a=$(qemu_arch "$t")
    command -v "qemu-$a-static" >/dev/null 2>&1 || apt_install qemu-user-static
    command -v "qemu-$a-static" >/dev/null 2>&1 || die "qemu-$a-static missing after installing qemu-user-static"
done
command -v timeout >/dev/null 2>&1 || apt_install coreutils
command -v rustup >/dev/null 2>&1 || die "rustup missing: install Rust with rustup first"
if ! rustup run "$NIGHTLY" rustc -V >/dev/null 2>&1; then
    rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src \
        || die "no $NIGHTLY toolchain and 'rustup toolchain install $NIGHTLY' failed"
fi
if [ ! -d "$(rustup run "$NIGHTLY" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    rustup component add rust-src --toolchain "$NIGHTLY" || die "rustup component add rust-src --toolchain $NIGHTLY failed"
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1 \
   || ! { command -v zig >/dev/null 2>&1 || python3 -m ziglang version >/dev/null 2>&1; }; then
    pip_install ziglang cargo-zigbuild
fi
command -v cargo-zigbuild >/dev/null 2>&1 || die "cargo-zigbuild not on PATH after pip install"

# --- binfmt_misc for the binaries the tests spawn ---------------------------------
BINFMT=/proc/sys/fs/binfmt_misc
register_binfmt() {
    local a=$1 conf=/usr/lib/binfmt.d/qemu-$1.conf
    if [ ! -e "$BINFMT/register" ]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null \
            || { log "cannot mount binfmt_misc on $BINFMT (not root, or not allowed in this container)"; return 1; }
    fi
    [ "$(cat "$BINFMT/status")" = enabled ] || echo 1 > "$BINFMT/status" || return 1
    if [ -e "$BINFMT/qemu-$a" ]; then
        grep -q '^enabled' "$BINFMT/qemu-$a" || echo 1 > "$BINFMT/qemu-$a" || return 1
        return 0
    fi
    [ -f "$conf" ] || { log "$conf missing (Debian's qemu-user-static ships it)"; return 1; }
    # Same line systemd-binfmt would write; F opens the interpreter now, so it
    # keeps working inside chroots/namespaces.
    grep -v '^#' "$conf" | head -1 > "$BINFMT/register" || { log "writing $BINFMT/register failed"; return 1; }
    log "registered qemu-$a in binfmt_misc"
}

if [ "$NO_BINFMT" != 1 ]; then
    for t in "${TARGETS[@]}"; do
        register_binfmt "$(qemu_arch "$t")" \
            || die "binfmt_misc registration for $(qemu_arch "$t") failed: the integration tests spawn the foreign binary and need it (QEMU_USER_TEST_NO_BINFMT=1 runs the unit tests only)"
    done
    [ -f tests/tests.rs ] || die "tests/tests.rs missing: no integration tests to run"
fi

# --- run ----------------------------------------------------------------------
# Debug test builds, -Zbuild-std (MIPS is tier 3; the same for ARM keeps one
# recipe), unwinding panics (the test harness needs them), static via zig.
# RUSTFLAGS: column 7 of scripts/targets.tsv, the flags every build of the
# target needs (64-bit time_t in the libc crate on the 32-bit musl targets;
# rustix's linux_raw backend and non-PIC code on MIPS); not column 8, the
# release-only size flags (immediate-abort panics would end the harness).
rustflags_for() {
    local f
    f=$(awk -F '\t' -v t="$1" '!/^[[:space:]]*#/ && $1 == t { print $7; found = 1 } END { exit !found }' "$ROOT/scripts/targets.tsv") \
        || die "no row for $1 in scripts/targets.tsv"
    echo "$f ${EXTRA_RUSTFLAGS:-}"
}
export RUSTUP_TOOLCHAIN=$NIGHTLY
export ENTROPYSERVICE_QEMU_USER=1
LIB_ARGS=(--bins)
[ -f src/lib.rs ] && LIB_ARGS=(--lib --bins)

# Run one cargo test invocation, tee its output, and require >= 1 test run
# and no failure.
run_tests() {
    local what=$1; shift
    local out; out=$(mktemp)
    local start; start=$(date +%s)
    log "$what: cargo-zigbuild test $*"
    set +e
    timeout --kill-after=10 "$TIMEOUT" cargo-zigbuild test --locked "$@" 2>&1 | tee "$out"
    local rc=${PIPESTATUS[0]}
    set -e
    local ran; ran=$(sed -n 's/^test result: .*[^0-9]\([0-9][0-9]*\) passed.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    rm -f "$out"
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || die "$what: timed out after $TIMEOUT s"
    [ "$rc" -eq 0 ] || die "$what: cargo test exited $rc"
    [ "$ran" -gt 0 ] || die "$what: no test ran"
    log "$what: $ran passed in $(( $(date +%s) - start )) s"
    SUMMARY+=("$what: $ran passed")
}

SUMMARY=()
for t in "${TARGETS[@]}"; do
    RUSTFLAGS=$(rustflags_for "$t"); export RUSTFLAGS
    run_tests "$t unit" --target "$t" -Zbuild-std "${LIB_ARGS[@]}"
    if [ "$NO_BINFMT" != 1 ]; then
        run_tests "$t offline" --target "$t" -Zbuild-std --test tests -- offline::
    fi
done

printf 'qemu-user-test: %s\n' "${SUMMARY[@]}"
echo "qemu-user-test: ok"
