"""A work folder as the host leaves it for the container: a valid config.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import WorkPaths


def write_workdir(root: Path, model: Path | str, **config: Any) -> Path:
    """A work folder holding a valid config.json for `model`, sized for fast tests.

    Keyword arguments override ExperimentConfig fields (nested dicts replace whole sections).
    """
    root.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {
        "model": str(model),
        "precision": "fp32",
        "gpu_count": 0,
        "n_prompts": 6,
        "max_new_tokens": 6,
        "prompts": {"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 12}},
        "baseline": {"duration_s": 0.1},
        "warmup": {"min_batches": 2, "max_batches": 4, "cv_window": 2, "cv_bound": 0.5},
        "min_window_s": 0.2,
        "pytorch": {"batch_size": 4},
    }
    fields.update(config)
    request = RunRequest.model_validate(
        {
            "config": fields,
            "context": {
                "study_id": "test-study",
                "study_name": "test",
                "run_id": "0000_deadbeef_c0",
                "run_index": 0,
                "config_hash": "deadbeef" * 8,
                "cycle": 0,
                "offline": True,
            },
        }
    )
    (root / WorkPaths.CONFIG).write_text(json.dumps(request.model_dump(mode="json")))
    return root
