#!/usr/bin/env bash
# Run the project's CI (`bash .ci/run`) the way CI runs it, on a fresh Debian 12
# machine: a container made from a `debootstrap --variant=minbase bookworm`
# root (scripts/docker-lib.sh's base_image), as root, with full capabilities,
# the host network, and nothing from this machine but:
#   - the project's files (tracked and untracked, not the ignored ones such as
#     target/), copied in from a read-only mount, as a fresh clone would have
#     them, so nothing built here or there leaks across;
#   - this machine's Rust toolchain, /root/.rustup and /root/.cargo, as a
#     snapshot taken at the start (hard links, so instant and free; a copy
#     where /var/tmp is another file system): a rustup on this machine that
#     updates a toolchain while CI runs (cross does, on its first run) must
#     not swap rustc under the running build. The snapshot is mounted
#     read-only, under an overlay whose upper layer lives in the container:
#     .ci/run adds rustup components and targets, cargo installs tools
#     (cargo-fuzz) and fills its registry cache, and all of that lands in the
#     container, never in this machine's toolchain;
#   - this machine's extra CA certificates (docker_ca_flags): its outgoing TLS
#     needs them, or pip, cargo and rustup fail with "self-signed certificate".
# The run starts with SIGHUP and SIGINT ignored, as under `nohup` or as a `&`
# job of a script: the suite must not depend on inherited dispositions.
#
# Stages that need a container engine themselves (docker: the `cross` build,
# the systemd-in-a-container tests) cannot run in this container: ES_FRESH_CI=1
# is set there, and such a stage prints one loud SKIPPED line (scripts/lib.sh's
# fresh_ci_skip). They still run in normal CI.
#
#   scripts/fresh-ci.sh          # as root; about 20-30 minutes
#
# Prints the run's output, then each stage's time and a last line
# "fresh-ci: PASS|FAIL ..."; exits with .ci/run's status (124 when
# FRESH_CI_TIMEOUT, default 3600 s, ran out). The whole log is kept in
# target/fresh-ci/run.log.
#
# Environment: FRESH_CI_IMAGE (default debian:bookworm, made by base_image if
# missing), FRESH_CI_TIMEOUT (seconds, default 3600), FRESH_CI_FROM (passed
# on as ES_TEST_FROM: scripts/test.sh skips its stages before that one; a
# full run is the proof, this reruns the tail of a failed one).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ES_SCRIPT=fresh-ci
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/docker-lib.sh
. "$ROOT/scripts/docker-lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (dockerd, and the container runs CI as root)"
IMAGE=${FRESH_CI_IMAGE:-debian:bookworm}
LIMIT=${FRESH_CI_TIMEOUT:-3600}
for d in /root/.rustup /root/.cargo; do
    [ -d "$d" ] || die "$d missing: the container uses this machine's rustup toolchain (install Rust with rustup first)"
done
command -v git >/dev/null 2>&1 || apt_install git

OUT=$ROOT/target/fresh-ci
mkdir -p "$OUT"
LOG=$OUT/run.log
T_START=$SECONDS

dockerd_up
base_image "$IMAGE"

# The list of the project's files: what a fresh clone plus the work in
# progress would hold, without build output.
STATE=$(mktemp -d /var/tmp/es-fresh-ci.XXXXXX)
NAME=entropyservice-fresh-ci-$$
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    rm -rf "$STATE"
    dockerd_down
}
trap cleanup EXIT
log "snapshot of /root/.rustup and /root/.cargo in $STATE"
for t in rustup cargo; do
    cp -al "/root/.$t" "$STATE/$t" 2>/dev/null || { rm -rf "${STATE:?}/$t"; cp -a "/root/.$t" "$STATE/$t"; } \
        || die "cannot snapshot /root/.$t"
done
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done >"$STATE/files"
printf '%s' "${FRESH_CI_FROM:-}" >"$STATE/from"

# What runs in the container, as root.
cat >"$STATE/inside.sh" <<'EOF'
set -euo pipefail
t0=$SECONDS
echo "=== fresh container: apt sources, CA certificates, toolchain overlays"
# A root imported from a mktemp directory can be 0700; Debian's / is 0755
# (otherwise no user but root can even load libc).
chmod 0755 /
# A fresh Debian 12 install's package sources (the debootstrapped root has
# only bookworm main).
cat >/etc/apt/sources.list <<'SOURCES'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends ca-certificates >/dev/null
update-ca-certificates >/dev/null
for t in rustup cargo; do
    mkdir -p "/var/lib/fresh-ci/$t/upper" "/var/lib/fresh-ci/$t/work" "/root/.$t"
    mount -t overlay "fresh-ci-$t" \
        -o "lowerdir=/host/$t,upperdir=/var/lib/fresh-ci/$t/upper,workdir=/var/lib/fresh-ci/$t/work" \
        "/root/.$t"
done
mkdir -p /root/entropyservice
(cd /src && tar --null -T /fresh-ci/files -c -f - | tar -x -C /root/entropyservice -f -)
export PATH=/root/.cargo/bin:$PATH CI=true ES_FRESH_CI=1
[ -f /fresh-ci/from ] && ES_TEST_FROM=$(cat /fresh-ci/from) && export ES_TEST_FROM
rustc -V && cargo -V
echo "=== fresh container: apt sources, CA certificates, toolchain overlays: $((SECONDS - t0)) s"
cd /root/entropyservice
# As under nohup, or as a & job of a non-interactive script.
trap '' HUP INT
exec bash .ci/run
EOF

# CI lays the steering repository's shared/ (the known-answer vectors) beside
# the clone, read-only: so does this container, when there is one here.
SHARED=()
if [ -d "$ROOT/../shared" ]; then
    SHARED=(-v "$(cd "$ROOT/../shared" && pwd)":/root/shared:ro)
fi

log "image $IMAGE, container $NAME, log $LOG"
set +e
# shellcheck disable=SC2046 # the flag helpers print words meant to split
timeout --kill-after=30 "$LIMIT" docker run --rm --name "$NAME" --network host \
    $(docker_run_flags) $(docker_ca_flags) \
    -v "$STATE/rustup":/host/rustup:ro -v "$STATE/cargo":/host/cargo:ro \
    -v "$ROOT":/src:ro -v "$STATE/files":/fresh-ci/files:ro -v "$STATE/inside.sh":/fresh-ci/inside.sh:ro \
    -v "$STATE/from":/fresh-ci/from:ro "${SHARED[@]}" \
    "$IMAGE" bash /fresh-ci/inside.sh </dev/null 2>&1 | tee "$LOG"
RC=${PIPESTATUS[0]}
set -e

echo
echo "fresh-ci: stage times (wall clock, seconds):"
sed -n 's/^=== \(.*\): \([0-9][0-9]*\) s$/  \2\t\1/p' "$LOG"
grep -a 'SKIPPED in scripts/fresh-ci.sh' "$LOG" | sed 's/^/  /' || true
TOTAL=$((SECONDS - T_START))
if [ "$RC" = 0 ]; then
    echo "fresh-ci: PASS: .ci/run passed in a fresh Debian 12 container in ${TOTAL} s (log $LOG)"
elif [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
    echo "fresh-ci: FAIL: .ci/run did not finish within ${LIMIT} s (log $LOG)"
else
    echo "fresh-ci: FAIL: .ci/run exited with status $RC after ${TOTAL} s (log $LOG)"
fi
exit "$RC"
