"""OpenAIBackend against real servers on loopback.

Healthy answers come from the real ``llama_cpp.server`` (the session fixture, serving the
bundled SmolLM2).  The failures a healthy server will not produce on demand (429 with
Retry-After, 500, 400, an answer that comes too late, a malformed or truncated body) come
from :class:`ScriptedServer`, a tiny real HTTP/1.1 server on ``asyncio.start_server``
that answers each request with the next :class:`Reply` of its script.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from paragents.agents import Agent
from paragents.backends.base import Request
from paragents.backends.openai import OpenAIBackend
from paragents.core.errors import BackendError, BackendTimeout, BackendUnavailable, RateLimited
from paragents.core.graph import Task, TaskGraph
from paragents.runtime.driver import arun

SCHEMA = {
    "type": "object",
    "properties": {"capital": {"type": "string", "maxLength": 20}, "confident": {"type": "boolean"}},
    "required": ["capital", "confident"],
    "additionalProperties": False,
}
QUESTION = Request(prompt="What is the capital of France?", system="Answer briefly.", max_tokens=16)


# ----------------------------------------------------------- scripted server
@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer, sent after ``delay_s``.  The body goes out with its
    Content-Length, or, with ``close_delimited``, without one: the body then ends where the
    server closes the connection (as a streamed answer does)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    close_delimited: bool = False


class ScriptedServer:
    """``async with ScriptedServer([Reply(...), ...]) as server:``, then call ``server.base_url``.

    The n-th request gets the n-th reply (the last one repeats); each connection closes
    after its reply.  ``arrivals`` holds each request's arrival time (``time.perf_counter``)
    and ``bodies`` its decoded JSON body.
    """

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.arrivals: list[float] = []
        self.bodies: list[Any] = []
        self.base_url = ""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):  # a reply still sleeping out its delay
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            headers = {}
            for line in head.split("\r\n")[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            self.arrivals.append(time.perf_counter())
            self.bodies.append(json.loads(await reader.readexactly(length)))
            reply = self.replies[min(len(self.arrivals), len(self.replies)) - 1]
            await asyncio.sleep(reply.delay_s)
            lines = [f"HTTP/1.1 {reply.status} Scripted", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in reply.headers.items()]
            if not reply.close_delimited:
                lines.append(f"Content-Length: {len(reply.body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


def chat_reply(text: str, *, prompt_tokens: int = 7, completion_tokens: int = 3) -> Reply:
    """A healthy non-streamed ``/chat/completions`` answer."""
    body = {
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }
    return Reply(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def sse_reply(pieces: Sequence[str], *, complete: bool = True) -> Reply:
    """A streamed answer, one chunk per piece; ``complete`` adds the finishing chunk and ``[DONE]``."""
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    if complete:
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ("data: [DONE]\n\n" if complete else "")
    return Reply(body=events.encode(), headers={"Content-Type": "text/event-stream"}, close_delimited=True)


def error_reply(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps({"error": {"message": message, "type": "scripted"}}).encode()
    return Reply(status=status, body=body, headers={"Content-Type": "application/json", **(headers or {})})


# ------------------------------------------------------- real llama.cpp server
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_completion_from_llama_server_reports_usage_and_latency(llama_server: Any, stream: bool) -> None:
    backend = OpenAIBackend(base_url=llama_server.base_url, stream=stream)
    try:
        c = await backend.complete(QUESTION)
    finally:
        await backend.aclose()
    assert c.text.strip()
    assert c.prompt_tokens > 0
    assert 0 < c.completion_tokens <= QUESTION.max_tokens
    assert 0 < c.ttft_s <= c.total_s
    assert c.compute_s + c.transfer_s == pytest.approx(c.total_s)
    assert 0 <= c.transfer_s < c.compute_s  # loopback: the model's time dominates
    if stream:
        assert c.ttft_s < c.total_s  # the first token came before the last
    else:
        assert c.ttft_s == c.total_s


async def test_streamed_pieces_from_llama_server_add_up_to_the_answer(llama_server: Any) -> None:
    pieces: list[str] = []
    backend = OpenAIBackend(base_url=llama_server.base_url)
    try:
        c = await backend.complete(Request(prompt="Name three colours.", max_tokens=16, on_text=pieces.append))
    finally:
        await backend.aclose()
    assert len(pieces) > 1 and "".join(pieces) == c.text


async def test_structured_output_from_llama_server_parses_as_the_schema(llama_server: Any) -> None:
    backend = OpenAIBackend(base_url=llama_server.base_url)  # structured="auto"
    request = Request(
        prompt="What is the capital of France? Answer in JSON.", max_tokens=48, json_schema=SCHEMA
    )
    try:
        c = await backend.complete(request)
    finally:
        await backend.aclose()
    answer = json.loads(c.text)
    assert set(answer) == {"capital", "confident"}
    assert isinstance(answer["capital"], str) and isinstance(answer["confident"], bool)
    # llama-cpp-python's server refuses the json_schema form; the backend fell back for good.
    assert backend.structured == "json_object"


# ------------------------------------------------------------------ failures
async def test_dead_endpoint_is_unavailable_and_the_message_names_it(dead_url: str) -> None:
    backend = OpenAIBackend(base_url=dead_url)
    with pytest.raises(BackendUnavailable) as caught:
        await backend.complete(QUESTION)
    await backend.aclose()
    assert str(caught.value) == f"{dead_url}: cannot connect: connection refused"
    assert caught.value.retryable


@pytest.mark.parametrize("header", ["2", "http-date"])
async def test_429_is_rate_limited_with_the_servers_retry_after(header: str) -> None:
    value = "2" if header == "2" else email.utils.formatdate(time.time() + 2, usegmt=True)
    async with ScriptedServer([error_reply(429, "slow down", {"Retry-After": value})]) as server:
        backend = OpenAIBackend(base_url=server.base_url)
        with pytest.raises(RateLimited) as caught:
            await backend.complete(QUESTION)
        await backend.aclose()
    assert caught.value.retry_after is not None
    assert 0.5 <= caught.value.retry_after <= 2.0
    assert "slow down" in str(caught.value) and server.base_url in str(caught.value)


async def test_500_is_a_retryable_error_with_the_servers_message() -> None:
    async with ScriptedServer([error_reply(500, "out of memory")]) as server:
        backend = OpenAIBackend(base_url=server.base_url, stream=False)
        with pytest.raises(BackendError) as caught:
            await backend.complete(QUESTION)
        await backend.aclose()
    assert caught.value.retryable
    assert str(caught.value) == f"{server.base_url}: server error (500): out of memory"


async def test_400_is_not_retryable_and_carries_the_servers_message() -> None:
    async with ScriptedServer([error_reply(400, "max_tokens is too large")]) as server:
        backend = OpenAIBackend(base_url=server.base_url)
        with pytest.raises(BackendError) as caught:
            await backend.complete(QUESTION)
        await backend.aclose()
    assert not caught.value.retryable
    assert "request rejected (400): max_tokens is too large" in str(caught.value)


async def test_answer_later_than_the_timeout_is_a_backend_timeout() -> None:
    async with ScriptedServer([Reply(delay_s=5.0, body=b"{}")]) as server:
        backend = OpenAIBackend(base_url=server.base_url, timeout_s=0.3)
        started = time.perf_counter()
        with pytest.raises(BackendTimeout) as caught:
            await backend.complete(QUESTION)
        elapsed = time.perf_counter() - started
        await backend.aclose()
    assert elapsed < 2.0
    assert server.base_url in str(caught.value) and "0.3 s" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "stream", "words"),
    [
        (Reply(body=b'{"choices": [{"message": {"content": "hi"', close_delimited=True), False, "malformed JSON"),
        (sse_reply(["Par", "is"], complete=False), True, "ended before the answer was complete"),
        (Reply(body=b"data: {not json}\n\n", close_delimited=True), True, "malformed JSON in the event stream"),
        (Reply(body=b'{"object": "list"}'), False, "no choices"),
    ],
    ids=["truncated-body", "truncated-stream", "bad-chunk", "no-choices"],
)
async def test_malformed_answer_is_a_backend_error_naming_the_problem(reply: Reply, stream: bool, words: str) -> None:
    async with ScriptedServer([reply]) as server:
        backend = OpenAIBackend(base_url=server.base_url, stream=stream)
        with pytest.raises(BackendError) as caught:
            await backend.complete(QUESTION)
        await backend.aclose()
    assert words in str(caught.value) and server.base_url in str(caught.value)


# --------------------------------------------------------- scripted successes
async def test_stream_without_usage_is_estimated_and_server_timings_are_used() -> None:
    reply = sse_reply(["Paris", " is", " the", " capital"])
    timed = Reply(
        body=reply.body.replace(b'"finish_reason": "stop"}]', b'"finish_reason": "stop"}], "timings": '
                                b'{"prompt_ms": 30.0, "predicted_ms": 20.0}'),
        headers=reply.headers,
        close_delimited=True,
    )
    async with ScriptedServer([reply, timed]) as server:
        backend = OpenAIBackend(base_url=server.base_url, model="smol", api_key="k-123")
        plain = await backend.complete(QUESTION)
        with_timings = await backend.complete(QUESTION)
        await backend.aclose()
    assert plain.text == with_timings.text == "Paris is the capital"
    assert plain.completion_tokens == 4  # one token a chunk
    assert plain.prompt_tokens > 0
    assert with_timings.compute_s == pytest.approx(min(0.05, with_timings.total_s))
    sent = server.bodies[0]
    assert sent["model"] == "smol" and sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": QUESTION.system},
        {"role": "user", "content": QUESTION.prompt},
    ]


async def test_run_retries_after_the_429s_retry_after_then_succeeds() -> None:
    replies = [error_reply(429, "busy", {"Retry-After": "1"}), sse_reply(["Paris"])]
    async with ScriptedServer(replies) as server:
        backend = OpenAIBackend(base_url=server.base_url)
        graph = TaskGraph([Task("ask", prompt="Capital of France?", retries=2)])
        result = await arun(graph, [Agent("answerer", backend=backend)])
        await backend.aclose()
    assert result.results == {"ask": "Paris"}
    assert result.report.tasks["retried"] == 1
    assert len(server.arrivals) == 2
    assert server.arrivals[1] - server.arrivals[0] >= 1.0  # waited out the Retry-After
