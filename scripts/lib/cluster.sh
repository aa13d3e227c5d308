# shellcheck shell=bash
# ensure_slurm_cluster: the one-node Slurm cluster of scripts/slurm-local (installed and started
# as root on Debian/Ubuntu), for the Slurm executor's tests; they then fail rather than skip
# when it is not there. ensure_podman_service: podman's Docker-compatible API socket, likewise.

ensure_slurm_cluster() {
    if [ "$(id -u)" != 0 ] && ! scontrol ping 2>/dev/null | grep -q UP; then
        echo "==> Slurm: no cluster answers and this is not root; the Slurm tests will skip"
        return 0
    fi
    echo "==> Slurm: one-node cluster (bash scripts/slurm-local)"
    bash scripts/slurm-local >/dev/null
    export LLEM_REQUIRE_SLURM=1
}

ensure_podman_service() {
    local socket=/run/podman/podman.sock
    if [ "$(id -u)" != 0 ]; then
        echo "==> podman: not root; the podman tests use \$LLEM_PODMAN_SOCKET if it is set"
        return 0
    fi
    if ! command -v podman >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        # With its recommends (fuse-overlayfs, slirp4netns, catatonit...): podman as tested.
        echo "==> installing podman from the distribution's packages (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman >/dev/null 2>&1 \
            || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
                && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman >/dev/null; }
    fi
    command -v podman >/dev/null 2>&1 || return 1
    if ! socket_answers "$socket"; then
        echo "==> podman: starting its API service (log: /tmp/podman-service.log)"
        mkdir -p "$(dirname "$socket")"
        # From /: its containers' conmon inherits the service's working folder, and a checkout
        # that is removed later (a CI clone) would leave every later container unstartable.
        (cd / && nohup podman system service --time=0 "unix://$socket" >/tmp/podman-service.log 2>&1 &)
        for _ in $(seq 40); do
            socket_answers "$socket" && break
            sleep 0.25
        done
    fi
    export LLEM_REQUIRE_PODMAN=1
}

socket_answers() {
    python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" \
        2>/dev/null
}
