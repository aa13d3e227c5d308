# shellcheck shell=bash
# ensure_vllm_cpu_image LLEM: build llenergymeasure/vllm-cpu with `llem images build vllm-cpu`,
# offline from a host wheelhouse (~0.9 GB downloaded once into build/wheelhouse-vllm-cpu; the image
# is ~3.7 GB). Cached: it returns at once when an image with the same inputs exists, and a change
# to this package alone rebuilds one small layer. Measured on 2 cores: first build ~2 min, a
# source-only rebuild ~5 s, a cached run under 1 s. Set LLEM_BUILD_VLLM_CPU=0 to leave it out:
# the mixed PyTorch + vLLM CPU study test then skips, saying why.

ensure_vllm_cpu_image() {
    local llem="$1"
    if [ "${LLEM_BUILD_VLLM_CPU:-1}" = 0 ]; then
        echo "==> vllm-cpu image: left out (LLEM_BUILD_VLLM_CPU=0)"
        return 0
    fi
    echo "==> vllm-cpu image (llem images build vllm-cpu; cached by its inputs)"
    "$llem" images build vllm-cpu
    # Built on purpose: its test must now fail, not skip, if the image is missing.
    export LLEM_REQUIRE_VLLM_CPU=1
}
