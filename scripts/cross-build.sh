#!/usr/bin/env bash
# Build the six static release binaries of entropyservice without a container
# engine: nightly Rust + -Zbuild-std for every target, linked by zig
# (scripts/zig-linker.sh, cargo-zigbuild's `zig cc`; zig ships musl crt files
# and libc for all six targets). scripts/cross-docker.sh builds the same
# binaries through `cross` in a container and checks they are byte-identical.
#
# Settings, each in one place: the targets, their linker arguments and
# RUSTFLAGS in scripts/targets.tsv (made into .cargo/config.toml, which cargo
# applies here as in the cross container; x86_64 musl gets them from
# `scripts/targets.py env`), -Zbuild-std in Cross.toml's [build.env], the
# nightly in NIGHTLY, zig and cargo-zigbuild versions in
# docker/cross/Dockerfile. The checks are scripts/release-lib.sh's.
#
#   scripts/cross-build.sh                # all six targets
#   scripts/cross-build.sh mips-unknown-linux-musl armv7-unknown-linux-musleabihf
#
# Output, per target, two builds:
#   target/dist/entropyservice-<target>         the full build (default
#       features: with the admin commands keygen, authorize, hostkey), for
#       servers and hosts set up by hand (and the Debian package)
#   target/dist/router/entropyservice-<target>  the router build
#       (--no-default-features: without them), for the OpenWrt packages
#       (openwrt/build-feed.sh reads target/dist/router)
# then a "target bytes budget" table (router builds as router/<target>).
# Each binary is checked: ELF class/endianness/machine (and ARM float ABI),
# no INTERP program header, no NEEDED entry, size <= scripts/size-budget.txt
# (its <target> or router/<target> line), MIPS non-PIC check, and
# `--version`, `status` and the variant (the router build refuses
# `authorize`, the full build has it) run (under qemu-user-static for the
# foreign ones; CROSS_BUILD_SMOKE=0 skips that).
# Any failure prints one "cross-build: FAIL:" line and exits non-zero.
#
# Environment: CARGO_TARGET_DIR (default target/cross, kept apart from the
# host target/ so this never waits on a `cargo build` lock), NIGHTLY
# (default "nightly"), CROSS_BUILD_SMOKE (default 1), SIZE_BUDGET_FILE (default
# scripts/size-budget.txt; another file only to measure, never in CI),
# CROSS_BUILD_BUDGET=warn (report an over-budget size but exit 0: tests/vm/run.sh
# uses it, since it tests behaviour, not size), EXTRA_RUSTFLAGS (appended to
# the table's flags, to measure; RUSTFLAGS itself is refused, it would replace
# them).
#
# Installs what it needs on a fresh Debian 12 (as root): binutils, python3-pip,
# ziglang + cargo-zigbuild from PyPI (the versions the cross image pins),
# the nightly toolchain's rust-src,
# qemu-user-static for the smoke run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

NIGHTLY=${NIGHTLY:-nightly}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/cross}
DIST=$ROOT/target/dist
RELEASE_SMOKE=${CROSS_BUILD_SMOKE:-1}

ES_SCRIPT=cross-build
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/release-lib.sh
. "$ROOT/scripts/release-lib.sh"

mapfile -t ALL_TARGETS < <(release_targets)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

[ -z "${RUSTFLAGS:-}" ] && [ -z "${CARGO_ENCODED_RUSTFLAGS:-}" ] \
    || die "RUSTFLAGS/CARGO_ENCODED_RUSTFLAGS is set: it would replace scripts/targets.tsv's flags; use EXTRA_RUSTFLAGS to add some"

# --- tools ------------------------------------------------------------------
release_tools "${TARGETS[@]}"
release_table_check
release_validate --router "${TARGETS[@]}"

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

