#!/usr/bin/env bash
# The sh -c scripts below run inside the container: their $ expand there.
# shellcheck disable=SC2016
# The Debian package and its systemd units under a real systemd.
#
# Real: systemd 252 as PID 1 of a Debian 12 container (tests/systemd/Dockerfile),
# dpkg installing, upgrading and purging the .deb that dist/debian/build-deb.sh
# makes from the static x86_64 binary, the package's units with all their
# sandboxing, the journal, a Dropbear server on the container's loopback with
# `entropyservice server` as its forced command, dbclient, RNDADDENTROPY on
# this machine's kernel, and a reboot of the container (docker stop sends
# SIGRTMIN+3, systemd's clean halt; docker start boots it again with its
# disk kept).
# Not real: the kernel is this machine's, so its CRNG is ready long before
# the container boots (credits are accepted but change nothing), and the
# boot id is this machine's (the journal is cut by cursors, not by boot).
# There is no D-Bus in the container (see the Dockerfile).
#
# Checks: systemd-analyze verify of both units; install (user, key, seed unit
# enabled and run); a client instance (with a failover server quoted in
# OPTIONS) fetches over SSH with the pinned key, runs unprivileged with only
# CAP_SYS_ADMIN, and shows in `entropyservice status`; another fetches with
# OpenSSH's ssh under the same sandbox; a wrong host key is
# refused with a warning and nothing is fetched; a missing key file and an
# unknown option are errors that stop the instance without restarts; journal
# priorities (errors 3, warnings 4, info 6); systemd-analyze security
# exposure of the client; the push recipe (server | ssh root@vm, sink as the
# forced command); a reinstall keeps an edited conffile and the key; a reboot
# saves the seed at shutdown, loads and credits it before sysinit.target;
# dpkg -r keeps key, configuration and seed; dpkg --purge leaves nothing
# behind. Every check fails the run.
#
#   tests/systemd/run.sh
#
# Needs root and a container engine (dockerd_up starts Debian's docker.io);
# (re)builds target/dist/entropyservice-x86_64-unknown-linux-musl with
# scripts/cross-build.sh first (cargo's own check: quick when up to date), so
# the package never carries a binary older than the tree.
# ES_FRESH_CI=1 (CI inside a container, which cannot run one) skips it.
# ES_SYSTEMD_NAME names the image and container (default es-systemd).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
ES_SCRIPT=systemd-test
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/docker-lib.sh
. "$ROOT/scripts/docker-lib.sh"

if [ "${ES_FRESH_CI:-0}" = 1 ]; then
    echo "systemd-test: SKIPPED: ES_FRESH_CI=1: this CI runs inside a container without a container engine, and systemd needs one to be PID 1; run tests/systemd/run.sh on a machine with dockerd" >&2
    exit 0
fi
[ "$(id -u)" = 0 ] || die "needs root (dockerd, RNDADDENTROPY)"
T0=$SECONDS
NAME=${ES_SYSTEMD_NAME:-es-systemd}
C=$NAME
TARGET=x86_64-unknown-linux-musl

# --- the package ------------------------------------------------------------
scripts/cross-build.sh "$TARGET" >&2
DEB=$(dist/debian/build-deb.sh "$TARGET")
[ -f "$DEB" ] || die "build-deb.sh made no package"
# arm64 is built as well when the cross build left its binary (CI's earlier
# stage does); only its metadata and ELF machine can be checked here.
if [ -x target/dist/entropyservice-aarch64-unknown-linux-musl ]; then
    ARM=$(dist/debian/build-deb.sh aarch64-unknown-linux-musl)
    [ "$(dpkg-deb -f "$ARM" Architecture)" = arm64 ] || die "$ARM is not Architecture: arm64"
    x=$(mktemp -d)
    dpkg-deb -x "$ARM" "$x"
    elf=$(od -An -tx1 -N20 "$x/usr/bin/entropyservice" | tr -d ' \n')
    rm -rf "$x"
    # ELF, 64-bit, little-endian, e_machine 183 (AArch64)
    case "$elf" in 7f454c46020101*b700) ;; *) die "$ARM does not hold an aarch64 ELF binary ($elf)" ;; esac
    log "ok: $(basename "$ARM"): $(stat -c %s "$ARM") bytes, aarch64 binary"
