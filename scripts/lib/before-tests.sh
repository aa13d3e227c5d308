# shellcheck shell=bash
# before_tests PYTHON: run by scripts/test before pytest. The integration tests need a Docker
# engine and the CPU image: start the engine (installing docker.io as root on Debian/Ubuntu when
# missing), build the image offline when needed (cached), and make those tests fail rather than
# skip if the engine is still not reachable.

before_tests() {
    local bin
    bin="$(dirname "$1")"
    ensure_docker_engine
    ensure_compose
    ensure_cpu_image "$bin/llem"
    ensure_vllm_cpu_image "$bin/llem"
    export LLEM_REQUIRE_DOCKER=1
}

# ensure_compose: Debian's docker-compose (1.29), which a test uses to build from
# compose/images.yaml; installed as root on Debian/Ubuntu when missing.
ensure_compose() {
    command -v docker-compose >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing docker-compose from the distribution's packages (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            docker-compose >/dev/null \
            || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                    docker-compose >/dev/null; }
    fi
}
