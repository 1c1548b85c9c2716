#!/bin/sh
# The procd init script's logic.
#   REAL:      openwrt/files/entropyservice.init, the shipped
#              openwrt/files/entropyservice.config (its seed_dir moved into
#              the scratch dir) and fixtures/servers.config.
#   STOOD IN:  rc.common, /lib/functions.sh, procd.sh (calls recorded, not
#              sent to procd), uci_validate_section and /sbin/validate_data,
#              logger, chown: see openwrt-stubs.sh; the entropyservice
#              binary (a script that records its arguments); /sbin/ujail,
#              the capabilities file and /etc/passwd (files in a scratch root).
# run.sh runs this once under busybox ash (OpenWrt's shell) and once under dash.
# No `set -u`: the init script runs in this shell, and OpenWrt runs it without.
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
INIT="$HERE/../../openwrt/files/entropyservice.init"
SHIPPED="$HERE/../../openwrt/files/entropyservice.config"
FIXTURE="$HERE/fixtures/servers.config"
SH="[${TEST_SHELL_NAME:-sh}]"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-init.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ED_KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qta2V5LWZvci1vcGVud3J0LXRlc3RzLW9ubHkh'

# new_case NAME UCI_FILE: a scratch root with UCI_FILE as
# /etc/config/entropyservice (@W@ replaced), then the stubs and the init
# script sourced as rc.common would. Call inside a subshell.
new_case() {
	W="$TMP/$1"
	mkdir -p "$W/root/etc/config" "$W/root/sbin" "$W/root/etc/capabilities" \
		"$W/run" "$W/bin" "$W/keys"
	sed "s|@W@|$W|g" "$2" >"$W/root/etc/config/entropyservice"
	: >"$W/root/etc/passwd"
	: >"$W/keys/id_client"
	: >"$W/keys/id_beta"
	cat >"$W/bin/entropyservice" <<'EOS'
#!/bin/sh
printf '%s\n' "$*" >>"${0%/*}/prog.log"
[ "$1 $2" = "seed load" ] && echo "seed: credited 256 bits"
exit "${FAKE_PROG_RC:-0}"
EOS
	chmod +x "$W/bin/entropyservice"
	: >"$W/bin/prog.log"
	STUB_DIR="$HERE"
	STUB_ROOT="$W/root"
	STUB_LOG="$W/procd.log"
	: >"$STUB_LOG"
	# shellcheck source=openwrt-stubs.sh
	. "$HERE/openwrt-stubs.sh"
	# shellcheck source=../../openwrt/files/entropyservice.init
	. "$INIT"
	PROG="$W/bin/entropyservice"
	UJAIL="$W/root/sbin/ujail"
	CAPABILITIES="$W/root/etc/capabilities/entropyservice.json"
	VALIDATE_DATA="$HERE/validate_data"
	RUN_DIR="$W/run"
	LOG="$STUB_LOG"
	PLOG="$W/bin/prog.log"
}

instances() { sed -n 's/^instance \([^:]*\):.*/\1/p' "$LOG" | tr '\n' ' '; }
fails_with() { fail "$1" "$(cat "$LOG")"; }

# --- the shipped config -----------------------------------------------------
sed "s|'/etc/entropyservice/seed'|'@W@/seed'|" "$SHIPPED" >"$TMP/shipped.config"
(
	new_case shipped "$TMP/shipped.config"
	start_service
	if [ -z "$(instances)" ]; then pass "$SH shipped config: the disabled example starts no client"; else fails_with "$SH shipped config starts: $(instances)"; fi
	check "$SH shipped config: nothing logged as an error" lacks_text "$LOG" "daemon.err"
	check "$SH shipped config: seed load runs at start" has_line "$PLOG" "seed load --seed-dir $W/seed"
	check "$SH shipped config: seed load output goes to the log" \
		has_line "$LOG" "logger entropyservice daemon.notice: seed: credited 256 bits"
	service_triggers
	check "$SH shipped config: WAN up restarts the clients" \
		has_line "$LOG" "procd_add_interface_trigger [interface.*.up] [wan] [/etc/init.d/entropyservice] [reconnect]"
)