else
    log "no target/dist/entropyservice-aarch64-unknown-linux-musl: amd64 package only"
fi
DEB_BYTES=$(stat -c %s "$DEB")
log "package $(basename "$DEB"): $DEB_BYTES bytes"
dpkg-deb --contents "$DEB" | grep ' \./usr/bin/entropyservice$' >/dev/null || die "the package has no /usr/bin/entropyservice"

# --- the container ----------------------------------------------------------
dockerd_up
base_image debian:bookworm
log "docker build $NAME (Debian 12 with systemd)"
out=$(docker build --network host -q -t "$NAME" tests/systemd 2>&1) || { echo "$out" >&2; die "docker build $NAME failed"; }
docker rm -f "$C" >/dev/null 2>&1 || true
cleanup() { docker rm -f "$C" >/dev/null 2>&1 || true; }
trap 'cleanup; dockerd_down' EXIT
# shellcheck disable=SC2046
docker run -d --name "$C" $(docker_run_flags) --network none \
    --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw --cgroupns=host \
    -e container=docker -v "$DEB:/mnt/entropyservice.deb:ro" "$NAME" >/dev/null \
    || die "docker run $NAME failed"

ct() { docker exec "$C" "$@"; }
sh_in() { docker exec "$C" sh -ec "$1"; }

# is-system-running fails until the manager answers: retry.
wait_running() {
    local s _
    for _ in $(seq 1 90); do
        s=$(ct systemctl is-system-running 2>/dev/null || true)
        case "$s" in
        running) return 0 ;;
        degraded)
            ct systemctl --failed --no-pager >&2 || true
            die "systemd in the container is degraded"
            ;;
        esac
        sleep 1
    done
    ct systemctl list-jobs --no-pager >&2 || true
    die "systemd in the container is not running after 90 s (state: ${s:-none})"
}

# Waits up to $1 s for the shell test $2 inside the container.
wait_for() {
    local n=$1 _
    for _ in $(seq 1 "$n"); do
        sh_in "$2" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

pass() { log "ok: $*"; }

wait_running
# An image made by an older base_image has / at mode 0700 (mktemp -d), and a
# layer cannot change the root's mode: services running as another user could
# not chdir to /. This persists in the container over its reboot.
ct chmod 0755 /
pass "systemd is PID 1 and running: $(ct systemctl --version | head -n 1)"

# The test server's user and keys, made before the snapshot below.
sh_in '
useradd -m -s /bin/sh entropy
mkdir -p /etc/es-test
dropbearkey -t ed25519 -f /etc/es-test/dropbear_ed25519_host_key >/dev/null 2>&1
dropbearkey -t ed25519 -f /etc/es-test/other_key >/dev/null 2>&1
mkdir -m 700 /home/entropy/.ssh
chown entropy:entropy /home/entropy/.ssh
'

# What the machine looks like before the package, for the purge check.
SNAP_FIND='find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /mnt -o -path /var/log -o -path /var/cache -o -path /var/lib/dpkg \) -prune -o -print | sort; sha256sum /etc/passwd /etc/group /etc/shadow /etc/gshadow'
ct sh -c "$SNAP_FIND" >"$ROOT/target/systemd-before.txt"

# --- install ----------------------------------------------------------------
out=$(ct dpkg -i /mnt/entropyservice.deb 2>&1) || { echo "$out" >&2; die "dpkg -i failed"; }
grep -q "^entropyservice authorize --client " <<<"$out" \
    || { echo "$out" >&2; die "dpkg -i did not print the authorize command for the new key"; }
PUB=$(ct cat /etc/entropyservice/id_client.pub)
case "$PUB" in ssh-ed25519\ *) ;; *) die "the client key is not ed25519: $PUB" ;; esac
[ "$(ct stat -c '%U %a' /etc/entropyservice/id_client)" = "entropyservice 600" ] \
    || die "/etc/entropyservice/id_client is not 0600 entropyservice"
[ "$(ct stat -c '%U:%G %a' /etc/entropyservice)" = "root:entropyservice 750" ] \
    || die "/etc/entropyservice is not 0750 root:entropyservice"
