"""The JSON schema of a plan, for constrained decoding and for the prompts.

A plan is ``{"tasks": [task, ...]}`` with at least one and at most ``max_tasks`` tasks;
each task is ``{"id", "description", "skill", "depends_on", "expandable"}``, all
required, nothing else allowed.  When the available skills are known, ``skill`` is an
enum of them, so a backend that decodes under the schema (llama.cpp's grammars, vLLM's
guided decoding, OpenAI's structured outputs) cannot name a skill no agent has.  The
schema only constrains *shape*: that ``depends_on`` names ids of the plan and that the
graph is acyclic is beyond JSON schema, and :mod:`paragents.planner.parse` checks and
repairs it.  Strings are bounded (``MAX_ID``, ``MAX_DESCRIPTION``) so that a model that
would ramble inside one field is made to close it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["TASK_FIELDS", "plan_schema"]

#: Longest id and description the schema allows: a small model under constrained
#: decoding otherwise may write one string until it runs out of tokens.
MAX_ID = 24
MAX_DESCRIPTION = 160

#: The fields of a task, in the order the schema (and so constrained decoding) emits them.
TASK_FIELDS = ("id", "description", "skill", "depends_on", "expandable")


def plan_schema(skills: Collection[str] = (), *, max_tasks: int = 12) -> dict[str, Any]:
    """The plan schema for these skills (any skill string when none is given)."""
    if max_tasks < 1:
        raise ValueError(f"max_tasks must be at least 1, got {max_tasks}")
    skill: dict[str, Any] = {"type": "string", "minLength": 1}
    if skills:
        skill = {"type": "string", "enum": list(dict.fromkeys(skills))}
    task = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
            "description": {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION},
            "skill": skill,
            "depends_on": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
                "maxItems": max_tasks,
            },
            "expandable": {"type": "boolean"},
        },
        "required": list(TASK_FIELDS),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"tasks": {"type": "array", "items": task, "minItems": 1, "maxItems": max_tasks}},
        "required": ["tasks"],
        "additionalProperties": False,
    }
