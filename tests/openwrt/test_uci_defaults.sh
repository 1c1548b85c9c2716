#!/bin/sh
# openwrt/files/entropyservice.uci-defaults, sourced in a subshell the way
# /etc/init.d/boot and default_postinst run /etc/uci-defaults/* on OpenWrt.
#   REAL:      the script; dropbearkey (Debian's dropbear-bin, same tool as
#              OpenWrt's); chmod, ln, awk.
#   STOOD IN:  the root filesystem (IPKG_INSTROOT points at a scratch dir,
#              with its own /etc/passwd); logger (records to a file); for the
#              RSA fallback, a dropbearkey wrapper that rejects ed25519 the
#              way a build without it does (exit 1), then runs the real one.
# Giving the key to the entropyservice user (chown) needs root.
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
UCID="$HERE/../../openwrt/files/entropyservice.uci-defaults"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-ucid.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

need dropbearkey dropbear-bin
REAL_DROPBEARKEY=$(command -v dropbearkey)

mkdir -p "$TMP/bin" "$TMP/bin-noed25519"
cat >"$TMP/bin/logger" <<'EOS'
#!/bin/sh
printf '%s\n' "$*" >>"$LOGGER_LOG"
EOS
cat >"$TMP/bin-noed25519/dropbearkey" <<EOS
#!/bin/sh
case " \$* " in
*" -t ed25519 "*) echo "Unknown key type 'ed25519'" >&2; exit 1 ;;
esac
exec "$REAL_DROPBEARKEY" "\$@"
EOS
chmod +x "$TMP/bin/logger" "$TMP/bin-noed25519/dropbearkey"

# run_ucid ROOT [EXTRA_PATH]: source the script in a subshell, like boot does.
run_ucid() {
	(
		IPKG_INSTROOT="$1"
		PATH="${2:+$2:}$TMP/bin:$PATH"
		LOGGER_LOG="$1.logger"
		export IPKG_INSTROOT PATH LOGGER_LOG
		cd "$1" || exit 99
		# shellcheck source=../../openwrt/files/entropyservice.uci-defaults
		. "$UCID"
	)
}

new_root() {
	R="$TMP/$1"
	mkdir -p "$R/etc"
	echo "root:x:0:0:root:/root:/bin/ash" >"$R/etc/passwd"
	: >"$R.logger"
	KEY="$R/etc/entropyservice/id_client"
}

# --- first run: a new ed25519 key ---------------------------------------------
new_root first
echo "entropyservice:x:32768:32769:entropyservice:/var/run/entropyservice:/bin/false" >>"$R/etc/passwd"
run_ucid "$R"
check "first run exits 0" [ "$?" = 0 ]
check "first run creates the key" [ -s "$KEY" ]
check "key mode is 600" [ "$(stat -c %a "$KEY" 2>/dev/null)" = 600 ]
pub=$("$REAL_DROPBEARKEY" -y -f "$KEY" 2>/dev/null | grep '^ssh-')
check "key is a Dropbear ed25519 key" starts_with "$pub" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"
check "log points to the .pub file (logd may not run yet in a firmware image)" has_line "$R.logger" \
	"-t entropyservice -p daemon.notice client key $KEY, public key in $KEY.pub (print it with: cat /etc/entropyservice/id_client.pub)"
check "authorize hint logged" has_text "$R.logger" "entropyservice authorize --client NAME '$pub'"
check "public line saved as id_client.pub" has_line "$KEY.pub" "$pub"
check "no temporary files left" [ "$(ls "$R/etc/entropyservice")" = "id_client
id_client.pub" ]
if [ "$(id -u)" = 0 ]; then
	check "key owned by the entropyservice user (uid:gid from its passwd)" \
		[ "$(stat -c %u:%g "$KEY")" = "32768:32769" ]
else
	fail "key ownership: needs root to chown (run as root)"
fi

# --- second run: nothing changes ------------------------------------------------
sum=$(sha256sum <"$KEY")
: >"$R.logger"
run_ucid "$R"
check "second run exits 0" [ "$?" = 0 ]
check "second run leaves the key byte-for-byte" [ "$(sha256sum <"$KEY")" = "$sum" ]
check "second run logs nothing" [ ! -s "$R.logger" ]

# --- an existing key is never overwritten ---------------------------------------
new_root existing
mkdir -p "$R/etc/entropyservice"
printf 'precious, not a key\n' >"$KEY"
chmod 0640 "$KEY"
run_ucid "$R"
check "pre-existing key: exits 0" [ "$?" = 0 ]
check "pre-existing key: content kept" [ "$(cat "$KEY")" = "precious, not a key" ]
check "pre-existing key: mode kept" [ "$(stat -c %a "$KEY")" = 640 ]

# --- RSA when ed25519 is compiled out ---------------------------------------------
new_root rsa
run_ucid "$R" "$TMP/bin-noed25519"
check "no ed25519: exits 0" [ "$?" = 0 ]
pub=$("$REAL_DROPBEARKEY" -y -f "$KEY" 2>/dev/null | grep '^ssh-')
check "no ed25519: falls back to an RSA key" starts_with "$pub" "ssh-rsa AAAA"
# e = 65537, then a 257-byte modulus: 2048 bits
check "no ed25519: RSA key is 2048 bits" starts_with "$pub" "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ"
check "no ed25519: the fallback is logged" has_text "$R.logger" "this dropbear has no ed25519; made an RSA client key"
check "no ed25519: public line saved" has_line "$KEY.pub" "$pub"
check "no ed25519: key mode is 600" [ "$(stat -c %a "$KEY")" = 600 ]
check "no user in passwd: key stays root's" [ "$(stat -c %u "$KEY")" = "$(id -u)" ]

# --- no usable dropbearkey at all -------------------------------------------------
mkdir -p "$TMP/bin-broken"
printf '#!/bin/sh\nexit 1\n' >"$TMP/bin-broken/dropbearkey"
chmod +x "$TMP/bin-broken/dropbearkey"
new_root broken
run_ucid "$R" "$TMP/bin-broken"
check "dropbearkey failing: exits 1, so OpenWrt keeps the script and retries at next boot" [ "$?" = 1 ]
check "dropbearkey failing: no key and no leftovers" [ -z "$(ls -A "$R/etc/entropyservice")" ]
check "dropbearkey failing: error says what to do" has_text "$R.logger" \
	"-p daemon.err dropbearkey could not create $KEY; make one with 'entropyservice keygen --out /etc/entropyservice/id_client'"

# --- the retry at next boot, with a working dropbearkey --------------------------
run_ucid "$R"
check "retry at next boot: exits 0" [ "$?" = 0 ]
check "retry at next boot: the key and its .pub are made" eval "[ -s '$KEY' ] && [ -s '$KEY.pub' ]"
