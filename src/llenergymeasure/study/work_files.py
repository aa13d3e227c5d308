"""The host's one way into a run's work folder.

The work folder belongs to the container's user: whatever is in it when the host looks may have
been planted there (a link to a root-only file, a FIFO, a link to `/dev/zero`, a 2 GiB file, an
endless line, a small Parquet file that decodes to gigabytes). Every host reader and writer of a
work folder goes through this module, which reads by the rules of `study.untrusted`, with the
caps of each file's kind from the tables below (`CAPS`: its bytes; `PARQUET_CAPS`: what a
Parquet file may decode to). What breaks a rule is the run's failure (`UntrustedFile`), never
llem's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import (
    ErrorReport,
    ProgressEvent,
    WorkPaths,
    atomic_write_json,
)
from llenergymeasure.study.untrusted import (
    UntrustedFile,
    irregular,
    printable,
    read_bytes,
    read_from,
    read_tail,
    regular_size,
)

if TYPE_CHECKING:  # pyarrow is imported by the one reader of Parquet, not by every command
    import pyarrow as pa
    import pyarrow.parquet as pq

MiB = 1 << 20
# The most the host reads of each file (a bigger one is refused), or, for the log it writes
# itself, keeps. Far above what a run writes: a result is tens of KiB, a timeseries of an hour
# at 10 Hz on 8 GPUs a few MiB.
CAPS: dict[str, int] = {
    WorkPaths.CONFIG: 8 * MiB,
    WorkPaths.PLACEMENT: 64 * 1024,
    WorkPaths.PROGRESS: 64 * MiB,
    WorkPaths.RESULT: 16 * MiB,
    WorkPaths.ERROR: 1 * MiB,
    WorkPaths.CONTAINER_LOG: 64 * MiB,
    WorkPaths.TIMESERIES: 512 * MiB,
}


@dataclass(frozen=True)
class ParquetCap:
    """The most the host decodes of a Parquet file, checked on its footer before any data is
    read, and again on the data as decoded (a footer can understate it): a few MiB of
    repeated values on disk can decode to gigabytes."""

    rows: int
    data_bytes: int  # of the columns read: uncompressed (the footer's figure), and decoded
    footer_bytes: int


# Far above what a run writes: a timeseries of an hour at 10 Hz on 8 GPUs is 288,000 rows.
PARQUET_CAPS: dict[str, ParquetCap] = {
    WorkPaths.TIMESERIES: ParquetCap(rows=5_000_000, data_bytes=512 * MiB, footer_bytes=1 * MiB),
}
PARQUET_BATCH_ROWS = 65_536  # decoded and counted at a time

# The longest progress line taken; a longer one is skipped, not buffered.
PROGRESS_LINE_CAP = 64 * 1024
# What one look at progress.jsonl reads at most: memory per look is bounded, whatever it holds.
PROGRESS_STEP = 256 * 1024
LOG_TAIL_BYTES = 4000


def write(workdir: Path, name: str, record: BaseModel) -> None:
    """One of the contract's files, written by the host: atomically, through a new temporary
    file renamed over the name (a link planted there is replaced, never written through)."""
    if name not in CAPS:
        raise ValueError(f"{name} is not a file of the work folder's contract")
    atomic_write_json(workdir / name, record)


def untrusted_entry(workdir: Path) -> str | None:
    """The first file of the contract in `workdir` that is not a plain regular file, and what
    it is instead; None when all are plain (or absent)."""
    for name in CAPS:
        problem = irregular(workdir / name)
        if problem is not None:
            return problem
    return None


def read_result(workdir: Path) -> ExperimentResult:
    """`result.json`, validated. FileNotFoundError, UntrustedFile or ValidationError."""
    return ExperimentResult.model_validate_json(
        read_bytes(workdir / WorkPaths.RESULT, CAPS[WorkPaths.RESULT])
    )


def read_error(workdir: Path) -> ErrorReport:
    """`error.json`, validated, its text made printable. FileNotFoundError, UntrustedFile or
    ValidationError."""
    report = ErrorReport.model_validate_json(
        read_bytes(workdir / WorkPaths.ERROR, CAPS[WorkPaths.ERROR])
    )
    return ErrorReport(
        type=printable(report.type)[:200],
        message=printable(report.message)[:2000],
        traceback=printable(report.traceback),
    )


def read_parquet(workdir: Path, name: str, columns: Sequence[str]) -> pa.Table | None:
    """The `columns` of one of the work folder's Parquet files (those it lacks are left out);
    None when the run left none. Capped by its bytes (`CAPS`), then by what it decodes to
    (`PARQUET_CAPS`): the footer's row count and the uncompressed size of the columns read,
    before any data is decoded, then the decoded data batch by batch; a nested column (whose
    values are not counted by rows) is refused, and text is kept dictionary-encoded.
    UntrustedFile."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, cap = workdir / name, PARQUET_CAPS[name]
    try:
        data = read_bytes(path, CAPS[name])
    except FileNotFoundError:
        return None
    if len(data) < 12 or data[-4:] != b"PAR1":
        raise UntrustedFile(path, "is not a Parquet file")
    footer = int.from_bytes(data[-8:-4], "little")
    if footer > cap.footer_bytes:
        raise UntrustedFile(
            path, f"has a footer of {footer:,} bytes, above its {cap.footer_bytes:,} cap"
        )
    try:
        schema = pq.ParquetFile(pa.BufferReader(data)).schema_arrow
        present = [c for c in columns if c in schema.names]
        nested = [c for c in present if pa.types.is_nested(schema.field(c).type)]
        if nested:
            raise UntrustedFile(
                path, f"has nested column(s) {', '.join(nested)}; llem reads flat ones"
            )
        parquet = pq.ParquetFile(pa.BufferReader(data), read_dictionary=present)
        _check_footer(path, parquet.metadata, present, cap)
        batches, decoded = [], 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=present):
            decoded += batch.nbytes
            if decoded > cap.data_bytes:
                raise UntrustedFile(
                    path, f"decodes to more than its {cap.data_bytes // MiB} MiB cap"
                )
            batches.append(batch)
    except (pa.ArrowException, OSError, ValueError, KeyError) as error:
        raise UntrustedFile(path, f"is not a readable Parquet file ({error})") from None
    if not batches:
        return parquet.schema_arrow.empty_table().select(present)
    return pa.Table.from_batches(batches)


