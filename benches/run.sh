#!/usr/bin/env bash
# Benchmarks of entropyservice against the original v2 pipeline (issue 8).
#
#   benches/run.sh                 # the documented run, about 3 minutes; prints the table
#   benches/run.sh --update-doc    # same, and rewrites the results block of BENCHMARKS.md
#   benches/run.sh --quick         # short windows, for checking the harness (under 2 minutes)
#
# Other options go to benches/bench.py (see benches/bench.py --help): --keep
# keeps the work directory with logs and strace output.
#
# Needs root and a Debian-like system; installs what is missing:
# dropbear-bin pv rng-tools5 openssh-client strace python3 util-linux.
# Builds the host release binary in target/bench (CARGO_TARGET_DIR overrides).
# Not part of `cargo test` or CI.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "benches/run.sh: run as root (mount namespace for Dropbear, RNDADDENTROPY)" >&2; exit 77; }

missing=()
for t in dropbear:dropbear-bin dropbearkey:dropbear-bin dbclient:dropbear-bin pv:pv rngd:rng-tools5 \
         ssh:openssh-client strace:strace python3:python3 unshare:util-linux; do
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v "${t%%:*}" >/dev/null \
        || missing+=("${t#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "benches/run.sh: apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
cargo build --release --quiet

args=()
for a in "$@"; do
    if [ "$a" = --update-doc ]; then args+=(--update-doc "$ROOT/BENCHMARKS.md"); else args+=("$a"); fi
done
/usr/bin/env python3 "$ROOT/benches/bench.py" --bin "$CARGO_TARGET_DIR/release/entropyservice" \
    --command "benches/run.sh${*:+ $*}" "${args[@]}" &
py=$!
trap 'kill -TERM "$py" 2>/dev/null; wait "$py"' INT TERM HUP
wait "$py"
