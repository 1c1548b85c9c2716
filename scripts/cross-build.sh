#!/usr/bin/env bash
# Build the six static release binaries of entropyservice without a container
# engine: nightly Rust + -Zbuild-std for every target, linked by zig through
# cargo-zigbuild (zig ships musl crt files and libc for all six targets).
#
#   scripts/cross-build.sh                # all six targets
#   scripts/cross-build.sh mips-unknown-linux-musl armv7-unknown-linux-musleabihf
#
# Output: target/dist/entropyservice-<target>, then a "target bytes" table.
# Each binary is checked: ELF class/endianness/machine (and ARM float ABI),
# no INTERP program header, no NEEDED entry, size <= scripts/size-budget.txt,
# and `--version` runs (under qemu-user-static for the foreign ones;
# CROSS_BUILD_SMOKE=0 skips that). Any failure prints one "cross-build: FAIL:"
# line and exits non-zero.
#
# Environment: CARGO_TARGET_DIR (default target/cross, kept apart from the
# host target/ so this never waits on a `cargo build` lock), NIGHTLY
# (default "nightly"), CROSS_BUILD_SMOKE (default 1), SIZE_BUDGET_FILE (default
# scripts/size-budget.txt; another file only to measure, never in CI),
# CROSS_BUILD_BUDGET=warn (report an over-budget size but exit 0: tests/vm/run.sh
# uses it, since it tests behaviour, not size).
#
# Installs what it needs on a fresh Debian 12 (as root): binutils, python3-pip,
# ziglang + cargo-zigbuild from PyPI, the nightly toolchain's rust-src,
# qemu-user-static for the smoke run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ALL_TARGETS=(
    mips-unknown-linux-musl
    mipsel-unknown-linux-musl
    armv7-unknown-linux-musleabihf
    arm-unknown-linux-musleabi
    aarch64-unknown-linux-musl
    x86_64-unknown-linux-musl
)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

NIGHTLY=${NIGHTLY:-nightly}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/cross}
DIST=$ROOT/target/dist
BUDGET_FILE=${SIZE_BUDGET_FILE:-$ROOT/scripts/size-budget.txt}
SMOKE=${CROSS_BUILD_SMOKE:-1}

ES_SCRIPT=cross-build
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# --- tools ------------------------------------------------------------------
command -v readelf >/dev/null 2>&1 || apt_install binutils
command -v readelf >/dev/null 2>&1 || die "readelf missing (binutils)"

command -v rustup >/dev/null 2>&1 || die "rustup missing: install Rust with rustup first"
if ! rustup run "$NIGHTLY" rustc -V >/dev/null 2>&1; then
    log "installing toolchain $NIGHTLY"
    rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src \
        || die "no $NIGHTLY toolchain and 'rustup toolchain install $NIGHTLY' failed"
fi
if [ ! -d "$(rustup run "$NIGHTLY" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    rustup component add rust-src --toolchain "$NIGHTLY" \
        || die "rustup component add rust-src --toolchain $NIGHTLY failed"
fi

# cargo-zigbuild finds zig as `zig` on PATH or as `python3 -m ziglang`.
if ! command -v cargo-zigbuild >/dev/null 2>&1 \
   || ! { command -v zig >/dev/null 2>&1 || python3 -m ziglang version >/dev/null 2>&1; }; then
    pip_install ziglang cargo-zigbuild
fi
command -v cargo-zigbuild >/dev/null 2>&1 \
    || die "cargo-zigbuild not on PATH after pip install (pip's bin dir, e.g. ~/.local/bin, missing from PATH?)"
{ command -v zig >/dev/null 2>&1 || python3 -m ziglang version >/dev/null 2>&1; } \
    || die "zig not found (neither 'zig' on PATH nor 'python3 -m ziglang')"

[ -f "$BUDGET_FILE" ] || die "missing $BUDGET_FILE"

# Post-link strip: cargo's strip=true leaves non-allocated sections such as
# MIPS .pdr (72 KiB on mipsel), .comment and .mdebug.*; llvm-objcopy
# --strip-all drops them. rustc ships it as rust-objcopy (needs the
# toolchain's libLLVM on LD_LIBRARY_PATH); else Debian's llvm package.
SYSROOT=$(rustup run "$NIGHTLY" rustc --print sysroot)
HOST=$(rustup run "$NIGHTLY" rustc -vV | sed -n 's/^host: //p')
objcopy_strip() {
    local ro=$SYSROOT/lib/rustlib/$HOST/bin/rust-objcopy
    if [ -x "$ro" ] && LD_LIBRARY_PATH=$SYSROOT/lib "$ro" --version >/dev/null 2>&1; then
        LD_LIBRARY_PATH=$SYSROOT/lib "$ro" --strip-all "$1" "$2"
        return
    fi
    local lo
    lo=$(command -v llvm-objcopy || ls /usr/bin/llvm-objcopy-* 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$lo" ]; then apt_install llvm; lo=$(command -v llvm-objcopy || true); fi
    [ -n "$lo" ] || die "no llvm-objcopy (neither rust-objcopy in $SYSROOT nor Debian's llvm)"
    "$lo" --strip-all "$1" "$2"
}

# --- per-target expectations ---------------------------------------------------
# echo "CLASS DATA MACHINE-SUBSTRING [FLAGS-SUBSTRING]" as readelf -h prints them.
expect_for() {
    case "$1" in
        mips-unknown-linux-musl)         echo "ELF32|big endian|MIPS R3000|" ;;
        mipsel-unknown-linux-musl)       echo "ELF32|little endian|MIPS R3000|" ;;
        armv7-unknown-linux-musleabihf)  echo "ELF32|little endian|ARM|hard-float ABI" ;;
        arm-unknown-linux-musleabi)      echo "ELF32|little endian|ARM|soft-float ABI" ;;
        aarch64-unknown-linux-musl)      echo "ELF64|little endian|AArch64|" ;;
        x86_64-unknown-linux-musl)       echo "ELF64|little endian|X86-64|" ;;
        *) return 1 ;;
    esac
}
qemu_for() {
    case "$1" in
        mips-*) echo qemu-mips-static ;;
        mipsel-*) echo qemu-mipsel-static ;;
        armv7-*|arm-*) echo qemu-arm-static ;;
        aarch64-*) echo qemu-aarch64-static ;;
        x86_64-*) echo "" ;;
    esac
}
budget_for() {
    awk -v t="$1" '!/^[[:space:]]*#/ && $1 == t { print $2; found=1 } END { if (!found) exit 1 }' "$BUDGET_FILE"
}

