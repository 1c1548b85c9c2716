#!/usr/bin/env bash
# Build the six static release binaries, each as the full and the router
# build (--no-default-features), through `cross` (cross-rs) in a
# container, as Cross.toml describes, check them exactly as
# scripts/cross-build.sh checks its own (scripts/release-lib.sh: ELF
# class/endianness/machine, float ABI, static, MIPS PIC check, size budget,
# --version and `status` under qemu-user), and require them to be
# byte-identical to scripts/cross-build.sh's (zig on the host, no container).
#
#   scripts/cross-docker.sh               # all six targets
#   scripts/cross-docker.sh mips-unknown-linux-musl
#
# Steps, each timed: dockerd (scripts/docker-lib.sh's dockerd_up: reuses a
# running one, else starts one and stops it on exit, failure included), the
# debian:bookworm base (pulled elsewhere, made by debootstrap here), the image
# Cross.toml names, from docker/cross/Dockerfile (built with --network host),
# cross $CROSS_VERSION from crates.io (cargo install --locked), then
# two `cross +$NIGHTLY build --release --target T` per target (the second
# with --no-default-features).
# Output: target/dist-cross/entropyservice-<target> and
# target/dist-cross/router/entropyservice-<target>, compared with
# target/dist/, which scripts/cross-build.sh brings up to date first.
#
# The host's toolchains are not changed: cross runs with CROSS_CUSTOM_TOOLCHAIN=1
# (no rustup target/component installs) and a `rustup` on PATH that lets
# through only the read-only `toolchain list`/`target list`/`component list`
# (cross 0.2.5 misreads newer rustup's "(active, default)" and would otherwise
# reinstall, i.e. update, such a toolchain); the toolchain list, their
# versions and $NIGHTLY's components are compared before and after.
#
# ES_FRESH_CI=1 (scripts/fresh-ci.sh: CI inside a container, which has no
# container engine to start): prints one SKIPPED line and exits 0.
#
# Environment: NIGHTLY (default "nightly", the toolchain both paths use),
# CROSS_DOCKER_SMOKE (default 1; 0 skips the qemu-user runs), CROSS_BUILD_BUDGET,
# ES_DOCKER_DATA (scripts/docker-lib.sh).
# Installs on a fresh Debian 12 (as root): docker.io, debootstrap, binutils,
# qemu-user-static, python3, cross (cargo install).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ES_SCRIPT=cross-docker
if [ "${ES_FRESH_CI:-0}" = 1 ]; then
    echo "cross-docker: SKIPPED (ES_FRESH_CI=1): this CI run is inside a container, which has no container engine for cross; the cross build runs in the host's CI (scripts/cross-build.sh still built and checked the same binaries)" >&2
    exit 0
fi

CROSS_VERSION=0.2.5
NIGHTLY=${NIGHTLY:-nightly}
RELEASE_SMOKE=${CROSS_DOCKER_SMOKE:-1}
DIST=$ROOT/target/dist
OUT=$ROOT/target/dist-cross
CROSS_TARGET_DIR=$ROOT/target/cross-docker

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/docker-lib.sh
. "$ROOT/scripts/docker-lib.sh"
# shellcheck source=scripts/release-lib.sh
. "$ROOT/scripts/release-lib.sh"

[ "$(id -u)" = 0 ] || die "needs root (it may start dockerd)"
mapfile -t ALL_TARGETS < <(release_targets)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
for v in RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTUP_TOOLCHAIN CARGO_BUILD_TARGET; do
    [ -z "${!v:-}" ] || die "$v is set in the environment: cross would pass it into the container and the build would differ from the table's; unset it"
done
if env | grep -q '^CARGO_TARGET_.*_\(RUSTFLAGS\|LINKER\)='; then
    die "CARGO_TARGET_*_RUSTFLAGS/LINKER set in the environment: cross passes them into the container; unset them"
fi

declare -a TIMES=()
timed() {
    local what=$1 t0=$SECONDS; shift
    "$@"
    TIMES+=("$(printf '%-44s %5d s' "$what" $((SECONDS - t0)))")
    log "$what: $((SECONDS - t0)) s"
}