[ "$(ct getent passwd entropyservice | cut -d: -f6,7)" = "/nonexistent:/usr/sbin/nologin" ] \
    || die "no system user entropyservice with no home and no shell"
[ "$(ct systemctl is-enabled entropyservice-seed.service)" = enabled ] || die "the seed unit is not enabled"
[ "$(ct systemctl is-active entropyservice-seed.service)" = active ] || die "the seed unit did not run at install"
ct journalctl -u entropyservice-seed -o cat | grep '^info: seed load: 0 bytes mixed, 0 bits credited; new seed saved (creditable)$' >/dev/null \
    || die "the seed unit did not log its first load"
[ "$(ct stat -c '%U %a' /var/lib/entropyservice/seed /var/lib/entropyservice/seed/seed.credit)" = "entropyservice 700
entropyservice 600" ] || die "the seed directory or file is not private to entropyservice"
pass "dpkg -i: user, ed25519 key, seed unit enabled and run, creditable seed saved"

# --- units are clean --------------------------------------------------------
out=$(ct systemd-analyze verify /lib/systemd/system/entropyservice-seed.service \
    /lib/systemd/system/entropyservice@vm1.service 2>&1) || { echo "$out" >&2; die "systemd-analyze verify failed"; }
[ -z "$out" ] || { echo "$out" >&2; die "systemd-analyze verify has warnings"; }
pass "systemd-analyze verify: no warnings"

# --- a Dropbear server on loopback ----------------------------------------
sh_in '
entropyservice authorize --client vm1 --rate 4096 --max-sessions 2 \
    --authorized-keys /home/entropy/.ssh/authorized_keys "$(cat /etc/entropyservice/id_client.pub)" >/dev/null
chown -R entropy:entropy /home/entropy/.ssh
printf "%s\n" "[Service]" \
    "ExecStart=/usr/sbin/dropbear -F -E -p 127.0.0.1:2222 -r /etc/es-test/dropbear_ed25519_host_key" \
    "[Install]" "WantedBy=multi-user.target" >/etc/systemd/system/es-test-dropbear.service
systemctl enable --quiet --now es-test-dropbear.service
'
HOST_KEY=$(ct entropyservice hostkey --dropbear-dir /etc/es-test \
    | sed -n 's/^\(ssh-ed25519 [A-Za-z0-9+/=]*\).*dropbear_ed25519_host_key.*/\1/p' | head -n 1)
[ -n "$HOST_KEY" ] || die "entropyservice hostkey printed no ed25519 key for the test server"
OTHER_KEY=$(ct dropbearkey -y -f /etc/es-test/other_key | grep '^ssh-ed25519 ' | cut -d' ' -f1,2)
wait_for 10 'grep -q ":08AE 00000000:0000 0A" /proc/net/tcp' \
    || die "dropbear does not listen on 127.0.0.1:2222"

# --- a client instance --------------------------------------------------------
# A second server (the same one) in OPTIONS: a value with spaces inside
# single quotes stays one argument when systemd splits $OPTIONS.
docker exec -i "$C" sh -c 'cat >/etc/entropyservice/vm1.conf' <<EOF
SERVER=entropy@127.0.0.1
PORT=2222
HOST_KEY="$HOST_KEY"
OPTIONS="--interval 1h --get-bytes 64 --server 'host=127.0.0.1,port=2222,user=entropy,key=/etc/entropyservice/id_client,host-key=$HOST_KEY'"
EOF
ct systemctl enable --quiet --now entropyservice@vm1.service
wait_for 30 'grep -qx "bytes_received: 64" /run/entropyservice/vm1/status' || {
    ct journalctl -u entropyservice@vm1 --no-pager >&2 || true
    die "entropyservice@vm1 did not fetch 64 bytes within 30 s"
}
ct journalctl -u entropyservice@vm1 -o cat | grep -x 'info: starting in topup mode with 2 server(s)' >/dev/null \
    || die "entropyservice@vm1 did not get both servers from /etc/entropyservice/vm1.conf"
# Without --status-file: the one instance's /run/entropyservice/vm1/status.
st=$(ct entropyservice status) || die "entropyservice status failed"
grep -q 'entropy@127.0.0.1' <<<"$st" || { echo "$st" >&2; die "entropyservice status (no --status-file) does not find the instance vm1 and name its server"; }
PID=$(ct systemctl show -p MainPID --value entropyservice@vm1.service)
[ "$PID" -gt 0 ] || die "entropyservice@vm1 has no main process"
caps=$(ct sh -c "grep -E '^(Uid|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):' /proc/$PID/status" | tr -s '\t ' ' ')
uid=$(ct id -u entropyservice)
for want in "Uid: $uid $uid $uid $uid" "CapEff: 0000000000200000" "CapPrm: 0000000000200000" \
    "CapBnd: 0000000000200000" "CapAmb: 0000000000200000" "NoNewPrivs: 1"; do
    grep -qx "$want" <<<"$caps" || { echo "$caps" >&2; die "the client process lacks '$want'"; }
done
pass "entropyservice@vm1 fetched 64 bytes over Dropbear with the pinned key, as uid $uid with only CAP_SYS_ADMIN; status finds and shows it"

# The same with OpenSSH's ssh as the SSH child (what a VM without
# dropbear-bin uses), an OpenSSH-format key, and a host name to resolve.
sh_in '
entropyservice keygen --tool ssh-keygen --out /etc/es-test/id_openssh >/dev/null 2>&1
chown entropyservice: /etc/es-test/id_openssh
entropyservice authorize --client vm2 --authorized-keys /home/entropy/.ssh/authorized_keys \
    "$(cat /etc/es-test/id_openssh.pub)" >/dev/null 2>&1
'
docker exec -i "$C" sh -c 'cat >/etc/entropyservice/vm2.conf' <<EOF
SERVER=entropy@localhost
PORT=2222
HOST_KEY="$HOST_KEY"
KEY=/etc/es-test/id_openssh
OPTIONS="--ssh ssh"
EOF
ct systemctl start entropyservice@vm2.service
wait_for 30 'grep -qx "bytes_received: 64" /run/entropyservice/vm2/status' || {
    ct journalctl -u entropyservice@vm2 --no-pager >&2 || true
    die "entropyservice@vm2 (OpenSSH ssh) did not fetch 64 bytes within 30 s"
}
ct systemctl stop entropyservice@vm2.service
ct rm /etc/entropyservice/vm2.conf
pass "entropyservice@vm2 fetched 64 bytes from localhost with OpenSSH's ssh under the same sandbox"

# --- a wrong host key, a missing key file --------------------------------------
# A host key that is not the pinned one: refused with a warning naming both
# fingerprints, nothing fetched, the client keeps backing off.
docker exec -i "$C" sh -c 'cat >/etc/entropyservice/bad.conf' <<EOF
SERVER=entropy@127.0.0.1
PORT=2222
HOST_KEY="$OTHER_KEY"
EOF
ct systemctl start entropyservice@bad.service
wait_for 30 'journalctl -u entropyservice@bad -p 4..4 -o cat | grep -q "^warning: host key of 127.0.0.1 does not match the pinned key"' || {
    ct journalctl -u entropyservice@bad --no-pager >&2 || true
    die "entropyservice@bad did not refuse the wrong host key at priority warning"
}
ct sh -c '! grep -q "^bytes_received: [1-9]" /run/entropyservice/bad/status' || die "entropyservice@bad fetched bytes from a server with the wrong host key"
ct systemctl stop entropyservice@bad.service
# A missing key file: an error (exit 66) that a restart cannot fix.
docker exec -i "$C" sh -c 'cat >/etc/entropyservice/nokey.conf' <<EOF
SERVER=entropy@127.0.0.1
PORT=2222
HOST_KEY="$HOST_KEY"
KEY=/etc/entropyservice/missing
EOF
# It may exit before systemctl start returns (Type=exec): the status decides.
ct systemctl start entropyservice@nokey.service 2>/dev/null || true
wait_for 30 '[ "$(systemctl show -p ExecMainStatus --value entropyservice@nokey.service)" = 66 ]' || {
    ct journalctl -u entropyservice@nokey --no-pager >&2 || true
    die "entropyservice@nokey did not exit 66 (no key file)"
}
sleep 2
[ "$(ct systemctl is-active entropyservice@nokey.service || true)" = failed ] \
    || die "entropyservice@nokey is not failed: Restart= should not retry a missing key file"
[ "$(ct systemctl show -p NRestarts --value entropyservice@nokey.service)" = 0 ] \
    || die "entropyservice@nokey was restarted"
ct systemctl reset-failed entropyservice@nokey.service
# A bad option: an error (exit 64), not restarted either.
docker exec -i "$C" sh -c 'cat >/etc/entropyservice/badopt.conf' <<EOF
SERVER=entropy@127.0.0.1
HOST_KEY="$HOST_KEY"
OPTIONS="--no-such-option"
EOF
ct systemctl start entropyservice@badopt.service 2>/dev/null || true
wait_for 30 '[ "$(systemctl show -p ExecMainStatus --value entropyservice@badopt.service)" = 64 ]' || {
    ct journalctl -u entropyservice@badopt --no-pager >&2 || true
    die "entropyservice@badopt did not exit 64 (unknown option)"
}
sleep 2
[ "$(ct systemctl show -p NRestarts --value entropyservice@badopt.service)" = 0 ] \
    || die "entropyservice@badopt was restarted"
ct journalctl -u entropyservice@badopt -p 3..3 -o cat | grep '^error: .*--no-such-option' >/dev/null \
    || die "the unknown option is not in the journal at priority err"
ct systemctl reset-failed entropyservice@badopt.service
ct rm /etc/entropyservice/bad.conf /etc/entropyservice/nokey.conf /etc/entropyservice/badopt.conf
pass "wrong host key: refused (warning), nothing fetched; missing key (66) and unknown option (64): errors, not restarted"

# --- journal priorities -------------------------------------------------------
# The clients' and seed unit's stderr (_TRANSPORT=stdout); the server's audit
# lines come through syslog with their own priorities.
for p in 3:error 4:warning 6:info; do
    n=${p%%:*} word=${p#*:}
    lines=$(ct journalctl -t entropyservice _TRANSPORT=stdout -p "$n..$n" -o cat --no-pager)
    if [ -n "$lines" ] && grep -qv "^$word: " <<<"$lines"; then
        echo "$lines" >&2
        die "journal priority $n holds lines that are not '$word:'"
    fi
done
ct journalctl -t entropyservice -u entropyservice@nokey -p 3..3 -o cat --no-pager | grep '^error: .*/etc/entropyservice/missing' >/dev/null \
    || die "the missing key file is not in the journal at priority err"
ct journalctl -t entropyservice -u entropyservice@vm1 -p 6..6 -o cat --no-pager | grep '^info: ' >/dev/null \
    || die "the client's info lines are not in the journal at priority info"
# Everything entropyservice itself logged at err or worse (systemd's own
# lines about the units, such as a failed start, are not ours to judge).
ERRS=$(ct journalctl -p err -t entropyservice -o cat --no-pager)
[ -n "$ERRS" ] || die "journalctl -p err holds no error of entropyservice (two were caused)"
if grep -qv '^error: ' <<<"$ERRS"; then
    echo "$ERRS" >&2
    die "journalctl -p err holds lines of entropyservice that are not errors"
fi
pass "journal: errors at 3, warnings at 4, info at 6; journalctl -p err holds only errors"

# --- systemd-analyze security --------------------------------------------------
SEC=$(ct systemd-analyze security --no-pager entropyservice@vm1.service 2>&1) || true
EXPOSURE=$(echo "$SEC" | sed -n 's/.*Overall exposure level for entropyservice@vm1.service: \([0-9.]*\) .*/\1/p')
[ -n "$EXPOSURE" ] || { echo "$SEC" >&2; die "systemd-analyze security printed no exposure level"; }
awk -v e="$EXPOSURE" 'BEGIN { exit !(e <= 2.5) }' || { echo "$SEC" >&2; die "exposure $EXPOSURE is above 2.5"; }
SEED_EXPOSURE=$(ct systemd-analyze security --no-pager entropyservice-seed.service 2>&1 \
    | sed -n 's/.*Overall exposure level for entropyservice-seed.service: \([0-9.]*\) .*/\1/p')
[ -n "$SEED_EXPOSURE" ] || die "systemd-analyze security printed no exposure level for the seed unit"
awk -v e="$SEED_EXPOSURE" 'BEGIN { exit !(e <= 2.5) }' || die "seed unit exposure $SEED_EXPOSURE is above 2.5"
pass "systemd-analyze security: entropyservice@vm1.service $EXPOSURE, entropyservice-seed.service $SEED_EXPOSURE"

# --- push to a brand-new VM -----------------------------------------------------
# The README's recipe: sink as root's forced command on the new machine, then
# `entropyservice server --max-bytes 512 | ssh -T root@newvm` from one with entropy.
sh_in '
mkdir -p -m 700 /root/.ssh /root/pusher
ssh-keygen -q -t ed25519 -N "" -f /root/pusher/id
echo "command=\"/usr/bin/entropyservice sink\",restrict $(cut -d" " -f1,2 /root/pusher/id.pub)" >/root/.ssh/authorized_keys
echo "[127.0.0.1]:2222 $(dropbearkey -y -f /etc/es-test/dropbear_ed25519_host_key | grep ^ssh-ed25519 | cut -d" " -f1,2)" >/root/pusher/known_hosts
'
push=$(ct sh -c 'entropyservice server --max-bytes 512 | ssh -T -p 2222 -i /root/pusher/id \
    -o UserKnownHostsFile=/root/pusher/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1' 2>&1) \
    || { echo "$push" >&2; die "the push recipe failed"; }
grep -q '512 bytes' <<<"$push" || { echo "$push" >&2; die "the sink did not report 512 bytes"; }
ct rm -rf /root/.ssh /root/pusher
pass "push: server --max-bytes 512 | ssh -T root@vm with sink as the forced command: $(echo "$push" | tail -n 1)"

# --- reinstall: conffile and key kept -------------------------------------------
ct sh -c 'echo "# edited" >>/etc/entropyservice/example.conf'
KEYSUM=$(ct sha256sum /etc/entropyservice/id_client)
out=$(ct dpkg -i /mnt/entropyservice.deb 2>&1) || { echo "$out" >&2; die "dpkg -i over the installed package failed"; }
ct grep -qx '# edited' /etc/entropyservice/example.conf || die "reinstall replaced the edited conffile"
[ "$(ct sha256sum /etc/entropyservice/id_client)" = "$KEYSUM" ] || die "reinstall changed the client key"
[ "$(ct systemctl is-active entropyservice@vm1.service)" = active ] || die "entropyservice@vm1 is not running after the reinstall"
pass "reinstall: edited conffile and key kept, client restarted"

# --- reboot -------------------------------------------------------------------
SEED=/var/lib/entropyservice/seed/seed.credit
BEFORE=$(ct sha256sum "$SEED" | cut -d' ' -f1)
CURSOR=$(ct journalctl -n 0 --show-cursor | sed -n 's/^-- cursor: //p')
[ -n "$CURSOR" ] || die "no journal cursor"
log "reboot: docker stop (SIGRTMIN+3), docker start"
docker stop -t 60 "$C" >/dev/null || die "docker stop failed"
docker cp "$C:$SEED" "$ROOT/target/systemd-seed.bin" || die "no creditable seed after shutdown"
SAVED=$(sha256sum "$ROOT/target/systemd-seed.bin" | cut -d' ' -f1)
rm -f "$ROOT/target/systemd-seed.bin"
[ "$SAVED" != "$BEFORE" ] || die "no new seed was saved at shutdown"
docker start "$C" >/dev/null || die "docker start failed"
wait_running
J=$(ct journalctl --after-cursor="$CURSOR" -o cat --no-pager)
grep -qx 'info: seed save: new seed written (creditable)' <<<"$J" || die "no seed save at shutdown in the journal"
grep -qx "info: seed $SEED: 32 bytes mixed, 256 bits credited (creditable seed)" <<<"$J" \
    || { echo "$J" | grep seed >&2; die "the boot did not credit the seed saved at shutdown"; }
AFTER=$(ct sha256sum "$SEED" | cut -d' ' -f1)
[ "$AFTER" != "$SAVED" ] || die "the loaded seed was not replaced (it could be used twice)"
seed_done=$(ct systemctl show -p ExecMainExitTimestampMonotonic --value entropyservice-seed.service)
sysinit=$(ct systemctl show -p ActiveEnterTimestampMonotonic --value sysinit.target)
if [ "$seed_done" -le 0 ] || [ "$seed_done" -gt "$sysinit" ]; then
    die "the seed unit finished at $seed_done us, not before sysinit.target ($sysinit us)"
fi
CHAIN=$(ct systemd-analyze critical-chain --no-pager entropyservice-seed.service 2>&1) || true
grep -q 'entropyservice-seed.service' <<<"$CHAIN" || { echo "$CHAIN" >&2; die "critical-chain does not show the seed unit"; }
echo "$CHAIN" >&2
wait_for 30 'grep -qx "bytes_received: 64" /run/entropyservice/vm1/status' || die "entropyservice@vm1 did not fetch after the reboot"
pass "reboot: seed saved at shutdown, credited at boot ${seed_done} us < sysinit.target ${sysinit} us, replaced; client fetched again"

# --- remove, install again -------------------------------------------------------
out=$(ct dpkg -r entropyservice 2>&1) || { echo "$out" >&2; die "dpkg -r failed"; }
ct sh -c '! [ -e /usr/bin/entropyservice ] && ! [ -e /lib/systemd/system/entropyservice@.service ]' \
    || die "dpkg -r left the binary or the units"
n=$(ct sh -c 'u=$(id -u entropyservice); n=0; for p in /proc/[0-9]*; do [ "$(stat -c %u "$p" 2>/dev/null)" = "$u" ] && n=$((n + 1)); done; echo $n')
[ "$n" = 0 ] || die "$n processes of the entropyservice user run after dpkg -r"
ct test -s /etc/entropyservice/id_client || die "dpkg -r removed the client key"
ct test -s /etc/entropyservice/vm1.conf || die "dpkg -r removed /etc/entropyservice/vm1.conf"
ct test -s "$SEED" || die "dpkg -r removed the seed"
KEYSUM=$(ct sha256sum /etc/entropyservice/id_client)
out=$(ct dpkg -i /mnt/entropyservice.deb 2>&1) || { echo "$out" >&2; die "dpkg -i after dpkg -r failed"; }
[ "$(ct sha256sum /etc/entropyservice/id_client)" = "$KEYSUM" ] || die "install after remove replaced the client key"
[ "$(ct systemctl is-enabled entropyservice-seed.service)" = enabled ] || die "the seed unit is not enabled after remove and install"
[ "$(ct systemctl is-active entropyservice-seed.service)" = active ] || die "the seed unit is not active after remove and install"
pass "dpkg -r keeps key, configuration and seed and stops everything; install again enables the seed unit"

# --- purge --------------------------------------------------------------------
sh_in 'systemctl disable --quiet --now es-test-dropbear; rm /etc/systemd/system/es-test-dropbear.service
systemctl daemon-reload
rm -rf "/tmp/entropyservice-$(id -u entropy)" /home/entropy/.ssh/authorized_keys /etc/es-test/id_openssh*'
out=$(ct dpkg --purge entropyservice 2>&1) || { echo "$out" >&2; die "dpkg --purge failed"; }
left=$(ct sh -c 'find / -xdev \( -path /proc -o -path /sys -o -path /mnt \) -prune -o -name "*entropyservice*" -print; ls -d /run/entropyservice 2>/dev/null; getent passwd entropyservice; getent group entropyservice' || true)
[ -z "$left" ] || { echo "$left" >&2; die "dpkg --purge left these behind"; }
ct sh -c "$SNAP_FIND" >"$ROOT/target/systemd-after.txt"
if ! diff -u "$ROOT/target/systemd-before.txt" "$ROOT/target/systemd-after.txt" >&2; then
    die "the file system after purge differs from before install"
fi
[ -z "$(ct systemctl list-units --all --no-legend 'entropyservice*')" ] || die "systemd still knows entropyservice units"
pass "dpkg --purge: no file, link, user, group or unit left"
rm -f "$ROOT/target/systemd-before.txt" "$ROOT/target/systemd-after.txt"

echo "systemd-test: all checks passed in $((SECONDS - T0)) s; .deb $DEB_BYTES bytes; exposure $EXPOSURE" >&2
