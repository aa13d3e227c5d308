"""Slots: disjoint GPUs and CPU groups, never double-booked, every run eventually placed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.slots import Slot, SlotPool, cpu_groups_for, split_cpus


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    pool_size=st.integers(1, 8),
    max_parallel=st.integers(1, 8),
)
def test_no_gpu_is_ever_in_two_running_runs_and_every_run_is_scheduled(
    data: st.DataObject, pool_size: int, max_parallel: int
) -> None:
    gpu_ids = data.draw(st.permutations(list(range(8))))[:pool_size]
    counts = data.draw(st.lists(st.integers(1, pool_size), min_size=1, max_size=30))
    pool = SlotPool(gpu_ids, max_parallel, None)
    queue = list(enumerate(counts))
    running: dict[int, Slot] = {}
    started: list[int] = []
    while queue or running:
        # the scheduler's rule: start the head, in planned order, while it fits
        while queue and pool.fits(queue[0][1]):
            index, count = queue.pop(0)
            slot = pool.take(count)
            assert len(slot.gpus) == count and set(slot.gpus) <= set(gpu_ids)
            busy = [g for held in running.values() for g in held.gpus]
            assert not set(slot.gpus) & set(busy), "a GPU in two running runs"
            running[index] = slot
            started.append(index)
        assert running, "nothing runs although runs wait: a deadlock"
        assert len(running) <= max_parallel
        finished = data.draw(st.sampled_from(sorted(running)))
        pool.give_back(running.pop(finished))
    assert started == list(range(len(counts)))  # all scheduled, in the planned order
    assert sorted(pool.free_gpus) == sorted(gpu_ids) and not pool.held


def test_one_run_at_a_time_takes_the_first_gpus_of_the_pool_as_listed() -> None:
    pool = SlotPool([3, 1, 2], 1, None)
    slot = pool.take(2)
    assert slot.gpus == (3, 1) and not pool.fits(1)
    pool.give_back(slot)
    assert pool.free_gpus == [3, 1, 2]


def test_cpu_runs_get_disjoint_contiguous_cpu_groups() -> None:
    assert split_cpus(list(range(8)), 3) == [(0, 1, 2), (3, 4, 5), (6, 7)]
    groups = cpu_groups_for(None, list(range(4)), 2, cpu_runs=True)
    pool = SlotPool([0], 2, groups)
    first, second = pool.take(0), pool.take(0)
    assert (first.cpuset, second.cpuset) == ("0,1", "2,3")
    assert not pool.fits(0)
    pool.give_back(first)
    assert pool.take(0).cpus == (0, 1)


def test_one_cpu_run_at_a_time_is_not_pinned_unless_cpus_are_named() -> None:
    assert cpu_groups_for(None, [0, 1], 1, cpu_runs=True) is None
    assert cpu_groups_for([1], [0, 1], 1, cpu_runs=True) == [(1,)]
    assert cpu_groups_for(None, [0, 1], 4, cpu_runs=False) is None  # no CPU runs: no pool
    slot = SlotPool([0], 1, None).take(0)
    assert slot.cpus is None and slot.cpuset is None and slot.resources == ("cpus",)


def test_a_cpu_pool_too_small_for_the_slots_is_a_user_error() -> None:
    with pytest.raises(UserError) as caught:
        cpu_groups_for(None, [0, 1], 4, cpu_runs=True)
    assert "max_parallel is 4 but the CPU pool has 2 CPUs" in caught.value.message
    with pytest.raises(UserError, match="does not have"):
        cpu_groups_for([0, 9], [0, 1], 2, cpu_runs=True)


def test_a_slots_gaps_belong_to_its_resources() -> None:
    assert Slot(gpus=(0, 2)).resources == ("gpu0", "gpu2")
    assert Slot(cpus=(2, 3)).resources == ("cpus2,3",)


def test_an_unbounded_pool_fits_every_run_without_resources():
    pool = SlotPool.unbounded()
    slots = [pool.take(gpus) for gpus in (0, 4, 8, 0)]
    assert all(slot == Slot() for slot in slots) and pool.fits(1000)
    for slot in slots:
        pool.give_back(slot)
