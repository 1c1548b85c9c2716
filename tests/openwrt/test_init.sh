#!/bin/sh
# The procd init script's logic.
#   REAL:      openwrt/files/entropyservice.init, the shipped
#              openwrt/files/entropyservice.config (its seed_dir moved into
#              the scratch dir) and fixtures/servers.config.
#   STOOD IN:  rc.common, /lib/functions.sh, procd.sh (calls recorded, not
#              sent to procd), uci_validate_section and /sbin/validate_data,
#              logger, chown: see openwrt-stubs.sh; the entropyservice
#              binary (a script that records its arguments), except for
#              `client --check`, which runs the REAL binary ($ES_REAL_BIN);
#              /sbin/ujail, the capabilities file and /etc/passwd (files in
#              a scratch root). Directories, owners (chown runs for real
#              with the scratch passwd's ids) and links are real: run as root.
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
NEW_KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNvbmN1cnJlbnQtYXV0aG9yaXplLXRlc3Qta2V5LTAx'
EC_KEY=$(sed -n "/config server 'beta'/,/^\$/s/.*option host_key '\(.*\)'/\1/p" "$FIXTURE")
RSA_KEY=$(sed -n "/config server 'theta'/,/^\$/s/.*option host_key '\(.*\)'/\1/p" "$FIXTURE")
[ -x "${ES_REAL_BIN:-}" ] || { fail "needs ES_REAL_BIN, the entropyservice binary (run.sh sets it)"; exit 1; }
[ "$(id -u)" = 0 ] || { fail "needs root (real chown, owners)"; exit 1; }

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
	chmod 600 "$W/keys/id_client" "$W/keys/id_beta"
	cat >"$W/bin/entropyservice" <<'EOS'
#!/bin/sh
printf '%s\n' "$*" >>"${0%/*}/prog.log"
case " $* " in *" --check "*) exec "$ES_REAL_BIN" "$@" ;; esac
if [ "$1 $2" = "seed load" ]; then
	echo "info: seed: credited 256 bits"
	echo "warning: ignoring /x/seed.no-credit: not a regular file" >&2
fi
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
	CLIENT_RUN_DIR="$W/crun"
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
	service_triggers
	if [ -z "$(instances)" ]; then pass "$SH shipped config: the disabled example starts no client"; else fails_with "$SH shipped config starts: $(instances)"; fi
	check "$SH shipped config: nothing logged as an error" lacks_text "$LOG" daemon.err
	check "$SH shipped config: seed load runs at start, with the jailed client's seed dir" \
		has_line "$PLOG" "seed load --seed-dir $W/seed --client-seed-dir $W/seed.client"
	check "$SH seed load: info lines logged as info" \
		has_line "$LOG" "logger entropyservice daemon.info: info: seed: credited 256 bits"
	check "$SH seed load: warnings logged as warnings" \
		has_line "$LOG" "logger entropyservice daemon.warn: warning: ignoring /x/seed.no-credit: not a regular file"
	check "$SH shipped config: no interface trigger (it fires on every interface.update)" \
		lacks_text "$LOG" procd_add_interface_trigger
)