release_tools "${TARGETS[@]}"
release_table_check
release_validate "${TARGETS[@]}"

# The image every target uses, from Cross.toml.
IMAGE=$(python3 - "$ROOT/Cross.toml" "${TARGETS[@]}" <<'EOF'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb")).get("target", {})
seen = set()
for t in sys.argv[2:]:
    c = cfg.get(t, {})
    if "image" not in c:
        sys.exit(f"Cross.toml: [target.{t}] names no image")
    seen.add(c["image"])
if len(seen) != 1:
    sys.exit(f"Cross.toml: the targets name different images: {sorted(seen)}")
print(seen.pop())
EOF
) || die "Cross.toml does not give every target the docker/cross image (see above)"

# --- toolchain -------------------------------------------------------------------
command -v rustup >/dev/null 2>&1 || die "rustup missing: install Rust with rustup first"
rustup run "$NIGHTLY" rustc -V >/dev/null 2>&1 \
    || die "no $NIGHTLY toolchain (rustup toolchain install $NIGHTLY --profile minimal --component rust-src)"
[ -d "$(rustup run "$NIGHTLY" rustc --print sysroot)/lib/rustlib/src/rust/library" ] \
    || die "$NIGHTLY has no rust-src (rustup component add rust-src --toolchain $NIGHTLY)"
REAL_RUSTUP=$(command -v rustup)
# What cross could change: the toolchains and their versions (`toolchain
# add` updates one), and the components of the toolchain it builds with
# (`target add`, `component add`).
rustup_state() {
    local tc
    "$REAL_RUSTUP" toolchain list | sed 's/ (.*)$//' | sort | while read -r tc; do
        printf '%s %s\n' "$tc" "$("$REAL_RUSTUP" run "$tc" rustc -V 2>&1)"
    done
    "$REAL_RUSTUP" component list --installed --toolchain "$NIGHTLY" 2>&1 | sed "s/^/  $NIGHTLY: /"
}
RUSTUP_BEFORE=$(rustup_state)
SHIM=$(mktemp -d /tmp/cross-docker-rustup.XXXXXX)
cat >"$SHIM/rustup" <<EOF
#!/bin/sh
# rustup for cross: only what reads the toolchains, never what changes them.
case "\$1 \${2:-}" in
    "toolchain list"|"target list"|"component list") exec "$REAL_RUSTUP" "\$@" ;;
esac
echo "cross-docker: FAIL: cross ran 'rustup \$*', which would change the host's toolchains (refused)" >&2
exit 1
EOF
chmod +x "$SHIM/rustup"

# --- cross ---------------------------------------------------------------------
# cross 0.2.5 does not stop after `cross --version`: it goes on to check the
# host toolchain and, misreading rustup's "(active, default)", runs `rustup
# toolchain add stable`, which updates stable. So the version comes from
# cargo's install list, and cross itself only ever runs behind the shim.
cross_installed() { cargo install --list | grep -qx "cross v$CROSS_VERSION:"; }
install_cross() {
    if ! cross_installed || ! command -v cross >/dev/null 2>&1; then
        log "cargo install cross --version $CROSS_VERSION --locked"
        nice cargo install cross --version "$CROSS_VERSION" --locked --quiet \
            || die "cargo install cross --version $CROSS_VERSION --locked failed"
        hash -r
    fi
    cross_installed && command -v cross >/dev/null 2>&1 \
        || die "cross $CROSS_VERSION not on PATH after cargo install (is ~/.cargo/bin on PATH?)"
}

# --- container engine and image -------------------------------------------------------
build_image() {
    # This machine's outgoing TLS needs the host's extra CA certificates for
    # pip inside the image build (docker/cross/extra-ca/*.crt is ignored by git).
    local c
    for c in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$c" ] && cp "$c" "$ROOT/docker/cross/extra-ca/"
    done
    docker build --network host -q -t "$IMAGE" -f "$ROOT/docker/cross/Dockerfile" "$ROOT/docker/cross" >/dev/null \
        || die "docker build of $IMAGE from docker/cross/Dockerfile failed"
}

