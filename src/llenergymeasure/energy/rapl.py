"""CPU package and DRAM energy from Linux powercap RAPL (`energy_uj`, wrapping counters)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.energy.arithmetic import counter_delta

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
