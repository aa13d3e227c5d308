# shellcheck shell=bash
# ensure_cpu_image LLEM: build llenergymeasure/cpu with `llem images build cpu` (offline when no
# registry answers). Cached: it returns at once when an image with the same inputs exists.

ensure_cpu_image() {
    local llem="$1"
    echo "==> CPU image (llem images build cpu; cached by its inputs)"
    "$llem" images build cpu
}

# ensure_tiny_model DEST [ARGS...]: a random-weight tiny model made inside the CPU image (no hub,
# no torch on the host); ARGS go to experiment.tiny_model (e.g. --hidden 128 --heads 2 for
# vLLM's CPU attention, which needs head_dim >= 64). It demonstrates the harness; it is not a
# language model.
ensure_tiny_model() {
    local dest="$1"
    if [ -f "$dest/config.json" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    local parent
    parent="$(cd "$(dirname "$dest")" && pwd)"
    echo "==> making the tiny demo model in $dest (random weights: it tests the harness only)"
    docker run --rm --network none -u "$(id -u):$(id -g)" -e HOME=/tmp \
        -v "$parent:/out" --entrypoint python3 llenergymeasure/cpu:latest \
        -m llenergymeasure.experiment.tiny_model "/out/$(basename "$dest")" "${@:2}" >/dev/null
}
