"""A minimal streaming OpenAI-compatible server for measuring the load generator itself (and for
the generator's tests): no model, one whitespace-separated word per token, a fixed sleep between
streamed tokens.

    python benchmarks/openai_standin.py --port P [--gap-ms 1] [--log calls.jsonl]

/health answers 200. /v1/completions and /v1/chat/completions stream `max_tokens` chunks (or
`--eos-after` of them when the request does not ask to ignore EOS), then a usage chunk and
[DONE], as vLLM's server does with `stream_options.include_usage`. With --log every request body
is appended to the file, one JSON line each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web


def _prompt_tokens(body: dict[str, Any]) -> int:
    if "messages" in body:
        return sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    prompt = body.get("prompt", [])
    return len(prompt) if isinstance(prompt, list) else len(str(prompt).split())


class StandIn:
    def __init__(self, gap_s: float, eos_after: int, log: Path | None) -> None:
        self.gap_s, self.eos_after = gap_s, eos_after
        self.log = log.open("a", encoding="utf-8") if log is not None else None

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if self.log is not None:
            self.log.write(json.dumps(body) + "\n")
            self.log.flush()
        chat = request.path.endswith("/chat/completions")
        n = int(body.get("max_tokens", 16))
        if not body.get("ignore_eos"):
            n = min(n, self.eos_after)
        if not body.get("stream"):
            choice = {"message": {"content": "x"}} if chat else {"text": "x"}
            return web.json_response(
                {"choices": [choice], "usage": {"completion_tokens": 1}},
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for k in range(n):
            if k:
                await asyncio.sleep(self.gap_s)
            choice = {"index": 0, "delta": {"content": " w"}} if chat else {"text": " w"}
            await response.write(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
        usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": n}
        await response.write(
            b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
        )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gap-ms", type=float, default=1.0, help="sleep between tokens, ms")
    parser.add_argument("--eos-after", type=int, default=8, help="tokens when EOS is honoured")
    parser.add_argument("--log", type=Path, help="append each request body here")
    args = parser.parse_args()
    standin = StandIn(args.gap_ms / 1000.0, args.eos_after, args.log)
    app = web.Application()
    app.router.add_get("/health", standin.health)
    app.router.add_post("/v1/completions", standin.complete)
    app.router.add_post("/v1/chat/completions", standin.complete)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
