#!/bin/sh
# The linker for the release targets: zig cc (musl crt files and libc from
# zig) through cargo-zigbuild's `zig cc` front end, which turns rustc's gcc-style
# linker arguments into ones zig accepts. Called as scripts/zig-linker/<target>
# (symlinks made by scripts/targets.py), from .cargo/config.toml, from the
# CARGO_TARGET_<T>_LINKER that scripts/cross-build.sh and Cross.toml set for
# x86_64 musl, on the host and inside the cross image alike. The zig target
# arguments are column 6 of scripts/targets.tsv; the command is the one
# cargo-zigbuild's own wrapper runs, so `cargo zigbuild` and this link the same.
# Needs: pip install ziglang cargo-zigbuild (versions: docker/cross/Dockerfile).
set -eu
target=$(basename "$0")
here=$(dirname "$0")
table=$here/../targets.tsv
[ -f "$table" ] || table=$here/targets.tsv
args=$(awk -F '\t' -v t="$target" '!/^[[:space:]]*#/ && $1 == t { print $6; found = 1 } END { exit !found }' "$table") || {
    echo "zig-linker: no row for '$target' in $table (call this as scripts/zig-linker/<rust-target>)" >&2
    exit 2
}
command -v cargo-zigbuild >/dev/null 2>&1 || {
    echo "zig-linker: cargo-zigbuild not found on PATH: pip install ziglang cargo-zigbuild (versions in docker/cross/Dockerfile)" >&2
    exit 127
}
# shellcheck disable=SC2086 # column 6 is a list of words
exec cargo-zigbuild zig cc -- -g -fno-sanitize=all $args "$@"
