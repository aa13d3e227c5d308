# shellcheck shell=bash
# before_tests PYTHON: run by scripts/test before pytest. The integration tests need a Docker
# engine and the CPU image: start the engine (installing docker.io as root on Debian/Ubuntu when
# missing), build the image offline when needed (cached), and make those tests fail rather than
# skip if the engine is still not reachable.

before_tests() {
    local bin
    bin="$(dirname "$1")"
    ensure_docker_engine
    ensure_cpu_image "$bin/llem"
    ensure_vllm_cpu_image "$bin/llem"
    export LLEM_REQUIRE_DOCKER=1
}