# zig and cargo-zigbuild: the versions docker/cross/Dockerfile installs, so
# this path and the cross image link alike.
dockerfile_arg() { sed -n "s/^ARG $1=//p" "$ROOT/docker/cross/Dockerfile"; }
ZIG_VERSION=$(dockerfile_arg ZIGLANG_VERSION)
ZIGBUILD_VERSION=$(dockerfile_arg CARGO_ZIGBUILD_VERSION)
[ -n "$ZIG_VERSION" ] && [ -n "$ZIGBUILD_VERSION" ] \
    || die "docker/cross/Dockerfile has no ARG ZIGLANG_VERSION=/CARGO_ZIGBUILD_VERSION= line"
have_zig() { python3 -m ziglang version 2>/dev/null || zig version 2>/dev/null; }
if [ "$(have_zig)" != "$ZIG_VERSION" ] \
   || [ "$(cargo-zigbuild --version 2>/dev/null)" != "cargo-zigbuild $ZIGBUILD_VERSION" ]; then
    pip_install "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
fi
[ "$(cargo-zigbuild --version 2>/dev/null)" = "cargo-zigbuild $ZIGBUILD_VERSION" ] \
    || die "cargo-zigbuild $ZIGBUILD_VERSION not on PATH after pip install (pip's bin dir, e.g. ~/.local/bin, missing from PATH?)"
[ "$(have_zig)" = "$ZIG_VERSION" ] || die "zig $ZIG_VERSION not found (neither 'python3 -m ziglang' nor 'zig' on PATH)"

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
#  NOT --cfg rustix_use_experimental_asm: rustix's own MIPS syscall asm (1.1.6)
#                         does not list $at ($1) as clobbered, and the kernel's
#                         syscall return leaves $at changed; LLVM kept a directory's
#                         uid in $at across geteuid, so `seed load` refused a
#                         root-owned /seed on the real mipsel kernel (qemu-user does
#                         not clobber $at, so only tests/vm saw it). rustix's libc
#                         backend goes through musl, which lists $at. scripts/targets.py
#                         refuses the cfg for MIPS. Size: mipsel 263,504 -> 261,152.
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
# These flags are columns 7 and 8 of scripts/targets.tsv; cargo takes them from
# .cargo/config.toml (or, for x86_64 musl, the environment targets.py prints).
mkdir -p "$DIST"
for t in "${TARGETS[@]}"; do
    log "building $t"
    start=$(date +%s)
    mapfile -t env_args < <(python3 "$ROOT/scripts/targets.py" env "$t")
    [ "${#env_args[@]}" -ge 2 ] || die "$t: scripts/targets.py env $t printed no settings"
    extra=()
    if [ -n "${EXTRA_RUSTFLAGS:-}" ]; then
        for f in $EXTRA_RUSTFLAGS; do extra+=("\"$f\""); done
        extra=(--config "target.$t.rustflags=[$(IFS=,; echo "${extra[*]}")]")
    fi
    env "${env_args[@]}" cargo "+$NIGHTLY" build --release --locked --bin entropyservice --target "$t" "${extra[@]}" \
        || die "$t: cargo build failed"
    log "$t built in $(( $(date +%s) - start )) s"
    release_strip "$CARGO_TARGET_DIR/$t/release/entropyservice" "$DIST/entropyservice-$t" \
        || die "$t: llvm-objcopy --strip-all failed"
    release_check "$t" "$DIST/entropyservice-$t"

    log "building $t, router build (--no-default-features)"
    start=$(date +%s)
    env "${env_args[@]}" cargo "+$NIGHTLY" build --release --locked --bin entropyservice --target "$t" \
        --no-default-features "${extra[@]}" \
        || die "$t: cargo build --no-default-features (the router build) failed"
    log "$t router build built in $(( $(date +%s) - start )) s"
    mkdir -p "$DIST/router"
    release_strip "$CARGO_TARGET_DIR/$t/release/entropyservice" "$DIST/router/entropyservice-$t" \
        || die "$t: llvm-objcopy --strip-all of the router build failed"
    release_check "$t" "$DIST/router/entropyservice-$t" router
done

release_report
echo "cross-build: ok: ${#TARGETS[@]} full builds in target/dist/, ${#TARGETS[@]} router builds in target/dist/router/"
