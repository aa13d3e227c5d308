"""The open-loop load generator: requests go out at their arrival times, never waiting on
completions (only on the concurrency cap when one is set, and a session's later turn on its
previous answer), each streamed back so that its first token and every later chunk carry a
client timestamp. A stage may be stopped early: a check called every few seconds on the loop
names why, the sending stops, and the requests in flight are cancelled (the server aborts them
when their connection closes).

aiohttp (a dependency of vLLM's server, so in its image) on one event loop: one task per
request or session, no connection limit of the client's own (the cap is the experiment's).
Times are `time.perf_counter()` minus the start of sending, the clock of the energy samples
too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from llenergymeasure.experiment.serving.records import RequestRecord
from llenergymeasure.experiment.serving.workload import Message, Workload

ERROR_CHARS = 300
StopCheck = Callable[[float], "str | None"]


class LoadGenerator:
    def __init__(
        self,
        url: str,
        workload: Workload,
        records: list[RequestRecord],
        server_alive: Callable[[], bool],
        stop_check: StopCheck | None = None,
        check_every_s: float = 1.0,
    ) -> None:
        """`stop_check(now)`: why to stop the load early, or None; called every
        `check_every_s`."""
        self.url, self.workload, self.records = url, workload, records
        self.server_alive = server_alive
        self.stop_check, self.check_every_s = stop_check, check_every_s
        self.stopped: str | None = None  # why the load was stopped early
        self.t0 = 0.0
        import aiohttp  # here, not after the clock starts: its import would delay the first sends

        self.aiohttp = aiohttp

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def run(self, t0: float) -> None:
        """Send every record at its time; returns when every request has ended."""
        self.t0 = t0
        asyncio.run(self._run())

    async def _run(self) -> None:
        aiohttp = self.aiohttp
        cap = self.workload.serving.max_concurrency
        gate = asyncio.Semaphore(cap) if cap else None
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        tasks: list[asyncio.Task[None]] = []
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            sender = asyncio.create_task(self._send(session, gate, tasks))
            watcher = asyncio.create_task(self._watch(sender, tasks)) if self.stop_check else None
            await asyncio.gather(sender, return_exceptions=True)
            while tasks:  # a stop cancels them; every one has ended before the session closes
                await asyncio.gather(*tasks, return_exceptions=True)
                if all(task.done() for task in tasks):
                    break
            if watcher is not None:
                watcher.cancel()
        if self.stopped is not None:
            for record in self.records:
                if record.end_s is None and record.error is None:
                    sent = record.sent_s is not None
                    what = "cancelled" if sent else "not sent"
                    record.error = f"{what}: the stage was stopped early"

    async def _send(self, session: Any, gate: Any, tasks: list[asyncio.Task[None]]) -> None:
        chains = self.workload.chains(self.records)
        for k, chain in enumerate(chains):
            delay = chain[0].scheduled_s - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.server_alive():  # the rest is never sent
                for unsent in chains[k:]:
                    for record in unsent:
                        record.error = "the server had exited before this request's arrival"
                return
            tasks.append(asyncio.create_task(self._chain(session, chain, gate)))

    async def _watch(self, sender: asyncio.Task[None], tasks: list[asyncio.Task[None]]) -> None:
        assert self.stop_check is not None
        while True:
            await asyncio.sleep(self.check_every_s)
            reason = self.stop_check(self.now())
            if reason is not None:
                self.stopped = reason
                sender.cancel()
                for task in tasks:
                    task.cancel()
                return

    async def _chain(self, session: Any, chain: list[RequestRecord], gate: Any) -> None:
        """A session's turns in order (or one request): each later turn after the previous
        answer and the think time, with the conversation so far."""
        history: list[Message] = []
        for turn, record in enumerate(chain):
            if turn:
                before = chain[turn - 1]
                if not before.ok or before.end_s is None:
                    record.error = "an earlier turn of its session failed"
                    continue
                record.scheduled_s = before.end_s + self.workload.think_time_s
                delay = record.scheduled_s - self.now()
                if delay > 0:
                    await asyncio.sleep(delay)
            answer = await self._request(session, record, gate, history)
            history = [*history, *self.workload.turn_messages(record, answer)]

    async def _request(
        self, session: Any, record: RequestRecord, gate: Any, history: list[Message]
    ) -> str:
        if gate is not None:
            await gate.acquire()
            record.released_s = self.now()  # the cap's wait is not the generator's lag
        try:
            return await self._stream(session, record, history)
        except Exception as error:  # connection refused or reset: the server went away
            record.error = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
            return ""
        finally:
            if gate is not None:
                gate.release()

    async def _stream(self, session: Any, record: RequestRecord, history: list[Message]) -> str:
        """Send one request and read its stream; returns the answer's text."""
        body = self.workload.body(record, history)
        chat = self.workload.chat
        record.sent_s = self.now()
        pieces: list[str] = []
        async with session.post(f"{self.url}{self.workload.path}", json=body) as response:
            if response.status != 200:
                text = (await response.text())[:ERROR_CHARS]
                record.error = f"HTTP {response.status}: {text}"
                return ""
            usage = None
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    break
                chunk = json.loads(payload)
                choices = chunk.get("choices")
                if choices:
                    piece = _piece(choices[0], chat)
                    if piece is not None:
                        record.token_times_s.append(self.now())
                        pieces.append(piece)
                if chunk.get("usage"):
                    usage = chunk["usage"]
            record.end_s = self.now()
            record.output_tokens = int(
                (usage or {}).get("completion_tokens") or len(record.token_times_s)
            )
            if usage and usage.get("prompt_tokens"):
                record.input_tokens = int(usage["prompt_tokens"])  # the server's own count
            if not record.token_times_s:
                record.error = "the stream ended without a token"
        return "".join(pieces)


def _piece(choice: dict[str, Any], chat: bool) -> str | None:
    """A streamed chunk's text, or None for a chunk that carries no token (chat's opening
    chunk names the role with empty content)."""
    if not chat:
        return str(choice.get("text") or "")
    delta = choice.get("delta") or {}
    content = delta.get("content")
    if content is None or (content == "" and "role" in delta):
        return None
    return str(content)
