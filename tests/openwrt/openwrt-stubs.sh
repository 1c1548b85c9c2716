# Stand-ins for the OpenWrt shell API that /etc/rc.common gives an init
# script, for running the REAL init script against REAL UCI files on a
# Debian host. Sourced before the init script, as rc.common does.
#
# STOOD IN (not OpenWrt's code):
#   /lib/functions.sh  config_load (reads $STUB_ROOT/etc/config/NAME through
#                      uci.awk instead of `uci export`), config_get,
#                      config_get_bool, config_foreach, user_exists; id -u
#   procd.sh           every procd_* call is recorded in $STUB_LOG instead of
#                      being sent to procd over ubus; uci_load_validate and
#                      uci_validate_section check with the validate_data
#                      stand-in instead of /sbin/validate_data; _procd_status
#   rc.common          extra_command, start (recorded)
#   procd_send_signal  recorded
#   logger             recorded (no syslog)
#   chown              recorded, then done for real with the uid and gid the
#                      scratch root's passwd gives the user (the host has no
#                      entropyservice user)
#
# Needs STUB_DIR (this directory), STUB_ROOT (a scratch "/") and STUB_LOG.
# shellcheck disable=SC3043

_stub_rec() {
	local _line="$1" _arg
	shift
	for _arg in "$@"; do _line="$_line [$_arg]"; done
	printf '%s\n' "$_line" >>"$STUB_LOG"
}

# --- /lib/functions.sh: config storage as CONFIG_<section>_<option> ---------

_stub_set() {
	eval "CONFIG_$1_$2=\$3"
	STUB_CONFIG_VARS="${STUB_CONFIG_VARS:-} CONFIG_$1_$2"
}

config_load() {
	local _uci _var
	_uci=$(awk -f "$STUB_DIR/uci.awk" "$STUB_ROOT/etc/config/$1") || return 1
	for _var in ${STUB_CONFIG_VARS:-}; do unset "$_var"; done
	STUB_CONFIG_VARS=
	CONFIG_SECTIONS=
	CONFIG_SECTION=
	STUB_ANON=0
	eval "$_uci"
}

config() {
	local _name="${2:-}"
	if [ -z "$_name" ]; then
		STUB_ANON=$((STUB_ANON + 1))
		_name="cfg$STUB_ANON"
	fi
	CONFIG_SECTIONS="$CONFIG_SECTIONS $_name"
	CONFIG_SECTION="$_name"
	_stub_set "$_name" TYPE "$1"
}

option() {
	_stub_set "$CONFIG_SECTION" "$1" "$2"
}

list() {
	local _old
	eval "_old=\${CONFIG_${CONFIG_SECTION}_$1:-}"
	_stub_set "$CONFIG_SECTION" "$1" "${_old:+$_old }$2"
}

# config_get VAR SECTION OPTION [DEFAULT] | config_get SECTION OPTION
config_get() {
	if [ "$#" -le 2 ]; then
		case "$1$2" in *[!A-Za-z0-9_]*) return 0 ;; esac
		eval "printf '%s' \"\${CONFIG_$1_$2:-}\""
		return 0
	fi
	case "$2$3" in *[!A-Za-z0-9_]*) return 0 ;; esac
	eval "$1=\${CONFIG_$2_$3:-\${4:-}}"
}

config_get_bool() {
	local _bool
	config_get _bool "$2" "$3" "${4:-}"
	case "$_bool" in
	1 | on | true | yes | enabled) _bool=1 ;;
	0 | off | false | no | disabled) _bool=0 ;;
	*) _bool="${4:-}" ;;
	esac
	eval "$1=\$_bool"
}

config_foreach() {
	local _fn="$1" _type="${2:-}" _sec _sectype
	shift 2
	for _sec in $CONFIG_SECTIONS; do
		config_get _sectype "$_sec" TYPE
		[ -z "$_type" ] || [ "$_sectype" = "$_type" ] || continue
		"$_fn" "$_sec" "$@"
	done
}

user_exists() {
	grep -qs "^$1:" "$STUB_ROOT/etc/passwd"
}

