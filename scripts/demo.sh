#!/usr/bin/env bash
# Quickstart on one machine: a throwaway Dropbear on loopback with generated
# keys and `entropyservice server` as its forced command, then the client
# against it for a few seconds. Prints what was received and credited.
# Needs root (RNDADDENTROPY, and a private mount namespace so Dropbear reads
# a throwaway authorized_keys instead of /root/.ssh/authorized_keys).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: run as root (crediting needs CAP_SYS_ADMIN)" >&2; exit 77; }
for t in dropbear dropbearkey dbclient unshare; do
  command -v "$t" >/dev/null || { echo "error: $t is missing: apt-get install -y dropbear-bin util-linux" >&2; exit 69; }
done
command -v python3 >/dev/null || { echo "error: python3 is missing (the demo asks it for a free port): apt-get install -y python3" >&2; exit 69; }
cargo build --release --quiet
bin=$PWD/target/release/entropyservice
work=$(mktemp -d /tmp/entropyservice-demo.XXXXXX)
chmod 700 "$work"
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -m 700 "$work/ssh" "$work/seed"
dropbearkey -t ed25519 -f "$work/host_key" >/dev/null 2>&1
dropbearkey -t ed25519 -f "$work/id_client" >/dev/null 2>&1
host_key=$(dropbearkey -y -f "$work/host_key" | grep '^ssh-' | cut -d' ' -f1,2)
client_pub=$(dropbearkey -y -f "$work/id_client" | grep '^ssh-' | cut -d' ' -f1,2)
echo "command=\"$bin server --client demo --rate 4096 --audit-file $work/audit.log\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding $client_pub" > "$work/ssh/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p /root/.ssh
unshare -m --propagation private sh -c "mount --bind '$work/ssh' /root/.ssh && exec dropbear -F -E -s -p 127.0.0.1:$port -r '$work/host_key' -P '$work/pid'" 2>"$work/dropbear.log" &
server_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
echo "== dropbear on 127.0.0.1:$port, host key pinned: ${host_key:0:40}..."
echo "== one fetch: entropyservice client --once 256"
"$bin" client --once 256 -p "$port" -i "$work/id_client" --host-key "$host_key" --seed-dir "$work/seed" root@127.0.0.1
echo "== the client daemon in stream mode for 5 s (server --rate 4096): it streams while the kernel counts credits; a ready 5.18+ kernel counts none, so there it goes on as top-ups"
"$bin" client --mode stream -p "$port" -i "$work/id_client" --host-key "$host_key" \
  --seed-dir "$work/seed" --status-file "$work/status" root@127.0.0.1 &
client=$!
sleep 5
kill -TERM "$client"; wait "$client" || true
"$bin" status --status-file "$work/status"
echo "== server audit log"
cat "$work/audit.log"
