"""The OpenAI-compatible HTTP backend: vLLM, Ollama, llama.cpp's servers, OpenAI itself.

Theory of operation
-------------------
:class:`OpenAIBackend` sends one ``POST {base_url}/chat/completions`` per request, with
an :class:`httpx.AsyncClient`, and turns the answer into a
:class:`~paragents.backends.base.Completion`.  It holds one client per event loop: the
client's pooled connections belong to the loop that opened them, so a backend used from
a second ``asyncio.run`` builds a fresh client rather than reuse dead sockets.

Streaming (the default).  The request asks for server-sent events
(``"stream": true`` with ``"stream_options": {"include_usage": true}``).  Each
``data: {...}`` line is one JSON chunk; ``data: [DONE]`` ends the stream; comment and
``event:`` lines are skipped.  ``ttft_s`` is the time from the start of the call to the
first chunk carrying content.  Token usage comes from the chunk that carries
``usage`` (the final one, on servers that honour ``include_usage``); a server that
sends none gets an estimate: the number of content chunks (servers stream one token a
chunk) and :func:`~paragents.backends.base.estimate_tokens` of the prompt.  A stream
that ends with neither ``[DONE]`` nor a ``finish_reason`` was cut short and is an
error.  Without streaming the body is one JSON object and ``ttft_s = total_s``.

Latency split.  When the server reports its own timings (llama.cpp's server sends
``timings`` with ``prompt_ms`` and ``predicted_ms``), ``compute_s`` is their sum.
Otherwise the transfer is estimated as the time until the request body has been sent
(connection set-up and upload, observed through httpx's ``trace`` hook) and
``compute_s`` is everything after it, until the answer's last byte.  Either way
``transfer_s = total_s - compute_s``.

Structured output.  ``structured`` says how ``request.json_schema`` is sent:
``"json_schema"`` (OpenAI's ``{"type": "json_schema", "json_schema": {"name", "schema"}}``,
which vLLM, Ollama and llama.cpp's C++ server accept), ``"json_object"``
(``{"type": "json_object", "schema": ...}``, the form llama-cpp-python's server and
others that predate ``json_schema`` accept), or ``"none"`` (no response format; the
schema is only the prompt's business).  ``"auto"`` tries ``json_schema`` first; if the
server refuses it (a 400 or 422, or an error naming ``response_format`` or ``json_schema``:
llama-cpp-python's server answers 500 with its validation error), the same call is sent
once more in ``json_object`` form, and when that works the backend keeps using it.

Errors.  Each failure is one :class:`~paragents.core.errors.BackendError` whose message
starts with the endpoint (the base URL unless named otherwise) and says what happened:

* no connection (refused, unknown host, connect timeout) or a connection lost mid-answer
  -> :class:`~paragents.core.errors.BackendUnavailable`;
* 429 -> :class:`~paragents.core.errors.RateLimited`, ``retry_after`` read from the
  ``Retry-After`` header (seconds or an HTTP date);
* 408, a read timeout, or no complete answer within ``timeout_s`` ->
  :class:`~paragents.core.errors.BackendTimeout`;
* 5xx -> a retryable ``BackendError`` with the server's message;
* any other 4xx -> a ``BackendError`` with ``retryable = False`` and the server's message
  (the same request would be refused again);
* a body or stream chunk that is not the JSON expected -> a retryable ``BackendError``
  naming what was malformed.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from paragents.backends.base import Completion, Request, estimate_tokens
from paragents.core.errors import BackendError, BackendTimeout, BackendUnavailable, RateLimited

__all__ = ["ENV_API_KEY", "ENV_BASE_URL", "ENV_MODEL", "STRUCTURED_MODES", "OpenAIBackend"]

#: Environment variables read for whatever the constructor is not given.
ENV_BASE_URL = "PARAGENTS_OPENAI_BASE_URL"
ENV_MODEL = "PARAGENTS_OPENAI_MODEL"
ENV_API_KEY = "OPENAI_API_KEY"

#: Values of ``structured``.
STRUCTURED_MODES = ("auto", "json_schema", "json_object", "none")

#: How much of an unparseable body an error message quotes.
_QUOTE = 200


class OpenAIBackend:
    """A client of any server that speaks OpenAI's ``/chat/completions``.

    ``base_url`` is the API root (``http://127.0.0.1:8000/v1``); ``model`` the model name
    sent with each request (left out when empty: single-model servers such as
    llama-cpp-python's do not need it).  Unset, they come from
    ``PARAGENTS_OPENAI_BASE_URL`` and ``PARAGENTS_OPENAI_MODEL``; ``api_key`` from
    ``OPENAI_API_KEY``.  ``timeout_s`` bounds the whole call.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        stream: bool = True,
        structured: str = "auto",
        name: str = "openai",
        endpoint: str | None = None,
    ) -> None:
        url = (base_url or os.environ.get(ENV_BASE_URL, "")).strip().rstrip("/")
        if not url:
            raise ValueError(f"base_url is required (or set {ENV_BASE_URL}), e.g. http://127.0.0.1:8000/v1")
        if not re.match(r"https?://[^/]", url):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {url!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if structured not in STRUCTURED_MODES:
            raise ValueError(f"structured must be one of {', '.join(STRUCTURED_MODES)}, got {structured!r}")
        self.name = name
        self.base_url = url
        self.model = model if model is not None else os.environ.get(ENV_MODEL, "")
        self.endpoint = endpoint or url
        self.timeout_s = timeout_s
        self.stream = stream
        self.structured = structured
        self._api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        self._url = f"{url}/chat/completions"
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> OpenAIBackend:
        """A backend configured by ``PARAGENTS_OPENAI_BASE_URL``, ``PARAGENTS_OPENAI_MODEL``
        and ``OPENAI_API_KEY``; keyword arguments override them."""
        return cls(**overrides)

    def __repr__(self) -> str:
        return f"OpenAIBackend(name={self.name!r}, endpoint={self.endpoint!r}, model={self.model!r})"

    async def complete(self, request: Request) -> Completion:
        """One chat completion; every failure is raised as a BackendError naming the endpoint."""
        mode = self.structured if request.json_schema is not None else "none"
        if mode != "auto":
            return await self._complete(request, mode)
        try:
            return await self._complete(request, "json_schema", fallback=True)
        except _SchemaFormatRefused:
            completion = await self._complete(request, "json_object")
            self.structured = "json_object"
            return completion

    async def aclose(self) -> None:
        """Close the HTTP client (if it belongs to the running loop, else just drop it).  Idempotent."""
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    # --------------------------------------------------------------- internals
    async def _complete(self, request: Request, mode: str, *, fallback: bool = False) -> Completion:
        client = self._client_for_running_loop()
        call = _Call(started=time.perf_counter(), on_text=request.on_text)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._exchange(client, request, mode, call, fallback)
        except TimeoutError:
            raise self._error(BackendTimeout, f"no complete answer within {self.timeout_s:g} s") from None
        except httpx.ConnectTimeout:
            reason = f"cannot connect: no connection within {self.timeout_s:g} s"
            raise self._error(BackendUnavailable, reason) from None
        except httpx.TimeoutException:
            raise self._error(BackendTimeout, f"no answer within {self.timeout_s:g} s (read timeout)") from None
        except httpx.ConnectError as exc:
            raise self._error(BackendUnavailable, f"cannot connect: {_connect_reason(exc)}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            reason = str(exc) or type(exc).__name__
            raise self._error(BackendUnavailable, f"connection lost before the answer was complete: {reason}") from None
        except httpx.HTTPError as exc:
            raise self._error(BackendError, f"HTTP error: {type(exc).__name__}: {exc}") from None
        return call.completion(request, self.model)

    async def _exchange(
        self, client: httpx.AsyncClient, request: Request, mode: str, call: _Call, fallback: bool
    ) -> None:
        """Send the request and read the answer into ``call``."""
        payload = self._payload(request, mode)
        stream = self.stream
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        async with client.stream(
            "POST", self._url, json=payload, headers=headers, extensions={"trace": call.trace}
        ) as response:
            if response.status_code != 200:
                body = await response.aread()
                if fallback and _refuses_schema_format(response.status_code, body):
                    raise _SchemaFormatRefused
                raise self._status_error(response, body)
            if stream:
                await self._read_stream(response, call)
            else:
                self._read_body(await response.aread(), call)
        call.ended = time.perf_counter()

    def _payload(self, request: Request, mode: str) -> dict[str, Any]:
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        payload: dict[str, Any] = {
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": self.stream,
        }
        if self.model:
            payload["model"] = self.model
        if request.stop:
            payload["stop"] = list(request.stop)
        if self.stream:
            payload["stream_options"] = {"include_usage": True}
        schema = request.json_schema
        if schema is not None and mode == "json_schema":
            title = schema.get("title")
            name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] if isinstance(title, str) and title else "response"
            payload["response_format"] = {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema)}}
        elif schema is not None and mode == "json_object":
            payload["response_format"] = {"type": "json_object", "schema": dict(schema)}
        return payload

    async def _read_stream(self, response: httpx.Response, call: _Call) -> None:
        done = False
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": ping" comments, "event:" and "id:" fields
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise self._error(BackendError, f"malformed JSON in the event stream: {data[:_QUOTE]!r}") from None
            if not isinstance(chunk, dict):
                raise self._error(BackendError, f"malformed event in the stream: {data[:_QUOTE]!r}")
            if "error" in chunk:
                raise self._error(BackendError, f"server error in the stream: {_message(chunk)}")
            call.absorb(chunk, streamed=True)
        if not done and call.finish_reason is None:
            raise self._error(
                BackendError, "the event stream ended before the answer was complete (no [DONE], no finish_reason)"
            )

    def _read_body(self, body: bytes, call: _Call) -> None:
        try:
            answer = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = body.decode("utf-8", "replace")
            raise self._error(BackendError, f"malformed JSON in the response body: {text[:_QUOTE]!r}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
            raise self._error(BackendError, f"response has no choices: {body[:_QUOTE].decode('utf-8', 'replace')!r}")
        call.absorb(answer, streamed=False)

    def _status_error(self, response: httpx.Response, body: bytes) -> BackendError:
        status = response.status_code
        message = _message(_json_or_text(body)) or response.reason_phrase or "no message"
        if status == 429:
            retry_after = _retry_after(response.headers.get("retry-after"))
            wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
            return RateLimited(
                self._text(f"rate limited (429): {message}{wait}"), retry_after=retry_after, endpoint=self.endpoint
            )
        if status == 408:
            return self._error(BackendTimeout, f"the server timed out (408): {message}")
        if status >= 500:
            return self._error(BackendError, f"server error ({status}): {message}")
        hint = {
            401: " (check the API key: api_key or OPENAI_API_KEY)",
            403: " (check the API key: api_key or OPENAI_API_KEY)",
            404: f" (is base_url right? POST {self._url})",
        }.get(status, "")
        error = self._error(BackendError, f"request rejected ({status}): {message}{hint}")
        error.retryable = False
        return error

    def _error(self, kind: type[BackendError], what: str) -> BackendError:
        return kind(self._text(what), endpoint=self.endpoint)

    def _text(self, what: str) -> str:
        """The message; it names the URL too when the endpoint is a name, not the URL."""
        return what if self.endpoint == self.base_url else f"{self.base_url}: {what}"

    def _client_for_running_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), headers=headers)
            self._client_loop = loop
        return self._client


