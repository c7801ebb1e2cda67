"""Static reports of a stored run: one self-contained HTML file, and a Gantt chart as PNG.

Theory of operation
-------------------
:func:`html_report` is the dashboard page frozen for sharing: the page's own
``index.html`` with its style sheet and script written inline, and the run's view and
log embedded as ``window.PARAGENTS_REPORT``.  The script sees the embedded data, fetches
nothing and draws the same graph, Gantt, utilisation, latency split and adaptations; the
replay control replays the embedded log.  Nothing refers outside the file (no URL, no
font, no library), so it opens offline, attached to a mail.  The JSON is escaped so that
no ``</script>`` (or ``<!--``) inside a task id or an error can end the script early.

:func:`png_gantt` draws the tasks per agent over time with matplotlib (Agg, no display):
one row per agent slot in use, bars coloured by the task's final state, the critical
path outlined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..store import StoredRun
from .app import STATIC
from .data import event_dicts, run_view

__all__ = ["html_report", "png_gantt"]

_STYLE_TAG = '<link rel="stylesheet" href="/static/style.css">'
_SCRIPT_TAG = '<script src="/static/app.js"></script>'
#: Fill colours of task states, as in ``static/style.css``.
STATE_COLOURS = {
    "pending": "#c9ced6", "ready": "#8ecae6", "running": "#ffb703", "backoff": "#fb8500",
    "done": "#52b788", "failed": "#e63946", "cancelled": "#8d99ae",
}


def _script_json(doc: Any) -> str:
    text = json.dumps(doc, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html_report(stored: StoredRun) -> str:
    """The run as one self-contained HTML document."""
    view = run_view(stored)
    events = event_dicts(stored.events, stored.seqs, view["t0"])
    page = STATIC.joinpath("index.html").read_text(encoding="utf-8")
    style = STATIC.joinpath("style.css").read_text(encoding="utf-8")
    script = STATIC.joinpath("app.js").read_text(encoding="utf-8")
    data = _script_json({"view": view, "events": events})
    page = page.replace(_STYLE_TAG, f"<style>\n{style}</style>")
    page = page.replace(_SCRIPT_TAG, f"<script>window.PARAGENTS_REPORT = {data};</script>\n<script>\n{script}</script>")
    title = f"paragents · {stored.name} {stored.run_id}".replace("&", "&amp;").replace("<", "&lt;")
    return page.replace("<title>paragents dashboard</title>", f"<title>{title}</title>")


def png_gantt(stored: StoredRun, path: str | Path) -> None:
    """Write the run's Gantt chart (tasks per agent over time) to ``path`` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    view = run_view(stored)
    horizon = max(view["report"]["makespan_s"], 1e-3)
    bars = sorted((t for t in view["tasks"] if t["start"] is not None and t["agent"]), key=lambda t: t["start"])
    slots: dict[str, list[float]] = {}
    placed = []
    for t in bars:
        end = t["end"] if t["end"] is not None else horizon
        ends = slots.setdefault(t["agent"], [])
        slot = next((i for i, free in enumerate(ends) if free <= t["start"] + 1e-9), len(ends))
        if slot == len(ends):
            ends.append(end)
        else:
            ends[slot] = end
        placed.append((t, slot, end))
    rows: dict[str, int] = {}
    labels: list[str] = []
    for agent in sorted(slots):
        rows[agent] = len(labels)
        labels.extend(agent if i == 0 else "" for i in range(len(slots[agent])))
    critical = set(view["critical_path"])
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.4 * max(len(labels), 1)))
    for t, slot, end in placed:
        ax.barh(rows[t["agent"]] + slot, end - t["start"], left=t["start"], height=0.8,
                color=STATE_COLOURS.get(t["state"], "#999999"),
                edgecolor="#d62828" if t["id"] in critical else "white", linewidth=2 if t["id"] in critical else 1)
        if end - t["start"] > horizon / 25:
            ax.text(t["start"] + (end - t["start"]) / 2, rows[t["agent"]] + slot, t["id"], ha="center",
                    va="center", fontsize=7, clip_on=True)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, horizon)
    ax.set_xlabel("seconds since the run started")
    ax.set_title(f"{stored.name}: run {stored.run_id} ({stored.status})")
    states = sorted({t["state"] for t, _, _ in placed})
    ax.legend(handles=[Patch(color=STATE_COLOURS[s], label=s) for s in states if s in STATE_COLOURS],
              loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)