def _check_footer(
    path: Path, metadata: pq.FileMetaData, columns: list[str], cap: ParquetCap
) -> None:
    """Refuse a file whose footer states more rows, or more uncompressed bytes of `columns`,
    than its cap."""
    if metadata.num_rows > cap.rows:
        raise UntrustedFile(
            path, f"holds {metadata.num_rows:,} rows, above its {cap.rows:,}-row cap"
        )
    stated = sum(
        chunk.total_uncompressed_size
        for group in (metadata.row_group(i) for i in range(metadata.num_row_groups))
        for chunk in (group.column(j) for j in range(group.num_columns))
        if chunk.path_in_schema in columns
    )
    if stated > cap.data_bytes:
        raise UntrustedFile(
            path,
            f"holds {stated // MiB:,} MiB uncompressed, above its {cap.data_bytes // MiB} MiB cap",
        )


def has_timeseries(workdir: Path) -> bool:
    return regular_size(workdir / WorkPaths.TIMESERIES) is not None


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log (container.log, a cluster job's output), printable; what
    the file is instead when it is not a plain file."""
    try:
        data = read_tail(path, LOG_TAIL_BYTES)
    except UntrustedFile as error:
        return f"({error}; not read)"
    text = printable(data.decode("utf-8", errors="replace"))
    return "\n".join(text.splitlines()[-lines:])


class ProgressTail:
    """Reads `progress.jsonl` from where the last read stopped: each event is parsed once, so
    following a run costs what it appends, not what it has written so far. A last line still
    being written waits for its newline; one read takes at most PROGRESS_STEP bytes (`behind`:
    there may be more). What breaks the contract (not a plain file, a line longer than
    PROGRESS_LINE_CAP, more than its cap in all) stops the reading: `problem` says what."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.behind = False
        self.problem: str | None = None

    def read_new(self) -> list[ProgressEvent]:
        if self.problem is not None:
            return []
        try:
            data = read_from(self.path, self.offset, PROGRESS_STEP)
        except UntrustedFile as error:
            self.problem = str(error)
            return []
        self.behind = len(data) == PROGRESS_STEP
        complete = data.rfind(b"\n") + 1
        if len(data) - complete >= PROGRESS_LINE_CAP:
            self.problem = f"{WorkPaths.PROGRESS} has a line longer than {PROGRESS_LINE_CAP} bytes"
        self.offset += complete
        if self.offset > CAPS[WorkPaths.PROGRESS]:
            self.problem = (
                f"{WorkPaths.PROGRESS} grew above its {CAPS[WorkPaths.PROGRESS] // MiB} MiB cap"
            )
        events: list[ProgressEvent] = []
        for line in data[:complete].splitlines():
            if not line.strip():
                continue
            if len(line) > PROGRESS_LINE_CAP:
                self.problem = (
                    f"{WorkPaths.PROGRESS} has a line longer than {PROGRESS_LINE_CAP} bytes"
                )
                break
            try:
                event = ProgressEvent.model_validate_json(line)
            except ValueError:
                continue
            if event.detail is not None:
                event = event.model_copy(update={"detail": printable(event.detail)[:200]})
            events.append(event)
        return events


def read_progress(path: Path) -> list[ProgressEvent]:
    """Every event of `progress.jsonl` so far (a last line still being written ignored)."""
    tail = ProgressTail(path)
    events = tail.read_new()
    while tail.behind and tail.problem is None:
        events += tail.read_new()
    return events