class _SchemaFormatRefused(Exception):
    """The server refused ``response_format`` of type ``json_schema`` (``structured="auto"``)."""


@dataclass(slots=True)
class _Call:
    """What one call has seen so far: text, usage, timings and its clock readings."""

    started: float
    sent: float | None = None
    first_token: float | None = None
    ended: float | None = None
    parts: list[str] = field(default_factory=list)
    deltas: int = 0
    usage: Mapping[str, Any] | None = None
    timings: Mapping[str, Any] | None = None
    finish_reason: str | None = None
    model: str = ""
    on_text: Callable[[str], None] | None = None

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpx's trace hook: note when the request body has gone out."""
        if event.endswith("send_request_body.complete"):
            self.sent = time.perf_counter()

    def absorb(self, chunk: Mapping[str, Any], *, streamed: bool) -> None:
        """Take in one stream chunk or the whole body."""
        if isinstance(chunk.get("usage"), Mapping):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), Mapping):
            self.timings = chunk["timings"]
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            return
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        message = choice.get("delta" if streamed else "message")
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str) and content:
            if streamed and self.first_token is None:
                self.first_token = time.perf_counter()
            self.parts.append(content)
            self.deltas += 1
            if streamed and self.on_text is not None:
                self.on_text(content)

    def completion(self, request: Request, model: str) -> Completion:
        ended = self.ended if self.ended is not None else time.perf_counter()
        total = ended - self.started
        compute = _server_compute_s(self.timings)
        if compute is None:
            compute = ended - (self.sent if self.sent is not None else self.started)
        compute = min(max(compute, 0.0), total)
        text = "".join(self.parts)
        usage = self.usage or {}
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        return Completion(
            text=text,
            prompt_tokens=int(prompt_tokens)
            if isinstance(prompt_tokens, int)
            else estimate_tokens(request.system + request.prompt),
            completion_tokens=int(completion_tokens)
            if isinstance(completion_tokens, int)
            else (self.deltas if self.deltas else estimate_tokens(text)),
            ttft_s=(self.first_token - self.started) if self.first_token is not None else total,
            total_s=total,
            compute_s=compute,
            transfer_s=total - compute,
            model=self.model or model,
        )


