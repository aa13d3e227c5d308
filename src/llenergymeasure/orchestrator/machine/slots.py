"""Where a run executes on this host: a slot of disjoint GPUs, or of disjoint host CPUs.

Pure bookkeeping, no Docker. The pool is `execution.gpu_ids` (and `execution.cpu_ids` for runs
with gpu_count 0); at most `max_parallel` runs hold a slot at once. A run with gpu_count k takes
the k first free GPUs; a CPU run takes a free CPU group (the pool split evenly, contiguous, one
group per slot). Nothing is ever in two slots at once. "Lowest" is the pool's own order: with one
run at a time, a run with gpu_count k takes the first k of `gpu_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.errors import UserError


@dataclass(frozen=True)
class Slot:
    gpus: tuple[int, ...] = ()  # host GPU indices
    cpus: tuple[int, ...] | None = None  # host CPUs the container is pinned to; None: not pinned

    @property
    def resources(self) -> tuple[str, ...]:
        """What the slot holds, by name: its gaps and cool-down belong to these."""
        if self.gpus:
            return tuple(f"gpu{index}" for index in self.gpus)
        return (f"cpus{','.join(map(str, self.cpus))}" if self.cpus is not None else "cpus",)

    @property
    def cpuset(self) -> str | None:
        """Docker's `cpuset_cpus` form, e.g. "0,1,2"."""
        return ",".join(map(str, self.cpus)) if self.cpus is not None else None


def split_cpus(cpus: list[int], groups: int) -> list[tuple[int, ...]]:
    """`cpus` in `groups` contiguous runs whose sizes differ by at most one."""
    if groups > len(cpus):
        raise ValueError(f"{len(cpus)} CPUs cannot make {groups} disjoint groups")
    size, extra = divmod(len(cpus), groups)
    out, start = [], 0
    for k in range(groups):
        end = start + size + (1 if k < extra else 0)
        out.append(tuple(cpus[start:end]))
        start = end
    return out


class SlotPool:
    """The free GPUs and CPU groups; `take` a slot for a run, `give_back` when it ends."""

    def __init__(
        self, gpu_ids: list[int], max_parallel: int, cpu_groups: list[tuple[int, ...]] | None
    ) -> None:
        self.max_parallel = max_parallel
        self._order = {gpu: k for k, gpu in enumerate(gpu_ids)}  # the pool's own order
        self.free_gpus = list(gpu_ids)
        # None: CPU runs are not pinned (one at a time on the whole host).
        self.free_cpu_groups: list[tuple[int, ...]] | None = (
            list(cpu_groups) if cpu_groups is not None else None
        )
        self.held: list[Slot] = []
        self.bounded = True

    @classmethod
    def unbounded(cls) -> SlotPool:
        """Slots without resources or a count: for an executor whose scheduler places runs."""
        pool = cls([], 1, None)
        pool.bounded = False
        return pool

    def fits(self, gpu_count: int) -> bool:
        if not self.bounded:
            return True
        if len(self.held) >= self.max_parallel:
            return False
        if gpu_count > 0:
            return len(self.free_gpus) >= gpu_count
        return self.free_cpu_groups is None or bool(self.free_cpu_groups)

    def peek(self, gpu_count: int) -> Slot:
        """The slot `take` would give now."""
        if not self.fits(gpu_count):
            raise RuntimeError(f"no free slot for a run with gpu_count {gpu_count}")
        if not self.bounded:
            return Slot()
        if gpu_count > 0:
            return Slot(gpus=tuple(self.free_gpus[:gpu_count]))
        if self.free_cpu_groups is None:
            return Slot()
        return Slot(cpus=self.free_cpu_groups[0])

    def take(self, gpu_count: int) -> Slot:
        slot = self.peek(gpu_count)
        self.free_gpus = [g for g in self.free_gpus if g not in slot.gpus]
        if slot.cpus is not None and self.free_cpu_groups is not None:
            self.free_cpu_groups.remove(slot.cpus)
        self.held.append(slot)
        return slot

    def give_back(self, slot: Slot) -> None:
        self.held.remove(slot)
        self.free_gpus = sorted(self.free_gpus + list(slot.gpus), key=self._order.__getitem__)
        if slot.cpus is not None and self.free_cpu_groups is not None:
            self.free_cpu_groups = sorted([*self.free_cpu_groups, slot.cpus])


def cpu_groups_for(
    cpu_ids: list[int] | None, host_cpus: list[int], max_parallel: int, cpu_runs: bool
) -> list[tuple[int, ...]] | None:
    """The CPU groups of a study's slots: None (no pinning) when one run at a time and no
    `cpu_ids` were given; a UserError when the pool cannot give every slot a CPU of its own."""
    if not cpu_runs or (cpu_ids is None and max_parallel == 1):
        return None
    pool = sorted(cpu_ids) if cpu_ids is not None else host_cpus
    unknown = sorted(set(pool) - set(host_cpus))
    if unknown:
        raise UserError(
            f"execution.cpu_ids names CPUs this host does not have: {unknown}",
            hint=f"the host's CPUs are {_ranges(host_cpus)}",
        )
    if len(pool) < max_parallel:
        raise UserError(
            f"execution.max_parallel is {max_parallel} but the CPU pool has {len(pool)} CPUs: "
            "runs with gpu_count 0 each need CPUs of their own",
            hint=f"lower max_parallel to at most {len(pool)}, or list more CPUs in cpu_ids",
        )
    return split_cpus(pool, max_parallel)


def _ranges(cpus: list[int]) -> str:
    return ",".join(map(str, cpus)) if len(cpus) < 8 else f"{cpus[0]}..{cpus[-1]}"
