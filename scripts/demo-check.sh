#!/usr/bin/env bash
# Runs the README's first command, scripts/demo.sh, as a newcomer would, and
# checks what it printed: the one fetch, the daemon's status file, and the
# server's audit log. Exits non-zero with one line saying what was missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
scripts/demo.sh >"$out" 2>&1 || rc=$?
fail() { cat "$out" >&2; echo "demo-check: FAIL: $1" >&2; exit 1; }
[ "$rc" = 0 ] || fail "scripts/demo.sh exited $rc"
want() { grep -F -- "$1" "$out" >/dev/null || fail "no '$1' in the demo's output"; }
want "received 256 bytes from root@127.0.0.1:"
want "state: stopped"
want "bytes_mixed: "
want 'request="get 256"'
want 'reason="done"'
grep -E '^bytes_received: [1-9]' "$out" >/dev/null || fail "the daemon received nothing"
echo "demo-check: ok ($(grep -c ' end client=demo ' "$out") sessions in the audit log)"
