#!/usr/bin/env bash
# Real-MIPS-kernel test: boots Debian's 6.1 4kc-malta kernel (mipsel) in
# qemu-system-mipsel with an initramfs of busybox + our static mipsel binary,
# twice, in parallel:
#   (a) vmtest=noseed: time to CRNG ready with no seed (bounded; it may well
#       not become ready: that is reported, not failed), then `status`
#       (RNDGETENTCNT) and `sink` (RNDADDENTROPY) against the real kernel;
#   (b) vmtest=seed: `seed load` of a 64-byte seed.credit made on the host,
#       then CRNG ready + "crng init done" in dmesg.
# With VMTEST_UNIT=1 (default) the project's lib unit tests (sys::, kernel::, child::)
# are built for mipsel and also run in both guests, without
# ENTROPYSERVICE_QEMU_USER, i.e. every ioctl must really work.
# What the guest does is in tests/vm/init.
#
#   tests/vm/run.sh
#
# Environment:
#   VMTEST_BIN       mipsel binary to test (default: the router build of scripts/cross-build.sh
#                    mipsel-unknown-linux-musl, then target/dist/...)
#   VMTEST_BOUND     seconds of guest uptime to wait for readiness without seed (30)
#   VMTEST_TIMEOUT   hard wall-clock limit per boot, seconds (100)
#   VMTEST_UNIT      1 = also run the unit tests in the guests (default 1)
# Cache: downloaded .debs and extracted kernel/busybox in target/vm-cache/;
# initramfs and serial logs in target/vm/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CACHE=$ROOT/target/vm-cache
WORK=$ROOT/target/vm
BOUND=${VMTEST_BOUND:-30}
TIMEOUT=${VMTEST_TIMEOUT:-100}
UNIT=${VMTEST_UNIT:-1}
T_START=$(date +%s)

ES_SCRIPT=vmtest
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# --- tools -------------------------------------------------------------------
command -v qemu-system-mipsel >/dev/null 2>&1 || apt_install qemu-system-mips
command -v qemu-system-mipsel >/dev/null 2>&1 || die "qemu-system-mipsel missing (package qemu-system-mips)"
command -v cpio >/dev/null 2>&1 || apt_install cpio
command -v cpio >/dev/null 2>&1 || die "cpio missing"
for c in gzip timeout dpkg-deb apt-get apt-cache; do
    command -v "$c" >/dev/null 2>&1 || die "$c missing"
done

# --- kernel + busybox (mipsel .debs from Debian) -----------------------------------
mkdir -p "$CACHE" "$WORK"
kernel_pkg() {
    # linux-image-4kc-malta is the meta-package; its dependency is the exact one.
    apt-cache depends linux-image-4kc-malta:mipsel 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-4kc-malta\).*/\1/p' | head -1
}
KPKG=$(kernel_pkg || true)
if [ -z "$KPKG" ] && ! ls "$CACHE"/vmlinuz-* >/dev/null 2>&1; then
    log "adding the mipsel architecture to apt (dpkg --add-architecture mipsel; apt-get update)"
    dpkg --add-architecture mipsel
    apt-get update >/dev/null || die "apt-get update failed"
    KPKG=$(kernel_pkg || true)
    [ -n "$KPKG" ] || die "apt-cache finds no linux-image-4kc-malta:mipsel"
