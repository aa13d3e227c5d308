"""The gate before a run starts: each resource's gap after its own previous run (the cycle gap
where the cycle changes), the GPUs' cool-down, and a gate that never waits."""

from __future__ import annotations

from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.machine.gate import Gate
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.orchestrator.machine.stop import StopState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _gate(temps: dict[int, float] | None = None, **execution: object) -> tuple[Gate, Clock]:
    clock = Clock()
    probes = HostProbes(temperatures=lambda gpus: dict(temps or dict.fromkeys(gpus, 30.0)))
    settings = ExecutionConfig.model_validate(
        {"gap_between_experiments_s": 10, "gap_between_cycles_s": 60, **execution}
    )
    return Gate(settings, probes, Display(), clock=clock), clock


def test_each_resource_waits_its_own_gap_and_the_cycle_gap_between_cycles():
    gate, clock = _gate()
    assert gate.ready("r0", 0, ("gpu0",), (0,))  # nothing ran on it yet
    gate.give_back(("gpu0",), cycle=0)
    assert gate.ready("r1", 0, ("gpu1",), (1,))  # another GPU: no gap
    assert not gate.ready("r2", 0, ("gpu0",), (0,))
    assert gate.gap_left(0, ("gpu0",)) == (10.0, "between experiments")
    assert gate.gap_left(1, ("gpu0",)) == (60.0, "between cycles")
    clock.now += 10
    assert gate.ready("r2", 0, ("gpu0",), (0,))


def test_a_hot_gpu_holds_the_run_until_it_cools():
    temps = {0: 80.0}
    gate, _ = _gate(temps, cooldown_to_temp_c=40)
    assert not gate.ready("r0", 0, ("gpu0",), (0,))
    temps[0] = 35.0
    gate.waiting.next_cooldown_check = 0.0  # type: ignore[union-attr]  # skip the poll interval
    assert gate.ready("r0", 0, ("gpu0",), (0,))
    assert gate.waiting is None


def test_without_gaps_and_without_settings_the_gate_never_waits():
    gate, _ = _gate(cooldown_to_temp_c=40)
    gate.execution = gate.execution.without_gaps()  # type: ignore[union-attr]
    gate.give_back(("gpu0",), cycle=0)
    assert gate.ready("r1", 1, ("gpu0",), (0,))
    open_gate = Gate(None, HostProbes(), Display())
    open_gate.give_back(("cpus",), cycle=0)
    assert open_gate.ready("r", 0, ("cpus",), ())


def test_a_node_waits_the_gap_after_its_last_run_then_starts():
    gate, clock = _gate()
    gate.give_back(("node",), cycle=0, at=clock.now - 4)
    stop = StopState()
    slept: list[float] = []

    def sleep(seconds: float) -> bool:
        slept.append(seconds)
        clock.now += seconds
        return False

    stop.sleep = sleep  # type: ignore[method-assign]
    gate.wait("r", 0, ("node",), (), stop)
    assert slept == [6.0]