for t in "${TARGETS[@]}"; do
    expect_for "$t" >/dev/null || die "unknown target $t (known: ${ALL_TARGETS[*]})"
    budget_for "$t" >/dev/null || die "no budget line for $t in $BUDGET_FILE"
done

if [ "$SMOKE" = 1 ]; then
    for t in "${TARGETS[@]}"; do
        q=$(qemu_for "$t")
        if [ -n "$q" ] && ! command -v "$q" >/dev/null 2>&1; then apt_install qemu-user-static; break; fi
    done
fi

# --- build -------------------------------------------------------------------
# Flags for every target:
#  +crt-static            MIPS musl targets link dynamically by default; explicit elsewhere.
#  link-self-contained=no rustc's own self-contained crt1.o etc. exist only for
#                         rustup-installed tier-2 std; with build-std (and for the tier-3
#                         MIPS targets) zig must supply crt1.o and libc.a.
#  panic=immediate-abort  no panic machinery or messages at all (nightly, -Zunstable-options).
#  force-unwind-tables=no nothing unwinds, so no .eh_frame for Rust code (-17 KiB on mipsel).
#  location-detail=none   no file:line:col strings for the (aborting) panics.
#  -z norelro             no PT_GNU_RELRO: a static musl binary has no dynamic loader
#                         to apply it anyway, and the linker padded the RW segment to a
#                         64 KiB boundary in the file for it (+64 KiB on arm-musleabi).
# and for the 32-bit targets (target_flags):
#  --cfg libc_unstable_musl_v1_2  the libc crate otherwise binds musl's time32
#                         compatibility symbols (clock_gettime with a 32-bit time_t)
#                         while rustix's libc backend, which it uses on MIPS, passes a
#                         64-bit timespec: every rustix clock read on MIPS came back as
#                         (nsec << 32 | sec). zig ships musl 1.2.5, OpenWrt musl 1.2.x,
#                         so the time64 symbols are there.
# and for the MIPS targets:
#  --cfg rustix_use_experimental_asm  rustix's own syscall backend (linux_raw, inline
#                         asm, nightly) instead of its libc backend, as on every other
#                         target: -15 KB on mipsel, and clocks via clock_gettime64/vDSO
#                         directly. Checked on the real MIPS kernel (tests/vm).
#                         rustix ignores it on big-endian mips (its build.rs keeps
#                         the libc backend there), hence mips > mipsel in size.
#  -C relocation-model=static  non-PIC code: no $gp/GOT set-up and no GOT load per
#                         call, -12% on MIPS (mips 281 -> 248 KB). zig then builds its
#                         musl non-PIC too. One trap: non-PIC callers use a plain `jal`,
#                         which leaves $t9 unset, so any PIC function that computes $gp
#                         from $t9 crashes (musl's dlsym.s is such assembly: when rustix
#                         still looked getrandom up with dlsym, `status` died with SIGBUS
#                         under qemu-user and SIGSEGV on the real MIPS kernel).
#                         scripts/mips-pic-check.py fails the build if any such
#                         prologue is linked in; sys::getrandom calls libc directly.
# Tried and NOT used:
#  opt-level="s" (+6% on mipsel), -Zfmt-debug=none (no gain), --icf=all (zig's
#  linker refuses it).
# EXTRA_RUSTFLAGS from the environment go after ours.
BASE_RUSTFLAGS="-C target-feature=+crt-static -C link-self-contained=no -Zunstable-options -Cpanic=immediate-abort -C force-unwind-tables=no -Zlocation-detail=none -C link-arg=-Wl,-z,norelro"

