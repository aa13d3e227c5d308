"""A work folder's Parquet is the container's, so untrusted: a few hundred KiB of repeated values
can decode to gigabytes. The timeline (and so `results plot` and the report) reads the footer
first and skips a file above its caps with the reason, instead of loading it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers.results import standard_study
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.plots import timeline_plot
from llenergymeasure.results.report import build_report
from llenergymeasure.study import work_files
from llenergymeasure.study.work_files import PARQUET_CAPS, ParquetCap

MiB = 1 << 20


def samples(n: int) -> pa.Table:
    """`n` identical samples with the sampler's columns: they compress to almost nothing."""
    return pa.table(
        {
            "t_s": np.zeros(n),
            "phase": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), ["window"]),
            "gpu": np.zeros(n, np.int32),
            "power_w": np.full(n, 300.0),
            "temperature_c": np.full(n, 60.0),
        }
    )


def write_repeated(path: Path, table: pa.Table, times: int) -> Path:
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        for _ in range(times):
            writer.write_table(table)
    return path


def test_millions_of_rows_in_a_small_file_are_refused_on_the_footer(tmp_path: Path) -> None:
    path = write_repeated(tmp_path / WorkPaths.TIMESERIES, samples(1_000_000), 6)
    assert path.stat().st_size < 1 * MiB  # 6 M rows x 5 columns: about 200 MiB decoded
    plot = timeline_plot(tmp_path, "r")
    assert plot.figure is None
    assert plot.reason == (
        "timeseries.parquet: holds 6,000,000 rows, above its 5,000,000-row cap; not read"
    )


def test_the_report_skips_such_a_timeline_with_the_reason(tmp_path: Path) -> None:
    study_dir = standard_study(tmp_path)
    first = sorted((study_dir / "experiments").iterdir())[0]
    write_repeated(first / WorkPaths.TIMESERIES, samples(1_000_000), 6)
    html = build_report(load_study_results(study_dir))
    assert "holds 6,000,000 rows, above its 5,000,000-row cap; not read" in html


def test_text_that_decompresses_past_the_byte_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain (not dictionary) text: the footer states its uncompressed size."""
    monkeypatch.setitem(PARQUET_CAPS, WorkPaths.TIMESERIES, ParquetCap(1000, 4 * MiB, MiB))
    n = 100
    table = samples(n).set_column(1, "phase", pa.array(["x" * 100_000 + str(i) for i in range(n)]))
    pq.write_table(table, tmp_path / WorkPaths.TIMESERIES, use_dictionary=False, compression="zstd")
    assert (tmp_path / WorkPaths.TIMESERIES).stat().st_size < 1 * MiB  # 10 MB uncompressed
    reason = timeline_plot(tmp_path, "r").reason or ""
    assert "holds 9 MiB uncompressed, above its 4 MiB cap; not read" in reason


def test_data_past_the_cap_as_decoded_is_refused_whatever_the_footer_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dictionary and run-length encoding: the footer's uncompressed size is a few KiB for
    what decodes to 80 MB; the decoded batches are counted."""
    monkeypatch.setitem(PARQUET_CAPS, WorkPaths.TIMESERIES, ParquetCap(5_000_000, 8 * MiB, MiB))
    path = write_repeated(tmp_path / WorkPaths.TIMESERIES, samples(1_000_000), 2)
    metadata = pq.ParquetFile(path).metadata
    stated = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    assert stated < 1 * MiB
    assert timeline_plot(tmp_path, "r").reason == (
        "timeseries.parquet: decodes to more than its 8 MiB cap; not read"
    )


def test_only_flat_columns_are_read(tmp_path: Path) -> None:
    """A list column's values are not counted by the footer's rows: one row can hold millions."""
    table = samples(2).set_column(3, "power_w", pa.array([[1.0, 2.0], [3.0]]))
    pq.write_table(table, tmp_path / WorkPaths.TIMESERIES)
    assert timeline_plot(tmp_path, "r").reason == (
        "timeseries.parquet: has nested column(s) power_w; llem reads flat ones; not read"
    )


def test_what_is_not_parquet_or_lacks_columns_is_said(tmp_path: Path) -> None:
    path = tmp_path / WorkPaths.TIMESERIES
    path.write_bytes(b"PAR1 but not a Parquet file")
    assert timeline_plot(tmp_path, "r").reason == (
        "timeseries.parquet: is not a Parquet file; not read"
    )
    path.write_bytes(b"PAR1" + b"\0" * 16 + (8).to_bytes(4, "little") + b"PAR1")
    assert "is not a readable Parquet file" in (timeline_plot(tmp_path, "r").reason or "")
    pq.write_table(samples(3).drop_columns(["gpu"]), path)
    assert timeline_plot(tmp_path, "r").reason == "timeseries.parquet has no gpu"


def test_only_the_columns_asked_for_are_read(tmp_path: Path) -> None:
    table = samples(4).append_column("unix_s", pa.array(np.arange(4.0)))
    pq.write_table(table, tmp_path / WorkPaths.TIMESERIES)
    read = work_files.read_parquet(tmp_path, WorkPaths.TIMESERIES, ["t_s", "power_w", "absent"])
    assert read is not None and read.column_names == ["t_s", "power_w"]
    assert read.column("power_w").to_pylist() == [300.0] * 4
    assert work_files.read_parquet(tmp_path / "none", WorkPaths.TIMESERIES, ["t_s"]) is None
