# shellcheck shell=bash
# before_tests PYTHON: run by scripts/test before pytest. The integration tests need a Docker
# engine and the CPU image: start the engine (installing docker.io as root on Debian/Ubuntu when
# missing), build the image offline when needed (cached), and make those tests fail rather than
# skip if the engine is still not reachable.

before_tests() {
    local bin
    bin="$(dirname "$1")"
    ensure_docker_engine
    # docker-compose builds from compose/images.yaml; chromium renders the HTML report.
    ensure_debian_package docker-compose docker-compose && export LLEM_REQUIRE_COMPOSE=1
    ensure_debian_package chromium chromium && export LLEM_REQUIRE_CHROMIUM=1
    ensure_container_account
    ensure_cpu_image "$bin/llem"
    ensure_vllm_cpu_image "$bin/llem"
    drop_superseded_images
    export LLEM_REQUIRE_DOCKER=1
    ensure_slurm_cluster
    ensure_podman_service
}

# ensure_debian_package COMMAND PACKAGE: install PACKAGE from the distribution when COMMAND is
# missing (as root on Debian/Ubuntu); true when COMMAND is there afterwards.
ensure_debian_package() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing $2 from the distribution's packages (apt-get)"
        local install=(apt-get install -y -q --no-install-recommends "$2")
        DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1 \
            || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
                && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; }
    fi
    command -v "$1" >/dev/null 2>&1
}

# drop_superseded_images: each source change builds new llem images; the untagged ones they
# replace (labelled llem.inputs) would otherwise fill the disk of a machine that tests often.
drop_superseded_images() {
    echo "==> removing superseded (untagged) llem images; $(df -h --output=avail / | tail -1 | tr -d ' ') free on /"
    docker image prune -f --filter label=llem.inputs >/dev/null
}