# --- servers: which start, with which command line --------------------------
(
	new_case servers "$FIXTURE"
	start_service
	got=$(instances)
	if [ "$got" = "alpha beta theta " ]; then pass "$SH one instance per enabled, valid server (alpha beta theta)"; else fails_with "$SH instances: '$got'"; fi
	check "$SH alpha: command line with defaults, own runtime dir, hostkey's comment dropped" has_line "$LOG" \
		"instance alpha: [$W/bin/entropyservice] [client] [-p] [22] [-i] [$W/keys/id_client] [--host-key] [$ED_KEY] [--credit-bits-per-byte] [2] [--mode] [auto] [--interval] [10m] [--get-bytes] [64] [--seed-dir] [$W/seed] [--status-file] [$W/crun/alpha.status] [--runtime-dir] [$W/crun/alpha] [192.0.2.10]"
	check "$SH the host key's comment is not logged" lacks_text "$LOG" "after the host key"
	check "$SH beta: port, user, key, mode, interval, credit and get_bytes from UCI" has_line "$LOG" \
		"instance beta: [$W/bin/entropyservice] [client] [-p] [2222] [-i] [$W/keys/id_beta] [--host-key] [$EC_KEY] [--credit-bits-per-byte] [0] [--mode] [topup] [--interval] [1h] [--get-bytes] [128] [--seed-dir] [$W/seed] [--status-file] [$W/crun/beta.status] [--runtime-dir] [$W/crun/beta] [-l] [pool] [entropy.example.net]"
	check "$SH theta: IPv6 host, ssh-rsa key, stream mode" has_line "$LOG" \
		"instance theta: [$W/bin/entropyservice] [client] [-p] [22] [-i] [$W/keys/id_client] [--host-key] [$RSA_KEY] [--credit-bits-per-byte] [2] [--mode] [stream] [--interval] [10m] [--get-bytes] [64] [--seed-dir] [$W/seed] [--status-file] [$W/crun/theta.status] [--runtime-dir] [$W/crun/theta] [2001:db8::7]"
	check "$SH each instance's command line passed client --check first" \
		has_line "$PLOG" "client -p 22 -i $W/keys/id_client --host-key $ED_KEY --credit-bits-per-byte 2 --mode auto --interval 10m --get-bytes 64 --seed-dir $W/seed --status-file $W/crun/alpha.status --runtime-dir $W/crun/alpha 192.0.2.10 --check"
	check "$SH each instance has its own private runtime dir (no shared home-1)" \
		eval "[ -d '$W/crun/alpha' ] && [ -d '$W/crun/beta' ] && [ -d '$W/crun/theta' ] && [ \"\$(stat -c %a '$W/crun/alpha')\" = 700 ]"
	check "$SH respawn set on each instance" [ "$(grep -cxF 'procd_set_param [respawn]' "$LOG")" = 3 ]
	check "$SH stdout to logd on each instance" [ "$(grep -cxF 'procd_set_param [stdout] [1]' "$LOG")" = 3 ]
	check "$SH stderr to logd on each instance" [ "$(grep -cxF 'procd_set_param [stderr] [1]' "$LOG")" = 3 ]
	check "$SH log_level and info-on-stdout passed in the environment" \
		has_line "$LOG" "procd_set_param [env] [ENTROPYSERVICE_LOG=debug] [ENTROPYSERVICE_LOG_INFO_STDOUT=1]"
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
	# Values UCI's types accept but the client refuses: the binary's own line.
	check "$SH get_bytes 5000: the client's error, not started" has_line "$LOG" \
		"logger entropyservice daemon.err: server 'lambda': --get-bytes and --once take 1 to 4096 bytes; this client is not started"
	check "$SH get_bytes 0: the client's error, not started" has_line "$LOG" \
		"logger entropyservice daemon.err: server 'pi': --get-bytes and --once take 1 to 4096 bytes; this client is not started"
	check "$SH credit 0x4 (strtol base 0 in validate_data): the client's error" has_text "$LOG" \
		"daemon.err: server 'mu': Error parsing option '--credit-bits-per-byte' with value '0x4'"
	check "$SH host_key 'ssh-ed25519 AAAA': the client's error" has_text "$LOG" \
		"daemon.err: server 'nu': --host-key for 198.51.100.13: "
	check "$SH interval 99999999999d: the client's error" has_line "$LOG" \
		"logger entropyservice daemon.err: server 'xi': --interval 99999999999d is not a duration such as 30s, 10m, 1h or 1d; this client is not started"
	check "$SH interval 0: the client's error" has_line "$LOG" \
		"logger entropyservice daemon.err: server 'omicron': --interval 0 would open SSH sessions back to back; give a time such as 10m; this client is not started"
	check "$SH no runtime dir for a refused instance" [ ! -e "$W/crun/lambda" ]
	check "$SH no jail without /sbin/ujail" eval "lacks_text '$LOG' procd_add_jail && lacks_text '$LOG' '[user]' && lacks_text '$LOG' '[capabilities]'"
	check "$SH unjailed: client run dir is root's" [ "$(stat -c %u:%a "$W/crun")" = 0:700 ]
	check "$SH seed loaded before the first instance" \
		[ "$(sed -n '1p' "$PLOG")" = "seed load --seed-dir $W/seed --client-seed-dir $W/seed.client" ]
	start_service
	check "$SH seed loaded once per boot, not again on restart or reload" \
		[ "$(grep -c '^seed load' "$PLOG")" = 1 ]
	: >"$LOG"
	stop_service
	check "$SH stop saves the seed and takes the jailed client's" \
		has_line "$PLOG" "seed save --seed-dir $W/seed --client-seed-dir $W/seed.client"
	: >"$LOG"
	: >"$PLOG"
	reconnect
	check "$SH reconnect signals the clients (USR1), restarts none" \
		eval "has_line '$LOG' 'procd_send_signal [entropyservice] [*] [USR1]' && lacks_text '$LOG' procd_kill && lacks_text '$LOG' start"
	check "$SH reconnect does not save the seed" lacks_text "$PLOG" "seed save"
	: >"$PLOG"
	AK="$W/root/etc/dropbear/authorized_keys"
	AUTHORIZED_KEYS="$AK"
	out=$(authorize "$ED_KEY" router2 2>&1)
	rc=$?
	check "$SH authorize: status 0 and an info line" [ "$rc ${out%%:*}" = "0 info" ]
	check "$SH authorize: the serve 'defaults' section makes the line (as \`entropyservice authorize --flavor dropbear --compat\` does)" has_line "$AK" \
		"command=\"$PROG server --client router2 --rate 512 --max-sessions 3 --allow-from 192.168.1.0/24,10.0.0.0/8\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding $ED_KEY entropyservice:router2"
	# The full build's own authorize (ES_REAL_BIN has the admin commands)
	# writes the same line for Dropbear without `restrict`.
	want=$("$ES_REAL_BIN" authorize --client router2 --rate 512 --max-sessions 3 \
		--allow-from 192.168.1.0/24,10.0.0.0/8 --flavor dropbear --compat --dry-run \
		--authorized-keys "$W/ak-dry" --binary "$PROG" "$ED_KEY" 2>/dev/null)
	check "$SH authorize: the line is the one the full binary's \`authorize --flavor dropbear --compat\` makes" \
		eval "[ -n '$want' ] && has_line '$AK' '$want'"
	check "$SH authorize: a new authorized_keys is 0600 in a 0700 directory" \
		eval "[ \"\$(stat -c %a '$AK')\" = 600 ] && [ \"\$(stat -c %a '${AK%/*}')\" = 700 ]"
	check "$SH authorize: the router binary is not asked (it has no authorize)" lacks_text "$PLOG" authorize
	authorize "$ED_KEY" other >/dev/null 2>&1
	rc=$?
	check "$SH authorize: the same key again is refused (65), the file unchanged" eval "[ $rc = 65 ] && [ \"\$(wc -l <'$AK')\" = 1 ]"
	authorize "$EC_KEY" 'bad name' >/dev/null 2>&1
	rc=$?
	check "$SH authorize: a client name with a space is refused (64)" eval "[ $rc = 64 ] && [ \"\$(wc -l <'$AK')\" = 1 ]"
	authorize 'ssh-ed25519 AAAA"x' router3 >/dev/null 2>&1
	rc=$?
	check "$SH authorize: a key with a quote is refused (65)" eval "[ $rc = 65 ] && [ \"\$(wc -l <'$AK')\" = 1 ]"
	authorize 'command="sh" AAAA' router3 >/dev/null 2>&1
	rc=$?
	check "$SH authorize: a line that is not TYPE BASE64 is refused (65)" eval "[ $rc = 65 ] && [ \"\$(wc -l <'$AK')\" = 1 ]"
	authorize "$EC_KEY" router3 >/dev/null 2>&1
	rc=$?
	check "$SH authorize: a second client's key is appended" eval "[ $rc = 0 ] && [ \"\$(wc -l <'$AK')\" = 2 ]"
	uci_set_allow_from() { sed -i "s|list allow_from '10.0.0.0/8'|list allow_from '$1'|" "$W/root/etc/config/entropyservice"; }
	for bad in 10.0.0.0 10.0.0.0/33 010.0.0.0/8 10.0.0/8 10.0.0.0.0/8 2001:db8::/129 'fe80::1%eth0/64' x/8; do
		uci_set_allow_from "$bad"
		authorize "$RSA_KEY" router4 >/dev/null 2>&1
		rc=$?
		check "$SH authorize: allow_from '$bad' is refused (64), nothing written" eval "[ $rc = 64 ] && [ \"\$(wc -l <'$AK')\" = 2 ]"
		sed -i "s|list allow_from '$bad'|list allow_from '10.0.0.0/8'|" "$W/root/etc/config/entropyservice"
	done
	uci_set_allow_from 2001:db8::/32
	authorize "$RSA_KEY" router4 >/dev/null 2>&1
	check "$SH authorize: an IPv6 allow_from is taken" has_text "$AK" "--allow-from 192.168.1.0/24,2001:db8::/32\","
	authorize >/dev/null 2>&1
	check "$SH authorize without arguments: usage, status 64" [ "$?" = 64 ]
	# A lock left by a killed authorize: refused with 75 after the wait,
	# nothing written, the lock left for the admin to judge.
	AUTHORIZE_LOCK_WAIT=1
	mkdir "$AK.lock"
	lines=$(wc -l <"$AK")
	authorize "$NEW_KEY" router5 >/dev/null 2>"$W/lock-err"
	rc=$?
	check "$SH authorize: a held lock is refused (75) with a line naming it, nothing written" \
		eval "[ $rc = 75 ] && [ \"\$(wc -l <'$AK')\" = $lines ] && [ -d '$AK.lock' ]"
	check "$SH authorize: the lock refusal says what to do" has_text "$W/lock-err" "error: another authorize is running (lock $AK.lock); try again, or remove $AK.lock if none is"
	rmdir "$AK.lock"
	# Two at once with the same key: one line, one success, and the other
	# refused as a duplicate (65) or as locked (75); no lock left behind.
	AUTHORIZE_LOCK_WAIT=3
	(authorize "$NEW_KEY" router5 >/dev/null 2>&1; echo $? >"$W/rc1") &
	(authorize "$NEW_KEY" router6 >/dev/null 2>&1; echo $? >"$W/rc2") &
	wait
	rcs=$(cat "$W/rc1" "$W/rc2" | sort | tr '\n' ' ')
	check "$SH authorize: two at once with one key add it once ($rcs)" \
		eval "[ \"\$(grep -c '$NEW_KEY' '$AK')\" = 1 ] && { [ '$rcs' = '0 65 ' ] || [ '$rcs' = '0 75 ' ]; } && [ ! -e '$AK.lock' ]"
)

