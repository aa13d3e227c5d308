"""What a serving run sends: each request's prompt, endpoint body, output length and arrival.

Arrivals come from the arrival process (`arrivals.py`) or a trace; with sessions the process
gives each session's first turn, and a later turn is sent `think_time_s` after the previous
answer ended, carrying the conversation so far. Output lengths are fixed (max_new_tokens), the
source's own per-request lengths (capped at max_new_tokens), or seeded draws per prompt.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.prompt_lengths import draw_lengths
from llenergymeasure.contract.serving import ServingConfig
from llenergymeasure.experiment.prompts import PromptSet
from llenergymeasure.experiment.serving.arrivals import planned_count, send_times
from llenergymeasure.experiment.serving.records import RequestRecord
from llenergymeasure.experiment.serving.servers import SERVED_MODEL

Message = dict[str, str]
TURN_MARKERS_TOKENS = 16  # a chat template's role markers around one carried answer
PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


class Workload:
    """The requests of one serving run, built from the config and the tokenised prompt set."""

    def __init__(
        self,
        config: ExperimentConfig,
        prompts: PromptSet,
        decode: Callable[[list[int]], str],
        encode_chat: Callable[[list[Message]], list[int]],
    ) -> None:
        assert config.serving is not None
        self.config, self.prompts = config, prompts
        self.serving: ServingConfig = config.serving
        self.chat = self.serving.endpoint == "chat"
        self.path = PATHS[self.serving.endpoint]
        n = len(prompts.ids)
        # chat: each prompt's user turn(s), and its length with the chat template
        self.user_turns: list[list[Message]] = (
            [
                prompts.messages[k]
                or [{"role": "user", "content": prompts.texts[k] or decode(prompts.ids[k])}]
                for k in range(n)
            ]
            if self.chat
            else []
        )
        self.prompt_tokens = (
            [len(encode_chat(turn)) for turn in self.user_turns]
            if self.chat
            else [len(ids) for ids in prompts.ids]
        )
        self.max_tokens = self._output_lengths(n)

    def at(self, serving: ServingConfig) -> Workload:
        """The same prompts, bodies and output lengths under one stage's settings."""
        staged = copy.copy(self)
        staged.serving = serving
        return staged

    def _output_lengths(self, n: int) -> list[int]:
        wanted = self.serving.output_length
        cap = self.config.max_new_tokens
        if wanted == "from_dataset":
            return [min(cap, t or cap) for t in self.prompts.output_tokens]
        if wanted is None or wanted == "fixed":
            return [cap] * n
        return draw_lengths(wanted, n, random.Random(self.serving.seed + 2), cap)

    # arrivals ---------------------------------------------------------------------------------
    def records(self) -> list[RequestRecord]:
        """Every request, in index order; a later turn's arrival is set when it is sent."""
        serving = self.serving
        if self.prompts.arrivals_s is not None:
            starts = self._trace_times(self.prompts.arrivals_s)
        elif serving.sessions is not None and serving.n_requests is not None:
            starts = send_times(serving, math.ceil(serving.n_requests / serving.sessions.turns))
        else:
            starts = send_times(serving, planned_count(serving))
        turns = serving.sessions.turns if serving.sessions is not None else 1
        records = []
        for s, start in enumerate(starts):
            for t in range(turns):
                index = s * turns + t
                prompt = index % len(self.prompts.ids)
                records.append(
                    RequestRecord(
                        index=index,
                        scheduled_s=start,  # a later turn's is set when its predecessor ends
                        warmup=index < serving.warmup_requests or start < serving.warmup_s,
                        input_tokens=self.prompt_tokens[prompt],
                        prompt=prompt,
                        max_tokens=self.max_tokens[prompt],
                        session=s if serving.sessions is not None else None,
                        turn=t,
                    )
                )
        return records

    def _trace_times(self, arrivals: list[float]) -> list[float]:
        serving = self.serving
        times = arrivals[: serving.n_requests] if serving.n_requests else arrivals
        if serving.duration_s is not None:
            times = [t for t in times if t < serving.duration_s]
        return times

    def chains(self, records: list[RequestRecord]) -> list[list[RequestRecord]]:
        """The records as sent in sequence: each session's turns, or each request alone."""
        turns = self.serving.sessions.turns if self.serving.sessions is not None else 1
        return [records[k : k + turns] for k in range(0, len(records), turns)]

    @property
    def think_time_s(self) -> float:
        return self.serving.sessions.think_time_s if self.serving.sessions is not None else 0.0

    # bodies -----------------------------------------------------------------------------------
    def body(self, record: RequestRecord, history: list[Message]) -> dict[str, Any]:
        """One streamed request: token ids to /v1/completions, or the conversation so far and
        this turn to /v1/chat/completions; EOS ignored when the output length is fixed."""
        decoding = self.config.decoding
        body: dict[str, Any] = {
            "model": SERVED_MODEL,
            "max_tokens": record.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
        }
        if self.chat:
            body["messages"] = [*history, *self.user_turns[record.prompt]]
        else:
            body["prompt"] = self.prompts.ids[record.prompt]
        if not decoding.greedy:  # a seed makes vLLM sample with a generator of the request's own
            body["seed"] = decoding.seed
        if decoding.top_k:
            body["top_k"] = decoding.top_k
        if decoding.repetition_penalty != 1.0:
            body["repetition_penalty"] = decoding.repetition_penalty
        if self.config.fixed_output_length:
            body["ignore_eos"] = True
            body["min_tokens"] = record.max_tokens
        return body

    def turn_messages(self, record: RequestRecord, answer: str) -> list[Message]:
        """What a turn adds to its session's conversation: its user turn and the answer
        (nothing for completions, which carry no conversation)."""
        if not self.chat:
            return []
        return [*self.user_turns[record.prompt], {"role": "assistant", "content": answer}]

    def probe(self) -> tuple[str, dict[str, Any]]:
        """The readiness probe: the first prompt, one token, not streamed, on this endpoint."""
        record = RequestRecord(index=0, scheduled_s=0.0, warmup=True, input_tokens=0, max_tokens=1)
        body = self.body(record, [])
        body.update(stream=False, max_tokens=1, temperature=0.0, top_p=1.0)
        for sampling in ("stream_options", "ignore_eos", "min_tokens", "seed", "top_k"):
            body.pop(sampling, None)
        return self.path, body

    def longest_tokens(self, records: list[RequestRecord]) -> int:
        """The longest prompt a request sends, in tokens: a session's later turn carries every
        earlier turn and an answer of up to its max_tokens each."""
        longest = 0
        for chain in self.chains(records):
            carried = 0
            for record in chain:
                longest = max(longest, carried + record.input_tokens)
                # an answer's text, tokenised again inside the conversation, can take more
                # tokens than were generated: room for twice as many, and the turn's markers
                carried += record.input_tokens + 2 * record.max_tokens + TURN_MARKERS_TOKENS
        return longest