fi
if [ -n "$KPKG" ] && [ ! -f "$CACHE/$KPKG.done" ]; then
    log "downloading $KPKG:mipsel busybox-static:mipsel"
    rm -rf "$CACHE/deb" && mkdir -p "$CACHE/deb"
    # _apt cannot write into a root-owned dir: download as root, quietly.
    (cd "$CACHE/deb" && apt-get -o APT::Sandbox::User=root download "$KPKG:mipsel" busybox-static:mipsel >/dev/null) \
        || die "apt-get download $KPKG:mipsel busybox-static:mipsel failed"
    rm -rf "$CACHE/x" && mkdir -p "$CACHE/x"
    # Only /boot of the kernel package (the modules are not needed).
    dpkg-deb --fsys-tarfile "$CACHE"/deb/linux-image-*.deb | tar -x -C "$CACHE/x" ./boot \
        || die "extracting the kernel failed"
    dpkg-deb -x "$CACHE"/deb/busybox-static_*.deb "$CACHE/x" || die "extracting busybox failed"
    rm -f "$CACHE"/vmlinuz-* "$CACHE"/busybox
    cp "$CACHE"/x/boot/vmlinuz-* "$CACHE/" || die "no vmlinuz in $KPKG"
    cp "$CACHE/x/bin/busybox" "$CACHE/busybox" || die "no bin/busybox in busybox-static"
    rm -rf "$CACHE/x" "$CACHE/deb" "$CACHE"/*.done
    touch "$CACHE/$KPKG.done"
fi
VMLINUZ=$(ls "$CACHE"/vmlinuz-* 2>/dev/null | head -1)
[ -n "$VMLINUZ" ] || die "no kernel in $CACHE"
[ -x "$CACHE/busybox" ] || die "no busybox in $CACHE"

# --- our binary ----------------------------------------------------------------
T_BUILD=$(date +%s)
if [ -n "${VMTEST_BIN:-}" ]; then
    BIN=$VMTEST_BIN
else
    CROSS_BUILD_SMOKE=0 CROSS_BUILD_BUDGET=warn scripts/cross-build.sh mipsel-unknown-linux-musl >&2 \
        || die "building the mipsel binary failed"
    # The router build: what the OpenWrt package ships (entropyservice-full
    # adds only the admin commands, which the guest does not run).
    BIN=$ROOT/target/dist/router/entropyservice-mipsel-unknown-linux-musl
fi
[ -f "$BIN" ] || die "no binary at $BIN"
readelf -h "$BIN" | grep -q 'Machine:.*MIPS' && readelf -h "$BIN" | grep -q 'little endian' \
    || die "$BIN is not a little-endian MIPS ELF"

UNIT_BIN=""
if [ "$UNIT" = 1 ]; then
    # The lib's unit tests, debug build, linked like qemu-user-test.sh does.
    log "building the mipsel unit-test binary"
    utd=$ROOT/target/qemu-user
    UNIT_BIN=$(CARGO_TARGET_DIR=$utd RUSTUP_TOOLCHAIN=nightly \
        RUSTFLAGS="-C target-feature=+crt-static -C link-self-contained=no --cfg libc_unstable_musl_v1_2 -C relocation-model=static" \
        cargo-zigbuild test --locked --target mipsel-unknown-linux-musl -Zbuild-std --lib --no-run \
            --message-format=json 2>/dev/null \
        | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1) || true
    [ -n "$UNIT_BIN" ] && [ -f "$UNIT_BIN" ] \
        || die "building the mipsel unit tests failed (run: CARGO_TARGET_DIR=target/qemu-user RUSTUP_TOOLCHAIN=nightly cargo-zigbuild test --target mipsel-unknown-linux-musl -Zbuild-std --lib --no-run)"
fi
T_BUILD=$(( $(date +%s) - T_BUILD ))

# --- initramfs -----------------------------------------------------------------
R=$WORK/root
rm -rf "$R" && mkdir -p "$R"/{bin,dev,proc,sys,tmp,run,seed}
cp "$CACHE/busybox" "$R/bin/busybox"
cp "$BIN" "$R/bin/entropyservice"
if [ -n "$UNIT_BIN" ]; then
    # Debug info makes it ~9 MB; stripped, the initramfs unpacks much faster.
    SR=$(rustup run nightly rustc --print sysroot)
    RO=$SR/lib/rustlib/$(rustup run nightly rustc -vV | sed -n 's/^host: //p')/bin/rust-objcopy
    if [ -x "$RO" ] && LD_LIBRARY_PATH=$SR/lib "$RO" --strip-all "$UNIT_BIN" "$R/bin/unit-tests" 2>/dev/null; then :; else
        cp "$UNIT_BIN" "$R/bin/unit-tests"
    fi
fi
install -m 0755 tests/vm/init "$R/init"
chmod 0700 "$R/seed"
# Seed and sink bytes are made here on the host, fresh each run.
head -c 64 /dev/urandom > "$R/seed/seed.credit"
chmod 0600 "$R/seed/seed.credit"
head -c 64 /dev/urandom > "$R/sink-input"
(cd "$R" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -1) > "$WORK/initrd.gz" \
    || die "packing the initramfs failed"
log "initramfs $(stat -c %s "$WORK/initrd.gz") bytes, kernel $(basename "$VMLINUZ")"

# --- boot ----------------------------------------------------------------------
boot() {
    local phase=$1
    # No NIC and no VGA: the guest needs neither, and their option ROMs come
    # from ipxe-qemu and seabios, which qemu-system-mips only recommends.
    timeout --kill-after=5 "$TIMEOUT" qemu-system-mipsel -M malta -m 256 -nographic -no-reboot \
        -nic none -vga none \
        -kernel "$VMLINUZ" -initrd "$WORK/initrd.gz" \
        -append "console=ttyS0 rdinit=/init random.trust_bootloader=off random.trust_cpu=off panic=1 quiet vmtest=$phase vmtest_bound=$BOUND vmtest_unit=$UNIT" \
        </dev/null >"$WORK/serial-$phase.log" 2>&1
}
T_BOOT=$(date +%s)
boot noseed & PID_A=$!
boot seed & PID_B=$!
set +e
wait "$PID_A"; RC_A=$?
wait "$PID_B"; RC_B=$?
set -e
T_BOOT=$(( $(date +%s) - T_BOOT ))

# --- verdict -------------------------------------------------------------------
FAIL=0
for phase in noseed seed; do
    logf=$WORK/serial-$phase.log
    rc=$RC_A; [ "$phase" = seed ] && rc=$RC_B
    tr -d '\r' <"$logf" >"$logf.txt"
    grep '^VMTEST ' "$logf.txt" | grep -v '^VMTEST dmesg\|^VMTEST unit|' | sed "s/^/[$phase] /" >&2 || true
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "vmtest: FAIL: $phase boot hit the ${TIMEOUT}s timeout; last lines of $logf:" >&2
        tail -20 "$logf.txt" >&2; FAIL=1; continue
    fi
    if ! grep -q '^VMTEST done result=ok' "$logf.txt" || grep -q '^VMTEST fail' "$logf.txt"; then
        echo "vmtest: FAIL: $phase boot (qemu exit $rc); log $logf; failing lines / tail:" >&2
        grep '^VMTEST fail\|^VMTEST unit|.*FAILED\|panicked' "$logf.txt" >&2 || tail -30 "$logf.txt" >&2
        FAIL=1
    fi
done

NOSEED=$(sed -n 's/^VMTEST ok noseed \(.*\)/\1/p' "$WORK/serial-noseed.log.txt" | head -1)
SEED=$(sed -n 's/^VMTEST ok seed \(ready_at=[^ ]* after_load_start=[^ ]*\).*/\1/p' "$WORK/serial-seed.log.txt" | head -1)
echo "vmtest: kernel $(basename "$VMLINUZ"), binary $(stat -c %s "$BIN") bytes"
echo "vmtest: without seed: ${NOSEED:-no figure} (bound ${BOUND}s of guest uptime)"
echo "vmtest: with seed:    ${SEED:-no figure} (seconds of guest uptime)"
echo "vmtest: build ${T_BUILD}s, boots ${T_BOOT}s (parallel), total $(( $(date +%s) - T_START ))s"
[ "$FAIL" = 0 ] || die "see above; serial logs in $WORK/"
echo "vmtest: ok"