# --- triggers and validation --------------------------------------------------
(
	new_case triggers "$FIXTURE"
	service_triggers
	check "$SH reload trigger on /etc/config/entropyservice" has_line "$LOG" "procd_add_reload_trigger [entropyservice]"
	check "$SH no procd interface trigger" lacks_text "$LOG" procd_add_interface_trigger
	order=$(sed -n 's/^\(procd_open_validate\|procd_close_validate\|validation \[entropyservice\] \[[a-z]*\]\).*/\1/p' "$LOG" | tr '\n' '|')
	if [ "$order" = "procd_open_validate|validation [entropyservice] [entropyservice]|validation [entropyservice] [server]|procd_close_validate|" ]; then
		pass "$SH procd validation describes the global and server sections"
	else fails_with "$SH validation order: $order"; fi
	check "$SH validation types for server options" has_text "$LOG" \
		"validation [entropyservice] [server] [enabled:bool:1] [host:host] [port:port:22] [user:string] [key_file:file:/etc/entropyservice/id_client] [host_key:string] [credit_bits_per_byte:range(0,8):2] [mode:or(\"auto\",\"topup\",\"stream\"):auto] [interval:string:10m] [get_bytes:uinteger:64]"
)
sed "s/option log_level 'debug'/option log_level 'loud'/" "$FIXTURE" >"$TMP/badglobal.config"
(
	new_case badglobal "$TMP/badglobal.config"
	# rc.common's start: start_service, then service_triggers; stop reads it too
	start_service
	service_triggers
	stop_service
	check "$SH a bad global option is logged once per start" \
		[ "$(grep -c "section 'global': option log_level 'loud'" "$LOG")" = 1 ]
)

