"""The experiment process reads config.json, placed where the executor's placement.json says."""

from __future__ import annotations

from pathlib import Path

from helpers.workdirs import write_workdir
from llenergymeasure.contract.run import Placement
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.experiment.process import ExperimentProcess


def test_a_placement_file_places_the_request(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work", "stub:m")
    alone = ExperimentProcess(work).load_request()
    assert alone.context.gpu_uuids == [] and alone.context.cpuset is None
    placement = Placement(node="n7", gpu_indices=[3], gpu_uuids=["GPU-abc"], cpuset="0-7")
    (work / WorkPaths.PLACEMENT).write_text(placement.model_dump_json())
    placed = ExperimentProcess(work).load_request()
    assert (placed.context.gpu_indices, placed.context.gpu_uuids) == ([3], ["GPU-abc"])
    assert placed.context.cpuset == "0-7" and placed.config == alone.config
