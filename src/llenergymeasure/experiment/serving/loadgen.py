"""The open-loop load generator: requests go out at their arrival times, never waiting on
completions (only on the concurrency cap when one is set), each streamed back so that its
first token and every later chunk carry a client timestamp.

aiohttp (a dependency of vLLM's server, so in its image) on one event loop: one task per
request, no connection limit of the client's own (the cap is the experiment's). Times are
`time.perf_counter()` minus the start of sending, the clock of the energy samples too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.experiment.serving.records import RequestRecord
from llenergymeasure.experiment.serving.servers import SERVED_MODEL


def completion_body(config: ExperimentConfig, prompt: list[int]) -> dict[str, Any]:
    """One streamed /v1/completions request: the prompt as token ids (no re-tokenisation),
    exactly max_new_tokens out when the output length is fixed (EOS ignored)."""
    decoding = config.decoding
    body: dict[str, Any] = {
        "model": SERVED_MODEL,
        "prompt": prompt,
        "max_tokens": config.max_new_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": decoding.temperature,
        "top_p": decoding.top_p,
    }
    if not decoding.greedy:  # a seed makes vLLM sample with a generator of the request's own
        body["seed"] = decoding.seed
    if decoding.top_k:
        body["top_k"] = decoding.top_k
    if decoding.repetition_penalty != 1.0:
        body["repetition_penalty"] = decoding.repetition_penalty
    if config.fixed_output_length:
        body["ignore_eos"] = True
        body["min_tokens"] = config.max_new_tokens
    return body


class LoadGenerator:
    def __init__(
        self,
        url: str,
        config: ExperimentConfig,
        records: list[RequestRecord],
        prompts: list[list[int]],
        server_alive: Callable[[], bool],
    ) -> None:
        assert config.serving is not None
        self.url, self.config, self.records, self.prompts = url, config, records, prompts
        self.serving = config.serving
        self.server_alive = server_alive
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
        cap = self.serving.max_concurrency
        gate = asyncio.Semaphore(cap) if cap else None
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = []
            for k, record in enumerate(self.records):
                delay = record.scheduled_s - self.now()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not self.server_alive():  # the rest is never sent
                    for unsent in self.records[k:]:
                        unsent.error = "the server had exited before this request's arrival"
                    break
                tasks.append(asyncio.create_task(self._request(session, record, gate)))
            await asyncio.gather(*tasks)

    async def _request(self, session: Any, record: RequestRecord, gate: Any) -> None:
        if gate is not None:
            await gate.acquire()
            record.released_s = self.now()  # the cap's wait is not the generator's lag
        try:
            await self._stream(session, record)
        except Exception as error:  # connection refused or reset: the server went away
            record.error = f"{type(error).__name__}: {error}"[:300]
        finally:
            if gate is not None:
                gate.release()

    async def _stream(self, session: Any, record: RequestRecord) -> None:
        body = completion_body(self.config, self.prompts[record.index % len(self.prompts)])
        record.sent_s = self.now()
        async with session.post(f"{self.url}/v1/completions", json=body) as response:
            if response.status != 200:
                text = (await response.text())[:300]
                record.error = f"HTTP {response.status}: {text}"
                return
            usage_tokens = None
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    break
                chunk = json.loads(payload)
                if chunk.get("choices"):
                    record.token_times_s.append(self.now())
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
            record.end_s = self.now()
            record.output_tokens = int(usage_tokens or len(record.token_times_s))
            if not record.token_times_s:
                record.error = "the stream ended without a token"