# id -u USER, from the scratch root's passwd.
id() {
	[ "$1" = -u ] && awk -F: -v u="$2" '$1 == u { print $3; f = 1 } END { exit !f }' "$STUB_ROOT/etc/passwd"
}

# --- procd.sh ---------------------------------------------------------------

uci_load_validate() {
	local _package="$1" _type="$2" _name="$3" _function="$4" _option _result
	shift 4
	for _option in "$@"; do
		eval "local ${_option%%:*}"
	done
	uci_validate_section "$_package" "$_type" "$_name" "$@"
	_result=$?
	[ -n "$_function" ] || return "$_result"
	eval "$_function \"\$_name\" \"\$_result\""
}

# Without a section name (procd_add_validation) the specs are recorded; with
# one, each option is read, checked and assigned (the default when empty or
# invalid), and the status is 1 when any check failed.
uci_validate_section() {
	local _package="$1" _type="$2" _name="$3" _spec _opt _dt _def _val _err=0
	shift 3
	if [ -z "$_name" ]; then
		_stub_rec validation "$_package" "$_type" "$@"
		return 0
	fi
	for _spec in "$@"; do
		_opt="${_spec%%:*}"
		_dt="${_spec#*:}"
		_def=
		case "$_dt" in *:*) _def="${_dt#*:}" _dt="${_dt%%:*}" ;; esac
		config_get _val "$_name" "$_opt"
		if [ -n "$_val" ] && ! "$STUB_DIR/validate_data" "$_dt" "$_val"; then
			_err=1
			_val=
		fi
		[ -n "$_val" ] || _val="$_def"
		eval "$_opt=\$_val"
	done
	return "$_err"
}

_stub_open_instance() {
	STUB_INSTANCE="${1:-}"
	STUB_CMD=
}

_stub_cmd_add() {
	local _arg
	for _arg in "$@"; do STUB_CMD="$STUB_CMD [$_arg]"; done
}

procd_open_instance() {
	_stub_rec procd_open_instance "$@"
	_stub_open_instance "$@"
}

procd_set_param() {
	_stub_rec procd_set_param "$@"
	[ "$1" = command ] || return 0
	shift
	STUB_CMD=
	_stub_cmd_add "$@"
}

procd_append_param() {
	_stub_rec procd_append_param "$@"
	[ "$1" = command ] || return 0
	shift
	_stub_cmd_add "$@"
}

# Also writes the instance's whole command line as one line.
procd_close_instance() {
	_stub_rec procd_close_instance
	printf 'instance %s:%s\n' "$STUB_INSTANCE" "$STUB_CMD" >>"$STUB_LOG"
}

for _stub_fn in procd_add_reload_trigger procd_add_interface_trigger \
	procd_add_jail procd_add_jail_mount procd_add_jail_mount_rw \
	procd_open_validate procd_close_validate procd_kill procd_send_signal \
	extra_command start; do
	eval "$_stub_fn() { _stub_rec $_stub_fn \"\$@\"; }"
done

chown() {
	local _ids _user _uid
	_stub_rec chown "$@"
	_ids="$1"
	shift
	[ "$_ids" != -h ] || { _ids="$1" && shift; }
	_user="${_ids%%:*}"
	_uid=$(awk -F: -v u="$_user" '$1 == u { print $3 ":" $4; f = 1 } END { exit !f }' "$STUB_ROOT/etc/passwd") ||
		_uid="$_ids"
	command chown -h "$_uid" "$@"
}

_procd_status() {
	_stub_rec _procd_status "$@"
	echo running
}

# logger [-t TAG] [-p PRIO] [MESSAGE...]; no MESSAGE: one entry per stdin line.
logger() {
	local _tag='' _prio='' _line
	while [ "$#" -gt 0 ]; do
		case "$1" in
		-t) _tag="$2" && shift 2 ;;
		-p) _prio="$2" && shift 2 ;;
		-s) shift ;;
		*) break ;;
		esac
	done
	if [ "$#" -gt 0 ]; then
		printf 'logger %s %s: %s\n' "$_tag" "$_prio" "$*" >>"$STUB_LOG"
	else
		while IFS= read -r _line; do
			printf 'logger %s %s: %s\n' "$_tag" "$_prio" "$_line" >>"$STUB_LOG"
		done
	fi
}
