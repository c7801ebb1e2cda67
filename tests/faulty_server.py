"""A real OpenAI-compatible HTTP server on loopback that fails on purpose, for fault injection.

Theory of operation
-------------------
:class:`FaultyServer` runs ``asyncio.start_server`` on ``127.0.0.1`` (a free port) in a
thread of its own, so a test's event loop and the server's never wait on each other.
It answers ``POST /v1/chat/completions`` (streamed as server-sent events in a chunked
body when the request says ``"stream": true``, else one JSON body with its
Content-Length) and ``GET /v1/models``.  Every connection carries one request and is
closed after the answer.

Each chat request draws its fate from one :class:`random.Random` seeded with ``seed``,
one draw per request in the order requests arrive (so a run is reproducible as far as
the arrival order is): with the probabilities of :class:`Faults`,

``error_500``   HTTP 500 with an OpenAI-style error body;
``rate_limit``  HTTP 429 with ``Retry-After: retry_after_s``;
``slow``        a normal answer, but only after ``slow_s`` (past the client's timeout);
``truncated``   valid headers and framing, but the JSON is cut off half-way (the SSE
                stream's last event, or the body, whose Content-Length matches the cut);
``drop``        the connection is closed before any answer, or (every other time)
                half-way through the body, which the framing then leaves incomplete;

otherwise a normal completion whose text is ``echo: `` and the start of the prompt.
``outcomes`` lists the fate of each request in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

__all__ = ["FAULTS", "Faults", "FaultyServer"]

#: The kinds of fault, in the order the draw assigns probability to them.
FAULTS = ("error_500", "rate_limit", "slow", "truncated", "drop")


@dataclass(frozen=True, slots=True)
class Faults:
    """Probability of each fault per request (their sum at most 1), and their timings."""

    error_500: float = 0.0
    rate_limit: float = 0.0
    slow: float = 0.0
    truncated: float = 0.0
    drop: float = 0.0
    retry_after_s: float = 0.05
    slow_s: float = 2.0

    def __post_init__(self) -> None:
        if sum(getattr(self, f) for f in FAULTS) > 1.0:
            raise ValueError("fault probabilities must not sum to more than 1")

    def pick(self, roll: float) -> str:
        edge = 0.0
        for fault in FAULTS:
            edge += getattr(self, fault)
            if roll < edge:
                return fault
        return "ok"


class FaultyServer:
    """``with FaultyServer(Faults(...), seed=1) as server:`` then use ``server.base_url``."""

    def __init__(self, faults: Faults | None = None, *, seed: int = 0) -> None:
        self.faults = faults if faults is not None else Faults()
        self.outcomes: list[str] = []
        self.base_url = ""
        self._rng = random.Random(seed)
        self._drops = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faulty-server", daemon=True)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.outcomes)

    def __enter__(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._server = future.result(timeout=10)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):  # answers still sleeping out a slow reply
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    # ------------------------------------------------------------ one connection
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            method, path = request_line.split(" ")[:2]
            headers = {}
            for line in header_lines:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            if method == "GET" and path.endswith("/models"):
                await self._send(writer, 200, _json({"object": "list", "data": [{"id": "faulty"}]}))
            elif method == "POST" and path.endswith("/chat/completions"):
                await self._chat(writer, json.loads(body))
            else:
                await self._send(writer, 404, _json({"error": {"message": f"no route {method} {path}"}}))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away (it timed out, or was cancelled)
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _chat(self, writer: asyncio.StreamWriter, request: dict[str, Any]) -> None:
        fate = self.faults.pick(self._rng.random())
        self.outcomes.append(fate)
        if fate == "error_500":
            await self._send(writer, 500, _json({"error": {"message": "injected internal error"}}))
            return
        if fate == "rate_limit":
            body = _json({"error": {"message": "injected rate limit"}})
            await self._send(writer, 429, body, {"Retry-After": f"{self.faults.retry_after_s:g}"})
            return
        if fate == "drop":
            self._drops += 1
            if self._drops % 2:
                return  # closed before any answer
        if fate == "slow":
            await asyncio.sleep(self.faults.slow_s)
        prompt = str(request["messages"][-1]["content"])
        text = "echo: " + " ".join(prompt.split()[:8])
        if request.get("stream"):
            await self._stream(writer, text, fate)
        else:
            body = _json(_completion(text))
            if fate == "truncated":
                body = body[: len(body) // 2]
            if fate == "drop":  # promise the whole body, send half of it
                await self._send(writer, 200, body[: len(body) // 2], length=len(body))
                return
            await self._send(writer, 200, body)

    async def _stream(self, writer: asyncio.StreamWriter, text: str, fate: str) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
        writer.write((head + "Connection: close\r\n\r\n").encode("latin-1"))
        words = text.split(" ")
        events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        events += [{"choices": [{"index": 0, "delta": {"content": w + " "}}]} for w in words]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append({"choices": [], "usage": _usage(text)})
        lines = [b"data: " + _json(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
        if fate == "truncated":  # the first content event's JSON is cut; the stream then ends
            lines = [lines[0], lines[1][: len(lines[1]) // 2] + b"\n\n"]
        if fate == "drop":  # half the events, and no end of the chunked body
            for line in lines[: len(lines) // 2]:
                writer.write(_chunk(line))
            await writer.drain()
            return
        for line in lines:
            writer.write(_chunk(line))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        length: int | None = None,
    ) -> None:
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}[status]
        lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body) if length is None else length}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _usage(text: str) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10 + len(text.split())}


def _completion(text: str) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "model": "faulty",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": _usage(text),
    }
