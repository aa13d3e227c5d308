# shellcheck shell=bash
# ensure_venv EXTRA: .venv with this package installed (EXTRA: "" for the host part, "dev" for
# tests), reinstalled whenever pyproject.toml changes. torch is pinned to the CPU wheel first,
# so nothing pulls a CUDA build.

ensure_venv() {
    local extra="$1" spec="." stamp
    [ -n "$extra" ] && spec=".[$extra]"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    stamp=".venv/.llem-installed-${extra:-host}-$(sha256sum pyproject.toml | cut -c1-16)"
    [ -e "$stamp" ] && return 0
    echo "==> installing $spec into .venv"
    if [ "$extra" = dev ]; then
        .venv/bin/python -m pip install -q torch==2.13.0
    fi
    .venv/bin/python -m pip install -q -e "$spec"
    touch "$stamp"
}
