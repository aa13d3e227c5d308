"""The most processes + threads each backend's experiment container holds, against pids_limit.

Runs a real CPU study (`llem run`): PyTorch on llenergymeasure/cpu and vLLM on
llenergymeasure/vllm-cpu with its engine core in its own process and in the experiment process
itself, on the tiny random-weight model. While each container runs, its pids cgroup
(`pids.current`) is read every 20 ms; printed: the peak per run and the share of the default
limit it used. Thread pools grow with the host's cores (torch starts one intra-op thread per
core in each process), so the figures scale with `nproc`, printed with them.

    python benchmarks/container_tasks.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
from ruamel.yaml import YAML

from llenergymeasure.config.study import DEFAULT_PIDS_LIMIT
from llenergymeasure.orchestrator.machine.pids import PidsWatch

LLEM = str(Path(sys.executable).parent / "llem")
STUDY = {
    "name": "tasks",
    "output_dir": "out",
    "offline": True,
    "images": {"pytorch": "llenergymeasure/cpu:latest", "vllm": "llenergymeasure/vllm-cpu:latest"},
    "model": "./model",
    "precision": "fp32",
    "gpu_count": 0,
    "n_prompts": 16,
    "max_new_tokens": 32,
    "prompts": {"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 32}},
    "warmup": {"min_batches": 1, "max_batches": 2},
    "baseline": {"duration_s": 1},
    "min_window_s": 3,
    "pytorch": {"batch_size": 16},
    "vllm": {"enforce_eager": True},
    "sweep": {"backend": ["pytorch", "vllm"], "vllm.engine_multiprocessing": [True, False]},
    "execution": {"gap_between_experiments_s": 0, "gap_between_cycles_s": 0},
}


def describe(container: docker.models.containers.Container) -> str:
    """The run's engine, from the container's environment (the vLLM mode variable)."""
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    mode = env.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    if mode is None:
        return "pytorch"
    where = "its own process" if mode == "1" else "the experiment process itself"
    return f"vllm, engine core in {where}"


def main() -> None:
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="llem-tasks-") as tmp:
        folder = Path(tmp)
        subprocess.run(
            [
                *("docker", "run", "--rm", "--network", "none", "-e", "HOME=/tmp"),
                *("-u", f"{os.getuid()}:{os.getgid()}", "-v", f"{folder}:/out"),
                *("--entrypoint", "python3", "llenergymeasure/cpu:latest"),
                *("-m", "llenergymeasure.experiment.tiny_model", "/out/model"),
                *("--hidden", "128", "--heads", "2"),
            ],
            check=True,
            capture_output=True,
        )
        with open(folder / "study.yaml", "w") as handle:
            YAML().dump(STUDY, handle)
        study = subprocess.Popen(
            [LLEM, "run", "study.yaml", "--yes"], cwd=folder, stdout=subprocess.DEVNULL
        )
        peaks: dict[str, tuple[str, int]] = {}
        watches: dict[str, PidsWatch] = {}
        while study.poll() is None:
            for container in client.containers.list(filters={"label": "llem.run"}):
                run = container.labels["llem.run"]
                watch = watches.setdefault(run, PidsWatch(container.id))
                tasks = watch.tasks()
                if tasks is not None:
                    peaks[run] = (describe(container), max(tasks, peaks.get(run, ("", 0))[1]))
            time.sleep(0.02)
    print(f"host cores (nproc): {os.cpu_count()}; default pids_limit {DEFAULT_PIDS_LIMIT}")
    for run, (what, peak) in sorted(peaks.items()):
        share = 100 * peak / DEFAULT_PIDS_LIMIT
        print(f"{run}: peak {peak} processes + threads ({share:.1f} % of the limit)  {what}")
    if study.returncode != 0:
        raise SystemExit(f"the study failed (exit {study.returncode})")


if __name__ == "__main__":
    main()