# --- hotplug: the WAN coming up ---------------------------------------------------
HOTPLUG="$HERE/../../openwrt/files/entropyservice.hotplug"
(
	new_case hotplug "$FIXTURE"
	cat >"$W/bin/init" <<'EOS'
#!/bin/sh
printf '%s\n' "$*" >>"${0%/*}/init.log"
EOS
	chmod +x "$W/bin/init"
	cat >"$W/functions.sh" <<EOS
. "$HERE/openwrt-stubs.sh"
EOS
	# hotplug-call sources the script in a subshell with ACTION and INTERFACE
	# shellcheck disable=SC2034
	hp() {
		(
			ACTION="$1" INTERFACE="$2" ES_INIT="$W/bin/init" ES_FUNCTIONS="$W/functions.sh"
			# shellcheck source=../../openwrt/files/entropyservice.hotplug
			. "$HOTPLUG"
		)
	}
	: >"$W/bin/init.log"
	hp ifup wan
	check "$SH hotplug ifup of the configured interface: reconnect" \
		[ "$(cat "$W/bin/init.log")" = "enabled
reconnect" ]
	: >"$W/bin/init.log"
	hp ifupdate wan
	hp ifdown wan
	hp ifup lan
	check "$SH hotplug ifupdate, ifdown, another interface: nothing" [ ! -s "$W/bin/init.log" ]
)

# --- the jail -------------------------------------------------------------------
USER_LINE="entropyservice:x:32768:32768:entropyservice:/var/run/entropyservice:/bin/false"
(
	new_case jail "$FIXTURE"
	printf '#!/bin/sh\n' >"$UJAIL"
	chmod +x "$UJAIL"
	cp "$HERE/../../openwrt/files/entropyservice.capabilities.json" "$CAPABILITIES"
	echo "$USER_LINE" >"$W/root/etc/passwd"
	# What an older version left: root's run dir given to the jail user,
	# with a planted link where the boot marker goes.
	mkdir -p "$W/run" "$W/seed"
	command chown 32768:32768 "$W/run" "$W/seed"
	echo precious >"$W/target"
	ln -s "$W/planted" "$W/run/seed-loaded"
	start_service
	check "$SH jail: procd_add_jail with log and procfs, per instance" [ "$(grep -cxF 'procd_add_jail [entropyservice] [log] [procfs]' "$LOG")" = 3 ]
	check "$SH jail: key, /dev/random and dbclient mounted read-only" has_line "$LOG" \
		"procd_add_jail_mount [$W/keys/id_client] [/dev/random] [/dev/urandom] [/etc/passwd] [/etc/group] [/etc/hosts] [/etc/resolv.conf] [/usr/bin/dbclient] [/usr/bin/ssh]"
	check "$SH jail: only the client's seed dir and run dir writable" \
		has_line "$LOG" "procd_add_jail_mount_rw [$W/seed.client] [$W/crun]"
	check "$SH jail: the client saves seeds in its own dir" has_text "$LOG" "[--seed-dir] [$W/seed.client]"
	check "$SH jail: runs as user entropyservice" has_line "$LOG" "procd_set_param [user] [entropyservice]"
	check "$SH jail: capabilities file" has_line "$LOG" "procd_set_param [capabilities] [$CAPABILITIES]"
	check "$SH jail: no_new_privs" has_line "$LOG" "procd_set_param [no_new_privs] [1]"
	check "$SH jail: no chown -R anywhere" lacks_text "$LOG" "chown [-R]"
	check "$SH jail: root's run dir is root's again, private" [ "$(stat -c %u:%a "$W/run")" = 0:700 ]
	check "$SH jail: the planted link was not followed" [ ! -e "$W/planted" ]
	check "$SH jail: the boot marker is a plain file" eval "[ -f '$W/run/seed-loaded' ] && [ ! -L '$W/run/seed-loaded' ]"
	check "$SH jail: root's seed dir is root's again" [ "$(stat -c %u:%a "$W/seed")" = 0:700 ]
	check "$SH jail: the client's run dir and seed dir belong to the jail user" \
		eval "[ \"\$(stat -c %u:%a '$W/crun')\" = 32768:700 ] && [ \"\$(stat -c %u:%a '$W/seed.client')\" = 32768:700 ]"
	check "$SH jail: each instance's runtime dir belongs to the jail user" \
		[ "$(stat -c %u:%a "$W/crun/alpha")" = 32768:700 ]
	# The jail user plants a link in its own dir; then the router runs the
	# client unjailed (ujail removed): no crash loop, no link followed.
	ln -s "$W/target" "$W/crun/alpha.status"
	rm -f "$UJAIL"
	: >"$LOG"
	start_service
	check "$SH unjailed after jailed: the client run dir is root's again" [ "$(stat -c %u:%a "$W/crun")" = 0:700 ]
	check "$SH unjailed after jailed: the jail user's files are gone, the link target kept" \
		eval "[ ! -e '$W/crun/alpha.status' ] && [ \"\$(cat '$W/target')\" = precious ]"
	check "$SH unjailed after jailed: clients start" has_text "$LOG" "instance alpha:"
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
	echo "$USER_LINE" >"$W/root/etc/passwd"
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
	mkdir -p "$W/crun"
	: >"$W/crun/alpha.status"
	: >"$W/crun/beta.status"
	status_service >"$W/status.out"
	check "$SH status shows each client's status file" \
		eval "has_line '$PLOG' 'status --status-file $W/crun/alpha.status' && has_line '$PLOG' 'status --status-file $W/crun/beta.status'"
	: >"$PLOG"
	ln -s /etc/shadow "$W/crun/gamma.status"
	mkfifo "$W/crun/delta.status"
	status_service >"$W/status.out"
	check "$SH status skips a link or FIFO planted among the status files" \
		eval "lacks_text '$PLOG' gamma.status && lacks_text '$PLOG' delta.status && has_line '$PLOG' 'status --status-file $W/crun/alpha.status'"
)