# --- servers: which start, with which command line --------------------------
(
	new_case servers "$FIXTURE"
	start_service
	got=$(instances)
	if [ "$got" = "alpha beta theta " ]; then pass "$SH one instance per enabled, valid server (alpha beta theta)"; else fails_with "$SH instances: '$got'"; fi
	check "$SH alpha: command line with defaults, host-key comment dropped" has_line "$LOG" \
		"instance alpha: [$W/bin/entropyservice] [client] [-p] [22] [-i] [$W/keys/id_client] [--host-key] [$ED_KEY] [--credit-bits-per-byte] [2] [--mode] [auto] [--interval] [10m] [--get-bytes] [64] [--seed-dir] [$W/seed] [--status-file] [$W/run/alpha.status] [192.0.2.10]"
	check "$SH beta: port, user, key, mode, interval, credit and get_bytes from UCI" has_line "$LOG" \
		"instance beta: [$W/bin/entropyservice] [client] [-p] [2222] [-i] [$W/keys/id_beta] [--host-key] [ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHRlc3Q=] [--credit-bits-per-byte] [0] [--mode] [topup] [--interval] [1h] [--get-bytes] [128] [--seed-dir] [$W/seed] [--status-file] [$W/run/beta.status] [-l] [pool] [entropy.example.net]"
	check "$SH theta: IPv6 host, ssh-rsa key, stream mode" has_line "$LOG" \
		"instance theta: [$W/bin/entropyservice] [client] [-p] [22] [-i] [$W/keys/id_client] [--host-key] [ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7dGVzdA==] [--credit-bits-per-byte] [2] [--mode] [stream] [--interval] [10m] [--get-bytes] [64] [--seed-dir] [$W/seed] [--status-file] [$W/run/theta.status] [2001:db8::7]"
	check "$SH respawn set on each instance" [ "$(grep -cxF 'procd_set_param [respawn]' "$LOG")" = 3 ]
	check "$SH stdout to logd on each instance" [ "$(grep -cxF 'procd_set_param [stdout] [1]' "$LOG")" = 3 ]
	check "$SH stderr to logd on each instance" [ "$(grep -cxF 'procd_set_param [stderr] [1]' "$LOG")" = 3 ]
	check "$SH log_level passed in the environment" has_line "$LOG" "procd_set_param [env] [ENTROPYSERVICE_LOG=debug]"
	check "$SH key file watched for reload" has_line "$LOG" "procd_set_param [file] [$W/keys/id_beta]"
	check "$SH disabled servers (off, disabled) are skipped silently" \
		eval "lacks_text '$LOG' \"'gamma'\" && lacks_text '$LOG' \"'eta'\" && lacks_text '$LOG' 'instance eta:'"
	check "$SH bad port: the log names section, option and value" has_line "$LOG" \
		"logger entropyservice daemon.err: server 'delta': option port '99999' is not a valid port; fix it in /etc/config/entropyservice"
	check "$SH bad port: the client is not started" has_line "$LOG" \
		"logger entropyservice daemon.err: server 'delta': invalid settings; this client is not started"
	check "$SH missing host_key: rejected with how to get one" has_text "$LOG" \
		"daemon.err: server 'epsilon': no host_key; run 'entropyservice hostkey' on 198.51.100.8"
	check "$SH bad mode named" has_text "$LOG" "server 'zeta': option mode 'fast' is not a valid or(\"auto\",\"topup\",\"stream\")"
	check "$SH credit above 8 named" has_text "$LOG" "server 'zeta': option credit_bits_per_byte '9' is not a valid range(0,8)"
	check "$SH missing key file named" has_text "$LOG" "server 'iota': option key_file '$W/keys/missing' is not a valid file"
	check "$SH no jail without /sbin/ujail" eval "lacks_text '$LOG' procd_add_jail && lacks_text '$LOG' '[user]' && lacks_text '$LOG' '[capabilities]'"
	check "$SH seed loaded before the first instance" \
		[ "$(sed -n '1p' "$PLOG")" = "seed load --seed-dir $W/seed" ]
	start_service
	check "$SH seed loaded once per boot, not again on restart or reload" \
		[ "$(grep -c '^seed load' "$PLOG")" = 1 ]
	: >"$LOG"
	stop_service
	check "$SH stop saves the seed" has_line "$PLOG" "seed save --seed-dir $W/seed"
	: >"$LOG"
	: >"$PLOG"
	reconnect
	check "$SH reconnect restarts the instances" eval "has_line '$LOG' 'procd_kill [entropyservice]' && has_line '$LOG' start"
	check "$SH reconnect does not save the seed" lacks_text "$PLOG" "seed save"
)

# --- triggers and validation --------------------------------------------------
(
	new_case triggers "$FIXTURE"
	service_triggers
	check "$SH reload trigger on /etc/config/entropyservice" has_line "$LOG" "procd_add_reload_trigger [entropyservice]"
	check "$SH interface trigger from option interface" has_line "$LOG" \
		"procd_add_interface_trigger [interface.*.up] [wan] [/etc/init.d/entropyservice] [reconnect]"
	order=$(sed -n 's/^\(procd_open_validate\|procd_close_validate\|validation \[entropyservice\] \[[a-z]*\]\).*/\1/p' "$LOG" | tr '\n' '|')
	if [ "$order" = "procd_open_validate|validation [entropyservice] [entropyservice]|validation [entropyservice] [server]|procd_close_validate|" ]; then
		pass "$SH procd validation describes the global and server sections"
	else fails_with "$SH validation order: $order"; fi
	check "$SH validation types for server options" has_text "$LOG" \
		"validation [entropyservice] [server] [enabled:bool:1] [host:host] [port:port:22] [user:string] [key_file:file:/etc/entropyservice/id_client] [host_key:string] [credit_bits_per_byte:range(0,8):2] [mode:or(\"auto\",\"topup\",\"stream\"):auto] [interval:string:10m] [get_bytes:uinteger:64]"
)
sed "/option interface/d" "$FIXTURE" >"$TMP/nointerface.config"
(
	new_case nointerface "$TMP/nointerface.config"
	service_triggers
	check "$SH no interface option: no interface trigger" lacks_text "$LOG" procd_add_interface_trigger
)

