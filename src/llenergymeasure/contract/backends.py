"""The backends, one row each: every fact about a backend that more than one module needs.

Host-safe (no engine import): the host reads it to plan, estimate, build images and start
containers; the container reads it to find the adapter and set the engine's environment. Adding
a backend is a row here, its section module (`contract/sections/`), and its adapter module
(which also knows the command line of the backend's server); `ExperimentConfig` gets its
section field from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from llenergymeasure.contract.sections.base import BackendSection
from llenergymeasure.contract.sections.pytorch import PyTorchConfig
from llenergymeasure.contract.sections.tensorrt import TensorRTConfig
from llenergymeasure.contract.sections.vllm import VLLMConfig

Batching = Literal["static", "continuous"]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    section: type[BackendSection]  # the experiment's `<name>:` section
    engine: str  # the inference engine's own name, as results record it
    adapter: str  # "module:Class" of the backend's adapter, imported only when chosen
    image: str  # image repository of the GPU image (tag: the llem version)
    cpu_image: str | None  # repository of an image that runs it without a GPU, if any
    batching: Batching  # static: batches of `concurrency_key`; continuous: the whole set at once
    concurrency_key: str  # the section key that caps the sequences decoded together
    startup_guess_s: float  # container start + load of a ~1-8 B model, for the plan's estimate
    # ... and for a serving run: container start + its server's start until it answers (None:
    # no server, see no_server_reason)
    server_start_guess_s: float | None = None
    environment: dict[str, str] = field(default_factory=dict)  # set in every container
    env_allowlist: tuple[str, ...] = ()  # passed from the host's environment when set
    shm_one_gpu: str | None = None  # /dev/shm its processes need on one GPU (None: default)
    shm_multi_gpu: str | None = None  # ... across GPUs (tensor/pipeline parallel)
    colour: str = "#7f7f7f"  # in plots
    # Why it has no OpenAI-compatible server for `mode: serving` in llem's image (None: its
    # adapter knows the server's command line).
    no_server_reason: str | None = None
    # A host folder under llem's cache mounted read-write for what the engine compiles once and
    # reuses (None: nothing), and the variable that moves it.
    engine_cache: str | None = None
    engine_cache_env: str | None = None

    def __post_init__(self) -> None:
        if (self.no_server_reason is None) != (self.server_start_guess_s is not None):
            raise ValueError(
                f"backend {self.name}: server_start_guess_s is set exactly when it has a "
                "server (no_server_reason unset)"
            )

    def shm_size(self, gpu_count: int) -> str | None:
        return self.shm_multi_gpu if gpu_count > 1 else self.shm_one_gpu


# Why each vLLM variable:
# - spawn: worker processes must not fork a parent that may have touched CUDA (NVML sampling
#   threads, torch); forked CUDA state breaks tensor-parallel workers.
# - no usage statistics: containers may be offline, and a study must not phone home.
# Whether the V1 engine core runs in its own process is the experiment's choice
# (`vllm.engine_multiprocessing`), set from the config by `contract.container`.
VLLM_ENV: dict[str, str] = {
    "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}

BACKEND_TABLE: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            name="pytorch",
            section=PyTorchConfig,
            engine="transformers",
            adapter="llenergymeasure.backends.pytorch:PyTorchBackend",
            image="llenergymeasure/pytorch",
            cpu_image="llenergymeasure/cpu",
            batching="static",
            concurrency_key="batch_size",
            startup_guess_s=45.0,
            colour="#1f77b4",
            no_server_reason="transformers' own server (`transformers serve`) needs fastapi and "
            "uvicorn, which the pytorch image does not carry",
        ),
        BackendSpec(
            name="vllm",
            section=VLLMConfig,
            engine="vllm",
            adapter="llenergymeasure.backends.vllm:VLLMBackend",
            image="llenergymeasure/vllm",
            cpu_image="llenergymeasure/vllm-cpu",
            batching="continuous",
            concurrency_key="max_num_seqs",
            startup_guess_s=90.0,
            server_start_guess_s=150.0,
            environment=VLLM_ENV,
            env_allowlist=("VLLM_LOGGING_LEVEL", "VLLM_ATTENTION_BACKEND", "VLLM_USE_V1"),
            # 1g covers the engine core's IPC on one GPU; NCCL across GPUs wants much more.
            shm_one_gpu="1g",
            shm_multi_gpu="16g",
            colour="#ff7f0e",
        ),
        BackendSpec(
            name="tensorrt",
            section=TensorRTConfig,
            engine="tensorrt_llm",
            adapter="llenergymeasure.backends.tensorrt:TensorRTBackend",
            image="llenergymeasure/tensorrt",
            cpu_image=None,
            batching="continuous",
            concurrency_key="max_batch_size",
            startup_guess_s=120.0,
            server_start_guess_s=180.0,
            env_allowlist=("TLLM_LOG_LEVEL",),
            shm_one_gpu="16g",  # its executor's MPI workers, even on one GPU
            shm_multi_gpu="16g",
            colour="#2ca02c",
            engine_cache="tensorrt-engines",
            engine_cache_env="LLEM_ENGINE_CACHE",
        ),
    )
}
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
"""Secrets from the host's environment: passed to a fetch container of an online study, to no
experiment container, and written to no file."""

BACKENDS: tuple[str, ...] = tuple(BACKEND_TABLE)


def spec_of(backend: str) -> BackendSpec:
    return BACKEND_TABLE[backend]
