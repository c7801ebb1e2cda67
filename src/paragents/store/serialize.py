"""How the store turns tasks, results and log data into JSON text, and back.

Theory of operation
-------------------
Everything structured is stored as JSON text (see :mod:`paragents.store.schema`).  Three
encodings, one per purpose:

* **Results** must come back as they were, or say that they cannot:
  :func:`encode_result` writes strict JSON, and for a value that is not JSON-able (an
  object, a set, a circular structure) the JSON string of its ``repr()`` with a flag, so a
  reader knows the stored value is a description, not the value.  JSON's own mapping
  applies: a tuple comes back as a list, a non-string key as a string.
* **Log data, usage, specs, reports and task ``meta``** are records for people and tools:
  :func:`dumps` writes JSON and turns any value JSON cannot hold into its ``repr()`` (a
  set into a sorted list), so recording never fails on an odd value.
* **Input hashes** need one spelling per value: :func:`inputs_hash` hashes the canonical
  JSON (sorted keys, no spaces, UTF-8) of ``{producer id: result}``.  A value that JSON
  cannot hold is hashed by its ``repr()``, which is stable for values whose ``repr`` is
  (not for objects that print their address).

A task is stored as its storable fields (:func:`task_to_json`): every field of
:class:`~paragents.core.graph.Task` except ``action``, which is code.  The field list is
read from the dataclass, so a field added to ``Task`` is stored without a change here;
:func:`task_from_json` ignores keys it does not know and lets missing ones take their
defaults, so definitions written by other versions still load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import fields
from typing import Any

from ..core.graph import Task

__all__ = [
    "decode_result",
    "dumps",
    "encode_result",
    "inputs_hash",
    "loads",
    "task_from_json",
    "task_to_json",
]

#: Task fields that are not stored: code cannot be.
_UNSTORABLE = frozenset({"action"})
_TASK_FIELDS = tuple(f.name for f in fields(Task) if f.name not in _UNSTORABLE)


def _lenient(value: Any) -> Any:
    """``json`` ``default=`` hook: sets as sorted lists, anything else as its repr."""
    if isinstance(value, AbstractSet):
        try:
            return sorted(value)
        except TypeError:
            return sorted(map(repr, value))
    return repr(value)


def dumps(value: Any) -> str:
    """Compact JSON; values JSON cannot hold become their ``repr()``."""
    return json.dumps(value, default=_lenient, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | None) -> Any:
    """The value of JSON ``text``; ``None`` for SQL NULL."""
    return None if text is None else json.loads(text)


def encode_result(value: Any) -> tuple[str, bool]:
    """``(json_text, is_repr)``: the value's JSON, or the JSON string of its repr()."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")), False
    except (TypeError, ValueError, RecursionError):
        return json.dumps(repr(value), ensure_ascii=False), True


def decode_result(text: str) -> Any:
    """The stored value (for a repr-encoded result, the repr string)."""
    return json.loads(text)


def _canonical(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_lenient)
    except (TypeError, ValueError, RecursionError):  # mixed key types, circular structures
        return json.dumps(repr(value), ensure_ascii=False)


def inputs_hash(inputs: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``{producer id: result}``."""
    items = sorted(((str(k), v) for k, v in inputs.items()), key=lambda kv: kv[0])
    body = ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_canonical(v)}" for k, v in items)
    return hashlib.sha256(("{" + body + "}").encode("utf-8")).hexdigest()


def task_to_json(task: Task) -> dict[str, Any]:
    """The task's storable fields as JSON-able values (``skills`` sorted, ``meta`` a dict)."""
    out: dict[str, Any] = {}
    for name in _TASK_FIELDS:
        value = getattr(task, name)
        if isinstance(value, AbstractSet):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = json.loads(dumps(value))
        out[name] = value
    return out


def task_from_json(data: Mapping[str, Any]) -> Task:
    """The :class:`Task` that :func:`task_to_json` described (``action`` is None)."""
    known = {name: data[name] for name in _TASK_FIELDS if name in data}
    if "id" not in known:
        raise ValueError(f"task definition without an id: {dict(data)!r}")
    return Task(**known)
