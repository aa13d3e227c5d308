# shellcheck shell=bash
# ensure_vllm_cpu_image LLEM: build llenergymeasure/vllm-cpu with `llem images build vllm-cpu`
# (offline build from a host wheelhouse of ~0.9 GB; cached: it returns at once when an image with
# the same inputs exists). Only when LLEM_BUILD_VLLM_CPU=1: the first build takes minutes and the
# image is ~3.7 GB, so by default the vLLM-on-CPU integration test skips when the image is absent.

ensure_vllm_cpu_image() {
    local llem="$1"
    if [ "${LLEM_BUILD_VLLM_CPU:-0}" != 1 ]; then
        echo "==> vllm-cpu image: not built (set LLEM_BUILD_VLLM_CPU=1 to build it and run the" \
             "mixed PyTorch + vLLM CPU study test)"
        return 0
    fi
    echo "==> vllm-cpu image (llem images build vllm-cpu; cached by its inputs)"
    "$llem" images build vllm-cpu
}
