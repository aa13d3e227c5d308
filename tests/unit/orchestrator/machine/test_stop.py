"""Which signals stop llem, and how often each counts (real signals to this process)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from llenergymeasure.orchestrator.machine.stop import STOP_SIGNALS, StopState, handle_signals


def _send(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)  # handled before os.kill returns, in this (the main) thread


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_each_stop_signal_requests_a_stop_and_a_second_one_an_immediate_one(sig):
    with handle_signals(StopState()) as stop:
        _send(sig)
        assert stop.requested and not stop.immediate
        _send(signal.SIGTERM)
        assert stop.immediate


def test_a_hangup_counts_once_however_often_it_arrives():
    # A closed terminal: the shell passes its SIGHUP on and the kernel sends another.
    with handle_signals(StopState()) as stop:
        _send(signal.SIGHUP)
        _send(signal.SIGHUP)
        assert stop.count == 1 and not stop.immediate
        _send(signal.SIGINT)
        assert stop.immediate


def test_a_hangup_ignored_at_start_stays_ignored():
    # `nohup llem run ...`: the study is meant to outlive its terminal.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with handle_signals(StopState()) as stop:
            _send(signal.SIGHUP)
            assert not stop.requested
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_previous_handlers_are_back_afterwards():
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    with handle_signals(StopState()):
        assert all(signal.getsignal(sig) != before[sig] for sig in STOP_SIGNALS)
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before


def test_outside_the_main_thread_nothing_is_installed():
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    seen = {}

    def worker() -> None:
        with handle_signals(StopState()):
            seen.update({sig: signal.getsignal(sig) for sig in STOP_SIGNALS})

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == before
