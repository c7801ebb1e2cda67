"""An incremental scanner that finds a plan's task list in text and cuts out its items.

Theory of operation
-------------------
A model's answer is text that should hold one JSON plan, ``{"tasks": [ {...}, ... ]}``
or a bare list ``[ {...}, ... ]``, but may come with prose or code fences around it, may
stop half-way (the token limit), and arrives a few characters at a time when streamed.
:class:`ItemScanner` is fed that text in chunks of any size and returns each item of the
task list as a slice of the text **the moment the item is complete**: an object item at
its closing brace, a scalar item at the comma or bracket after it.  It never decodes
JSON; it only tracks structure: whether it is inside a string (and after a backslash),
and a stack of open brackets.  The caller decodes each slice on its own, so an error in
one item names that item.

Where the task list is.  Outside any JSON the scanner *seeks*: prose is skipped up to
the next ``{`` or ``[``, which opens a **root**.  In a root object, an array under one
of :data:`TASK_LIST_KEYS` is the task list, and an object under ``"plan"`` is searched
the same way (``{"plan": {"tasks": [...]}}``).  A root list is the task list if its
first item is an object; otherwise it was prose (``"see [1]"``) and the scanner goes
back to seeking from that item.  A root that closes without a task list is forgotten
and seeking resumes.  Once the task list closes the scanner is *done*: the rest of the
text is not looked at.

The key of an array is the last string that closed directly in its parent object, which
in well-formed JSON is always the key.  A closing bracket pops the stack whatever its
kind, so a mismatched bracket makes a malformed item, which the caller reports.

State: ``text`` (everything fed), ``_pos`` (the next character to look at), ``_stack``
(open brackets, each with its role), ``_in_string`` / ``_escape``, ``_item_start``
(where the item being read in the task list begins, or -1), ``index`` (items cut so
far), and ``found`` / ``closed`` (the task list was opened / has closed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TASK_LIST_KEYS", "ItemScanner"]

#: Keys under which a root object may hold its task list, in order of preference.
TASK_LIST_KEYS = ("tasks", "steps", "subtasks", "plan")
#: Keys under which a root object may nest the plan object itself.
NESTED_PLAN_KEYS = ("plan",)

_SEEK, _ROOT, _DONE = range(3)
# Frame roles: a root object, the task list, an item of the task list, anything else.
_R_ROOT, _R_TASKS, _R_ITEM, _R_OTHER = range(4)

_OPENER = re.compile(r"[{\[]")
_STRUCTURE = re.compile(r'["{}\[\],]')
_STRING_STOP = re.compile(r'["\\]')
_ITEM_START = re.compile(r"[^\s,]")


@dataclass(slots=True)
class _Frame:
    role: int
    bare: bool = False  # a root list, not yet known to be the task list
    key: str = ""  # root objects: the last string that closed directly inside


class ItemScanner:
    """Feed text with :meth:`feed`; get ``(index, item_text)`` for each complete task item."""

    def __init__(self) -> None:
        self.text = ""
        self.index = 0
        self.found = False
        self.closed = False
        self._pos = 0
        self._mode = _SEEK
        self._stack: list[_Frame] = []
        self._in_string = False
        self._escape = False
        self._string_start = -1
        self._item_start = -1

    @property
    def partial(self) -> bool:
        """The text so far ends inside an item of the task list."""
        return self._item_start >= 0

    def feed(self, chunk: str) -> list[tuple[int, str]]:
        """Scan ``chunk`` (appended to the text so far); return the items it completed."""
        self.text += chunk
        out: list[tuple[int, str]] = []
        text, n, i = self.text, len(self.text), self._pos
        while i < n and self._mode != _DONE:
            if self._in_string:
                i = self._scan_string(text, i, n)
                continue
            if self._mode == _SEEK:
                m = _OPENER.search(text, i)
                if m is None:
                    i = n
                    break
                self._mode = _ROOT
                self._stack.append(_Frame(_R_ROOT) if m.group() == "{" else _Frame(_R_TASKS, bare=True))
                i = m.end()
                continue
            top = self._stack[-1]
            if top.role == _R_TASKS and self._item_start < 0:
                m = _ITEM_START.search(text, i)
                if m is None:
                    i = n
                    break
                j, c = m.start(), m.group()
                if c != "]":
                    if top.bare and self.index == 0 and c != "{":
                        self._abandon_root()  # a bracket in prose, not a list of tasks
                        i = j
                        continue
                    self._item_start = j
                    if top.bare:
                        self.found = True
                i = j
            m = _STRUCTURE.search(text, i)
            if m is None:
                i = n
                break
            j, c = m.start(), m.group()
            i = j + 1
            if c == '"':
                self._in_string = True
                self._string_start = j
            elif c in "{[":
                self._open(top, c)
            elif c in "}]":
                self._close(text, j, out)
            elif top.role == _R_TASKS and self._item_start >= 0:  # a comma after a scalar item
                self._emit(text[self._item_start : j].strip(), out)
        self._pos = n if self._mode == _DONE else i
        return out

    def _scan_string(self, text: str, i: int, n: int) -> int:
        """Advance inside a string; return the next position to look at."""
        if self._escape:
            self._escape = False
            return i + 1
        m = _STRING_STOP.search(text, i)
        if m is None:
            return n
        j = m.start()
        if m.group() == "\\":
            self._escape = True
        else:
            self._in_string = False
            top = self._stack[-1]
            if top.role == _R_ROOT:
                top.key = text[self._string_start + 1 : j]
        return j + 1

    def _open(self, top: _Frame, bracket: str) -> None:
        if top.role == _R_TASKS:
            role = _R_ITEM
        elif top.role == _R_ROOT and bracket == "[" and top.key in TASK_LIST_KEYS and not self.found:
            role = _R_TASKS
            self.found = True
        elif top.role == _R_ROOT and bracket == "{" and top.key in NESTED_PLAN_KEYS:
            role = _R_ROOT
        else:
            role = _R_OTHER
        self._stack.append(_Frame(role))

    def _close(self, text: str, j: int, out: list[tuple[int, str]]) -> None:
        frame = self._stack.pop()
        if frame.role == _R_ITEM:
            self._emit(text[self._item_start : j + 1], out)
        elif frame.role == _R_TASKS:
            if self._item_start >= 0:  # a scalar item right before the bracket
                self._emit(text[self._item_start : j].strip(), out)
            if frame.bare and not self.found:  # an empty root list: prose, keep seeking
                self._abandon_root()
            else:
                self.closed = True
                self._mode = _DONE
        elif not self._stack:  # a root without a task list
            self._mode = _SEEK

    def _emit(self, item: str, out: list[tuple[int, str]]) -> None:
        out.append((self.index, item))
        self.index += 1
        self._item_start = -1

    def _abandon_root(self) -> None:
        self._stack.clear()
        self._item_start = -1
        self._mode = _SEEK