timed "dockerd up" dockerd_up
# dockerd_up's EXIT trap (when it started dockerd) plus the shim's removal.
trap 'rm -rf "$SHIM"; dockerd_down' EXIT
timed "base image debian:bookworm" base_image debian:bookworm
timed "image $IMAGE (docker/cross/Dockerfile)" build_image
timed "cross $CROSS_VERSION (cargo install)" install_cross

# --- build -------------------------------------------------------------------------
# CROSS_CONTAINER_OPTS: this machine's dockerd runs without a bridge, so the
# containers use the host's network (crates.io for the std dependencies
# -Zbuild-std needs, unless ~/.cargo has them already).
# cross_build T [ARGS...]: ARGS is --no-default-features for the router build.
cross_build() {
    local t=$1
    shift
    PATH="$SHIM:$PATH" CARGO_TARGET_DIR="$CROSS_TARGET_DIR" CROSS_CUSTOM_TOOLCHAIN=1 \
        CROSS_CONTAINER_OPTS="--network host" \
        nice cross "+$NIGHTLY" build --release --locked --bin entropyservice --target "$t" "$@" \
        || die "$t: cross build $* failed"
}
mkdir -p "$OUT/router"
for t in "${TARGETS[@]}"; do
    timed "cross build $t" cross_build "$t"
    release_strip "$CROSS_TARGET_DIR/$t/release/entropyservice" "$OUT/entropyservice-$t" \
        || die "$t: llvm-objcopy --strip-all failed"
    release_check "$t" "$OUT/entropyservice-$t"
    timed "cross build $t, router build" cross_build "$t" --no-default-features
    release_strip "$CROSS_TARGET_DIR/$t/release/entropyservice" "$OUT/router/entropyservice-$t" \
        || die "$t: llvm-objcopy --strip-all of the router build failed"
    release_check "$t" "$OUT/router/entropyservice-$t" router
done
RUSTUP_AFTER=$(rustup_state)
if [ "$RUSTUP_AFTER" != "$RUSTUP_BEFORE" ]; then
    diff <(echo "$RUSTUP_BEFORE") <(echo "$RUSTUP_AFTER") >&2 || true
    die "the host's rustup toolchains changed while cross ran (diff above; the rustup shim refused every change cross asked for, so look for another rustup user on this machine)"
fi

# --- the same bytes as the build without a container ------------------------------------
# Always through scripts/cross-build.sh, never what target/dist happens to
# hold: cargo rebuilds only what changed (nothing, after CI's own cross-build
# stage), and a binary older than the tree is never compared.
log "bringing target/dist up to date with scripts/cross-build.sh to compare"
timed "scripts/cross-build.sh ${#TARGETS[@]} target(s)" \
    env NIGHTLY="$NIGHTLY" CROSS_BUILD_SMOKE=0 "$ROOT/scripts/cross-build.sh" "${TARGETS[@]}"
differ=()
for t in "${TARGETS[@]}"; do
    for f in "entropyservice-$t" "router/entropyservice-$t"; do
        if cmp -s "$OUT/$f" "$DIST/$f"; then
            log "$f: byte-identical to scripts/cross-build.sh's ($(sha256sum <"$OUT/$f" | cut -c1-16))"
        else
            differ+=("$f ($(cmp "$OUT/$f" "$DIST/$f" 2>&1 | head -1); sizes $(stat -c %s "$OUT/$f") vs $(stat -c %s "$DIST/$f"))")
        fi
    done
done

release_report
echo "cross-docker: times:"
printf '  %s\n' "${TIMES[@]}"
[ "${#differ[@]}" -eq 0 ] || die "cross and scripts/cross-build.sh made different binaries: ${differ[*]}"
echo "cross-docker: ok: ${#TARGETS[@]} full and ${#TARGETS[@]} router builds through cross in target/dist-cross/, byte-identical to target/dist/"
