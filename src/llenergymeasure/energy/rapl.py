"""CPU package and DRAM energy from Linux powercap RAPL (`energy_uj`, wrapping counters):
read at a window's edges when they are known in advance (offline), or sampled on a thread and
interpolated at edges chosen after the fact (serving's steady state, its slices)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.energy.arithmetic import counter_delta, counter_window_j
from llenergymeasure.energy.periodic import Periodic

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplZone:
    path: Path
    kind: str  # "package" or "dram"
    wrap_uj: float

    def read_uj(self) -> float:
        return float((self.path / "energy_uj").read_text().strip())


@dataclass(frozen=True)
class RaplReading:
    package_uj: list[float]
    dram_uj: list[float]


class Rapl:
    """The readable package zones and their DRAM sub-zones, or a reason there are none."""

    def __init__(self, root: Path = POWERCAP) -> None:
        self.packages: list[RaplZone] = []
        self.drams: list[RaplZone] = []
        self.package_reason: str | None = None
        self.dram_reason: str | None = None
        self._discover(root)

    def _discover(self, root: Path) -> None:
        if not root.is_dir():
            self.package_reason = self.dram_reason = f"{root} does not exist (no powercap RAPL)"
            return
        denied: list[str] = []
        # intel-rapl:N is a package; intel-rapl:N:M its sub-zones (core, uncore, dram). AMD
        # kernels expose their RAPL counters under the same names.
        for zone in sorted(root.glob("intel-rapl:*")):
            try:
                name = (zone / "name").read_text().strip()
                wrap = float((zone / "max_energy_range_uj").read_text().strip())
                float((zone / "energy_uj").read_text().strip())
            except PermissionError:
                denied.append(str(zone / "energy_uj"))
                continue
            except (OSError, ValueError):
                continue
            depth = zone.name.count(":")
            if depth == 1 and name.startswith("package"):
                self.packages.append(RaplZone(zone, "package", wrap))
            elif depth == 2 and name == "dram":
                self.drams.append(RaplZone(zone, "dram", wrap))
        why = (
            f"permission denied reading {denied[0]} (root-only on most kernels)"
            if denied
            else f"no readable RAPL zone under {root}"
        )
        if not self.packages:
            self.package_reason = why
        if not self.drams:
            self.dram_reason = why if denied or not self.packages else "no RAPL DRAM zone"

    def read(self) -> RaplReading:
        return RaplReading(
            package_uj=[z.read_uj() for z in self.packages],
            dram_uj=[z.read_uj() for z in self.drams],
        )

    def energy_j(self, start: RaplReading, end: RaplReading) -> tuple[float | None, float | None]:
        """(package J, DRAM J) between two readings; None where that domain is not readable."""
        return (
            _zones_j(self.packages, start.package_uj, end.package_uj),
            _zones_j(self.drams, start.dram_uj, end.dram_uj),
        )


def _zones_j(zones: list[RaplZone], start: list[float], end: list[float]) -> float | None:
    if not zones:
        return None
    total = 0.0
    for zone, a, b in zip(zones, start, end, strict=True):
        delta = counter_delta(a, b, wrap_at=zone.wrap_uj)
        assert delta is not None  # a wrap_at always resolves a decrease
        total += delta / 1e6
    return total


NO_SPAN = "the RAPL samples do not span the window"


class RaplSampler(Periodic):
    """Every RAPL zone read every `interval_s` on a daemon thread (perf_counter times)."""

    def __init__(self, rapl: Rapl, interval_s: float) -> None:
        super().__init__(interval_s, "llem-rapl-sampler")
        self.rapl = rapl
        self.readings: list[tuple[float, RaplReading]] = []

    def start(self) -> None:
        if self.rapl.packages or self.rapl.drams:  # else nothing to read: the reasons stand
            super().start()

    def _take(self) -> None:
        if not (self.rapl.packages or self.rapl.drams):
            return
        t = time.perf_counter()
        try:
            reading = self.rapl.read()
        except (OSError, ValueError):  # one failed read leaves a gap, not a dead sampler
            return
        self.readings.append((t, reading))

    def energy_between(self, start_s: float, end_s: float) -> tuple[float | None, float | None]:
        """(package J, DRAM J) over [start_s, end_s], each zone's counter unwrapped and
        interpolated at the edges; None where a domain is not readable or not spanned."""
        readings = list(self.readings)
        times = [t for t, _ in readings]
        return (
            _sampled_j(
                self.rapl.packages, times, [r.package_uj for _, r in readings], start_s, end_s
            ),
            _sampled_j(self.rapl.drams, times, [r.dram_uj for _, r in readings], start_s, end_s),
        )

    def reasons(
        self, package_j: float | None, dram_j: float | None
    ) -> tuple[str | None, str | None]:
        """Why each of (package, DRAM) is None: not readable, else not spanned."""
        return (
            None if package_j is not None else self.rapl.package_reason or NO_SPAN,
            None if dram_j is not None else self.rapl.dram_reason or NO_SPAN,
        )


def _sampled_j(
    zones: list[RaplZone],
    times: list[float],
    per_reading_uj: list[list[float]],
    start_s: float,
    end_s: float,
) -> float | None:
    if not zones or not per_reading_uj:
        return None
    total = 0.0
    for k, zone in enumerate(zones):
        cumulative_mj = [0.0]
        for prev, cur in itertools.pairwise(per_reading_uj):
            step = counter_delta(prev[k], cur[k], wrap_at=zone.wrap_uj)
            assert step is not None  # a wrap_at always resolves a decrease
            cumulative_mj.append(cumulative_mj[-1] + step / 1000.0)
        energy = counter_window_j(times, cumulative_mj, start_s, end_s)
        if energy is None:
            return None
        total += energy
    return total