def _refuses_schema_format(status: int, body: bytes) -> bool:
    """Whether an error answer to a ``json_schema`` response format means "not this form":
    a 400 or 422, or any other error that names ``response_format`` or ``json_schema``
    (llama-cpp-python's server reports its validation failure as a 500)."""
    if status in (400, 422):
        return True
    text = body.decode("utf-8", "replace")
    return status not in (401, 403, 404, 408, 429) and ("response_format" in text or "json_schema" in text)


def _server_compute_s(timings: Mapping[str, Any] | None) -> float | None:
    """Seconds the server says it computed (llama.cpp's ``prompt_ms + predicted_ms``)."""
    if not timings:
        return None
    parts = [timings.get("prompt_ms"), timings.get("predicted_ms")]
    numbers = [p for p in parts if isinstance(p, int | float)]
    return sum(numbers) / 1000.0 if numbers else None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.
    A value that is not a finite number (``inf``, ``nan``) is no advice: None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_or_text(body: bytes) -> Any:
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:_QUOTE]


def _message(answer: Any) -> str:
    """The human part of an error body: OpenAI's ``error.message``, FastAPI's ``detail``, or the text."""
    if isinstance(answer, str):
        return answer
    if isinstance(answer, Mapping):
        error = answer.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])[:_QUOTE]
        for key in ("error", "detail", "message"):
            if answer.get(key):
                return json.dumps(answer[key])[:_QUOTE] if not isinstance(answer[key], str) else answer[key][:_QUOTE]
    return json.dumps(answer)[:_QUOTE]


def _connect_reason(exc: BaseException) -> str:
    """Why a connection failed, in words: walk the exception's causes for the OS error."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"host name not found ({seen.strerror or seen})"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "refused" in text.lower() or "connect call failed" in text.lower():
        return "connection refused"
    return text or type(exc).__name__