# --- the jail -------------------------------------------------------------------
(
	new_case jail "$FIXTURE"
	printf '#!/bin/sh\n' >"$UJAIL"
	chmod +x "$UJAIL"
	cp "$HERE/../../openwrt/files/entropyservice.capabilities.json" "$CAPABILITIES"
	echo "entropyservice:x:32768:32768:entropyservice:/var/run/entropyservice:/bin/false" >"$W/root/etc/passwd"
	start_service
	check "$SH jail: procd_add_jail with log and procfs, per instance" [ "$(grep -cxF 'procd_add_jail [entropyservice] [log] [procfs]' "$LOG")" = 3 ]
	check "$SH jail: key, /dev/random and dbclient mounted read-only" has_line "$LOG" \
		"procd_add_jail_mount [$W/keys/id_client] [/dev/random] [/dev/urandom] [/etc/passwd] [/etc/group] [/etc/hosts] [/etc/resolv.conf] [/usr/bin/dbclient] [/usr/bin/ssh]"
	check "$SH jail: seed dir, run dir and the client's non-root runtime dir writable" \
		has_line "$LOG" "procd_add_jail_mount_rw [$W/seed] [$W/run] [/tmp/entropyservice-32768]"
	check "$SH jail: runs as user entropyservice" has_line "$LOG" "procd_set_param [user] [entropyservice]"
	check "$SH jail: capabilities file" has_line "$LOG" "procd_set_param [capabilities] [$CAPABILITIES]"
	check "$SH jail: no_new_privs" has_line "$LOG" "procd_set_param [no_new_privs] [1]"
	check "$SH jail: HOME for dbclient's known_hosts" has_line "$LOG" "procd_append_param [env] [HOME=$W/run]"
	check "$SH jail: seed, run and runtime dirs given to the user" \
		has_line "$LOG" "chown [-R] [entropyservice:entropyservice] [$W/run] [$W/seed] [/tmp/entropyservice-32768]"
	check "$SH jail: runtime dir is private" [ "$(stat -c %a /tmp/entropyservice-32768)" = 700 ]
	rmdir /tmp/entropyservice-32768
)
(
	new_case jail-nouser "$FIXTURE"
	printf '#!/bin/sh\n' >"$UJAIL"
	chmod +x "$UJAIL"
	cp "$HERE/../../openwrt/files/entropyservice.capabilities.json" "$CAPABILITIES"
	start_service
	check "$SH jail: not without the entropyservice user" lacks_text "$LOG" procd_add_jail
)
(
	new_case jail-nocaps "$FIXTURE"
	printf '#!/bin/sh\n' >"$UJAIL"
	chmod +x "$UJAIL"
	echo "entropyservice:x:32768:32768:entropyservice:/var/run/entropyservice:/bin/false" >"$W/root/etc/passwd"
	start_service
	check "$SH jail: not without the capabilities file" lacks_text "$LOG" procd_add_jail
)

# --- global switch, failures, status ----------------------------------------------
sed "s/option enabled 'yes'/option enabled '0'/" "$FIXTURE" >"$TMP/off.config"
(
	new_case off "$TMP/off.config"
	start_service
	stop_service
	check "$SH global enabled 0: no client" lacks_text "$LOG" procd_open_instance
	check "$SH global enabled 0: no seed load or save" [ ! -s "$PLOG" ]
)
(
	new_case seedfail "$FIXTURE"
	FAKE_PROG_RC=3 && export FAKE_PROG_RC
	start_service
	check "$SH failed seed load is logged with its exit status" has_line "$LOG" \
		"logger entropyservice daemon.err: seed load in $W/seed failed (exit 3); the kernel pool gets no saved seed this time"
	check "$SH failed seed load is retried at the next start" [ ! -e "$W/run/seed-loaded" ]
	check "$SH clients start even when the seed load failed" has_text "$LOG" "instance alpha:"
)
(
	new_case status "$FIXTURE"
	status_service >"$W/status.out"
	check "$SH status without status files: procd state, then entropyservice status" \
		eval "has_line '$LOG' '_procd_status [entropyservice]' && has_line '$PLOG' status"
	: >"$PLOG"
	: >"$W/run/alpha.status"
	: >"$W/run/beta.status"
	status_service >"$W/status.out"
	check "$SH status shows each client's status file" \
		eval "has_line '$PLOG' 'status --status-file $W/run/alpha.status' && has_line '$PLOG' 'status --status-file $W/run/beta.status'"
)
