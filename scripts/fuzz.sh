#!/usr/bin/env bash
# Fuzz every parser that sees outside data, each for a bounded time (issue 7,
# "Hostile input"). One command for CI and for people:
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh     # longer
#   scripts/fuzz.sh 30 request status    # 30 s each, only these targets
#
# Targets (fuzz/fuzz_targets/*.rs):
#   request          SSH_ORIGINAL_COMMAND      parse::request
#   peer             SSH_CONNECTION/CLIENT, --allow-from
#                                              parse::peer_address, Cidr, cidr_list
#   hostkey          --host-key, key lines     hostkey::PublicKey, base64, sha256
#   authorized_keys  authorized_keys, .pub     setup's first_key_line/find_key
#   status           the status file           status::parse, status::render (JSON)
#   numbers          numeric and name options  parse::decimal, duration_ns,
#                                              is_safe_name/host, user_host
#   server_spec      client --server "..."     field parsing -> ssh::arguments
# Seed files hold no structure to parse: only their length is checked (see
# fuzz/README.md).
#
# Installs cargo-fuzz (cargo install cargo-fuzz --locked) if it is missing;
# needs a nightly toolchain (NIGHTLY, default `nightly`). Each target's
# corpus grows in fuzz/corpus/TARGET (not in git), starting from the
# hand-written fuzz/seeds/TARGET. A crash leaves its input in
# fuzz/artifacts/TARGET/ and makes this script exit 1 after the other
# targets ran; reproduce it with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
#
# Environment: FUZZ_SECONDS (per target, default 60; the first argument
# overrides it), NIGHTLY, FUZZ_SANITIZER (default none: the parsers are safe
# Rust, so panics, overflow checks and the targets' assertions are the
# oracle and twice the executions beat ASan; `address` works too),
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-max_len=8192").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
NIGHTLY=${NIGHTLY:-nightly}
SANITIZER=${FUZZ_SANITIZER:-none}
read -r -a EXTRA <<<"${FUZZ_ARGS:-}"

case $SECONDS_EACH in
'' | *[!0-9]*)
    echo "fuzz.sh: seconds must be a whole number, got '$SECONDS_EACH'" >&2
    exit 2
    ;;
esac

if ! cargo +"$NIGHTLY" fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo +"$NIGHTLY" fuzz list)
fi

start=$(date +%s)
# One build for all targets, so the time budget goes to fuzzing.
cargo +"$NIGHTLY" fuzz build -s "$SANITIZER"

LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT
failed=()
summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
    echo "=== $t: ${SECONDS_EACH}s" >&2
    rc=0
    cargo +"$NIGHTLY" fuzz run -s "$SANITIZER" "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 "${EXTRA[@]}" \
        >"$LOGDIR/$t.log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGDIR/$t.log" | tail -n 1)
    if [ -z "$execs" ]; then
        # No final stats (crash): the last status line's #N.
        execs=$(grep -o '^#[0-9]*' "$LOGDIR/$t.log" | tail -n 1 | tr -d '#' || true)
    fi
    cov=$(grep -o 'cov: [0-9]*' "$LOGDIR/$t.log" | tail -n 1 | tr -dc 0-9 || true)
    line=$(printf '%-16s %12s execs  cov %-5s' "$t" "${execs:-?}" "${cov:-?}")
    if [ "$rc" -ne 0 ]; then
        grep -A 3 -m 1 'panicked' "$LOGDIR/$t.log" >&2 || true
        tail -n 40 "$LOGDIR/$t.log" >&2
        failed+=("$t")
        line="$line  FAILED (exit $rc; input in fuzz/artifacts/$t/)"
    fi
    summary+=("$line")
    echo "$line" >&2
done

echo
echo "fuzz.sh: ${SECONDS_EACH}s per target, $(($(date +%s) - start))s in all (build included)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
