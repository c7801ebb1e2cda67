"""Size limits on what a graph, a workflow file or a plan may hold: one table, one place.

Theory of operation
-------------------
Input from outside (a YAML workflow, a model's plan, a program's tasks) is bounded so
that a mistake or a hostile document ends in a clear error, not in a run that exhausts
memory or a log that cannot be read.  The limits are module constants, checked by
:meth:`~paragents.core.graph.TaskGraph.add` (for every graph, however it was built), by
the workflow loader and by the plan parser (which name the place in their messages).

=====================  ===========  ==================================================
constant               value        what it bounds
=====================  ===========  ==================================================
``MAX_TASKS``          1,000,000    tasks in one graph (including tasks added while it runs)
``MAX_EDGES``          10,000,000   dependency edges in one graph
``MAX_PROMPT_CHARS``   1,000,000    characters of one task's prompt (a plan task's description)
``MAX_ID_CHARS``       256          characters of one task id
=====================  ===========  ==================================================

Each message names the limit and the value that broke it, e.g. ``task id of 300
characters is longer than the limit of 256 (MAX_ID_CHARS)``.
"""

from __future__ import annotations

__all__ = ["MAX_EDGES", "MAX_ID_CHARS", "MAX_PROMPT_CHARS", "MAX_TASKS", "too_long"]

MAX_TASKS = 1_000_000
MAX_EDGES = 10_000_000
MAX_PROMPT_CHARS = 1_000_000
MAX_ID_CHARS = 256


def too_long(what: str, length: int, limit: int, name: str) -> str:
    """The message for a text over its limit: ``what of N characters is longer than ...``."""
    return f"{what} of {length:,} characters is longer than the limit of {limit:,} ({name})"
