# shellcheck shell=bash
# Shared by every script that needs a container engine (scripts/fresh-ci.sh,
# the cross build, the systemd tests). Sourced, bash, as root; source
# scripts/lib.sh first (it provides die, log and apt_install).
#
#   dockerd_up          start Debian's dockerd as this machine needs it, unless
#                       one already answers; registers dockerd_down on EXIT
#   dockerd_down        stop the dockerd that dockerd_up started (never one it
#                       found running)
#   base_image [TAG]    make TAG (default debian:bookworm) from a `debootstrap
#                       --variant=minbase bookworm` root and `docker import` it,
#                       unless the image exists: Dockerfiles say `FROM
#                       debian:bookworm`, which is pulled where Docker Hub is
#                       reachable and made here where it is not
#   docker_run_flags    print the `docker run` flags that give a container full
#                       capabilities on this machine (--privileged fails here:
#                       the bounding set lacks CAP_SYS_RESOURCE)
#   docker_ca_flags     print -v flags that mount the host's extra CA
#                       certificates read-only at /usr/local/share/ca-certificates
#
# Environment: ES_DOCKER_DATA (default /var/lib/entropyservice-docker), the
# data root of a dockerd started here, kept apart from any system docker.

ES_DOCKERD_STARTED=${ES_DOCKERD_STARTED:-0}
ES_DOCKER_DATA=${ES_DOCKER_DATA:-/var/lib/entropyservice-docker}

dockerd_up() {
    if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io
    fi
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    log "starting dockerd (vfs storage, no iptables, no bridge; log in $ES_DOCKER_DATA.log)"
    mkdir -p "$ES_DOCKER_DATA"
    dockerd --data-root "$ES_DOCKER_DATA" --storage-driver vfs --iptables=false \
        --ip6tables=false --bridge=none >"$ES_DOCKER_DATA.log" 2>&1 &
    ES_DOCKERD_PID=$!
    ES_DOCKERD_STARTED=1
    trap dockerd_down EXIT
    local _
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 "$ES_DOCKERD_PID" 2>/dev/null || die "dockerd exited at start; see $ES_DOCKER_DATA.log"
        sleep 1
    done
    die "dockerd did not answer within 60 s; see $ES_DOCKER_DATA.log"
}

dockerd_down() {
    [ "$ES_DOCKERD_STARTED" = 1 ] || return 0
    ES_DOCKERD_STARTED=0
    log "stopping the dockerd started here"
    kill "$ES_DOCKERD_PID" 2>/dev/null || true
    local _
    for _ in $(seq 1 30); do
        kill -0 "$ES_DOCKERD_PID" 2>/dev/null || return 0
        sleep 1
    done
    kill -9 "$ES_DOCKERD_PID" 2>/dev/null || true
}

base_image() {
    local tag=${1:-debian:bookworm}
    docker image inspect "$tag" >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    local root
    root=$(mktemp -d /var/tmp/es-bookworm.XXXXXX)
    # mktemp made it 0700, and tar records "." as the image's /: a real
    # Debian root is 0755 (otherwise only root can load libc).
    chmod 0755 "$root"
    log "debootstrap --variant=minbase bookworm (about a minute), then docker import as $tag"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 \
        || { rm -rf "$root"; die "debootstrap failed; see $root.log"; }
    tar -C "$root" -c . | docker import - "$tag" >/dev/null \
        || { rm -rf "$root"; die "docker import $tag failed"; }
    rm -rf "$root" "$root.log"
}

docker_run_flags() {
    echo --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined
}

docker_ca_flags() {
    local d=/usr/local/share/ca-certificates
    [ -d "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ] && echo -v "$d:/usr/local/share/ca-certificates/host:ro"
    return 0
}