target_flags() {
    case "$1" in
        mips-*|mipsel-*) echo "--cfg libc_unstable_musl_v1_2 --cfg rustix_use_experimental_asm -C relocation-model=static" ;;
        armv7-*|arm-*) echo "--cfg libc_unstable_musl_v1_2" ;;
    esac
}

mkdir -p "$DIST"
declare -A SIZE
OVER=()
for t in "${TARGETS[@]}"; do
    log "building $t"
    start=$(date +%s)
    RUSTFLAGS="$BASE_RUSTFLAGS $(target_flags "$t") ${EXTRA_RUSTFLAGS:-}" \
        cargo "+$NIGHTLY" zigbuild --release --locked --bin entropyservice --target "$t" \
            -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
        || die "$t: cargo zigbuild failed"
    log "$t built in $(( $(date +%s) - start )) s"
    src=$CARGO_TARGET_DIR/$t/release/entropyservice
    [ -f "$src" ] || die "$t: $src not produced"
    out=$DIST/entropyservice-$t
    rm -f "$out"
    objcopy_strip "$src" "$out" || die "$t: llvm-objcopy --strip-all failed"

    # ELF header
    IFS='|' read -r eclass edata emach eflags <<<"$(expect_for "$t")"
    hdr=$(readelf -h "$out") || die "$t: readelf -h failed on $out"
    grep -q "Class:[[:space:]]*$eclass" <<<"$hdr" || die "$t: expected class $eclass: $(grep Class: <<<"$hdr")"
    grep -q "Data:.*$edata" <<<"$hdr" || die "$t: expected $edata: $(grep Data: <<<"$hdr")"
    grep -q "Machine:.*$emach" <<<"$hdr" || die "$t: expected machine $emach: $(grep Machine: <<<"$hdr")"
    if [ -n "$eflags" ]; then
        grep -q "Flags:.*$eflags" <<<"$hdr" || die "$t: expected flags '$eflags': $(grep Flags: <<<"$hdr")"
    fi
    # Static: no program interpreter, no shared-library dependency.
    if readelf -lW "$out" | grep -q 'INTERP'; then
        die "$t: has an INTERP program header (dynamically linked): $(readelf -lW "$out" | grep -A1 INTERP | tail -1)"
    fi
    if readelf -dW "$out" | grep -q '(NEEDED)'; then
        die "$t: has NEEDED entries: $(readelf -dW "$out" | grep '(NEEDED)' | tr -s ' ' | tr '\n' ' ')"
    fi
    # Non-PIC MIPS must not contain PIC code (see -C relocation-model=static above).
    case "$t" in
        mips-*|mipsel-*)
            pic=$(python3 "$ROOT/scripts/mips-pic-check.py" "$out" 2>&1) \
                || die "$t: PIC code linked into a non-PIC binary, it would crash on \`jal\` calls: $pic"
            ;;
    esac
    # Size budget
    bytes=$(stat -c %s "$out")
    budget=$(budget_for "$t")
    if [ "$bytes" -gt "$budget" ]; then
        # Keep building the other targets so one run shows every size.
        OVER+=("$t: $bytes bytes is over its budget of $budget bytes ($(( bytes - budget )) too many; scripts/size-budget.txt)")
    fi
    # Smoke run
    if [ "$SMOKE" = 1 ]; then
        q=$(qemu_for "$t")
        # --version, and `status` (opens /dev/random, RNDGETENTCNT, getrandom,
        # formatting: enough libc and std to catch a broken link recipe).
        run=("$out"); [ -n "$q" ] && run=("$q" "$out")
        [ -z "$q" ] || command -v "$q" >/dev/null 2>&1 || die "$t: $q missing (apt-get install qemu-user-static)"
        v=$("${run[@]}" --version 2>&1) || die "$t: '${run[*]} --version' failed ($?): $v"
        st=$("${run[@]}" status 2>&1) || die "$t: '${run[*]} status' failed ($?): $st"
        grep -q '^crng_ready: ' <<<"$st" || die "$t: '${run[*]} status' printed no crng_ready line: $st"
        log "$t: --version -> $(head -1 <<<"$v"); status ok"
    fi
    SIZE[$t]=$bytes
done

printf '%-34s %10s %10s\n' target bytes budget
for t in "${TARGETS[@]}"; do
    b=$(budget_for "$t"); flag=""; [ "${SIZE[$t]}" -gt "$b" ] && flag="  OVER BUDGET"
    printf '%-34s %10s %10s%s\n' "$t" "${SIZE[$t]}" "$b" "$flag"
done
if [ "${#OVER[@]}" -gt 0 ]; then
    if [ "${CROSS_BUILD_BUDGET:-fail}" = warn ]; then
        for o in "${OVER[@]}"; do echo "cross-build: WARNING: $o" >&2; done
    else
        for o in "${OVER[@]}"; do echo "cross-build: FAIL: $o" >&2; done
        exit 1
    fi
fi
echo "cross-build: ok: ${#TARGETS[@]} static binaries in target/dist/"
