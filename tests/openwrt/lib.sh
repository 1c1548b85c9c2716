# Helpers shared by the tests in this directory (sourced, POSIX sh).
# Each check prints "ok - ..." or "not ok - ..."; run.sh counts those lines.

pass() {
	printf 'ok - %s\n' "$1"
}

# fail DESCRIPTION [DETAIL]: DETAIL (e.g. a log) is printed as "#" lines.
fail() {
	printf 'not ok - %s\n' "$1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/#   /'
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
	_desc="$1"
	shift
	if "$@"; then pass "$_desc"; else fail "$_desc"; fi
}

# A missing tool is a failure, never a skip.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	fail "needs '$1' (Debian: apt-get install -y $2)"
	exit 1
}

has_line() { grep -qxF -- "$2" "$1"; }
has_text() { grep -qF -- "$2" "$1"; }
count_text() { grep -cF -- "$2" "$1" || true; }
lacks_text() { ! grep -qF -- "$2" "$1"; }
starts_with() { case "$1" in "$2"*) return 0 ;; esac; return 1; }
