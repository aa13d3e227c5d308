# shellcheck shell=bash
# ensure_docker_engine: make sure a Docker engine answers. Where none does and this is a
# Debian/Ubuntu machine run as root, install docker.io from the distribution and start dockerd
# in the background (saying so); elsewhere, say what to install and fail.

ensure_docker_engine() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "No Docker engine is reachable. Install Docker (Debian/Ubuntu: apt-get install" \
             "docker.io), start it, and make sure you may use its socket; then run this again." >&2
        return 1
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        echo "==> installing docker.io from the distribution's packages (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io \
            >/dev/null
    fi
    echo "==> starting dockerd in the background (log: /tmp/dockerd.log)"
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 60); do
        if docker info >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    echo "dockerd did not answer within 60 s; see /tmp/dockerd.log" >&2
    return 1
}
