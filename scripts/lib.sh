# shellcheck shell=bash
# Helpers shared by scripts/cross-build.sh, scripts/qemu-user-test.sh and
# tests/vm/run.sh (sourced, bash). Set ES_SCRIPT to the script's name first:
# it prefixes every line.

die() { echo "$ES_SCRIPT: FAIL: $*" >&2; exit 1; }
log() { echo "$ES_SCRIPT: $*" >&2; }

# apt-get install, with one `apt-get update` when the package lists are stale.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "need Debian packages: $* (no apt-get here)"
    log "apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null \
            || die "apt-get install $* failed"
    fi
}

pip_install() {
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3 python3-pip
    fi
    log "pip install $*"
    # Debian's own python3 is "externally managed" (PEP 668); a pyenv one is not.
    python3 -m pip install --quiet "$@" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "$@" \
        || die "pip install $* failed"
    hash -r
}

# Stages that need a container engine themselves (docker) cannot run inside
# scripts/fresh-ci.sh's container, which sets ES_FRESH_CI=1. Such a stage
# starts with `fresh_ci_skip "WHAT" "WHY" && return 0` (or exit 0): inside
# that container it prints one loud line and the stage is skipped; everywhere
# else (normal CI) this returns 1 and the stage runs.
fresh_ci_skip() {
    [ "${ES_FRESH_CI:-0}" = 1 ] || return 1
    echo "${ES_SCRIPT:-ci}: SKIPPED in scripts/fresh-ci.sh's container: $1 ($2); it runs in normal CI" >&2
    return 0
}
