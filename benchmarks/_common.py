"""Helpers shared by the benchmark scripts: timing, machine info, tables, JSON and PNG output.

Every benchmark in this folder runs both sides of a claim in one process, prints a table
(or, with ``--json``, the JSON document on stdout), and writes ``<name>.json`` and
``<name>.png`` to ``benchmarks/results/``.  Progress lines go to stderr so that stdout
stays pure JSON under ``--json``.

Timing: :func:`best_of` calls a measurement function ``repeats`` times, with a full garbage
collection before each call, and keeps the fastest; :func:`best_of_interleaved` does the
same for several measurements in rounds (A B C, A B C, ...), which keeps a burst of load
from another process from spoiling every sample of one of them.  A measurement function times itself
(``time.perf_counter`` around exactly the part being measured, e.g. inside a running event
loop so that creating the loop is not counted) and returns seconds.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = [
    "RESULTS_DIR",
    "Timing",
    "best_of",
    "best_of_interleaved",
    "fmt_ratio",
    "fmt_us",
    "langgraph_version",
    "machine_info",
    "mark",
    "print_table",
    "progress",
    "publish",
    "pyplot",
    "save_figure",
    "write_json",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"

_err = Console(stderr=True, highlight=False)
# Piped output gets a fixed width wide enough for the tables (rich would pick 80).
_out = Console(highlight=False, width=None if sys.stdout.isatty() else 180)


@dataclass(slots=True)
class Timing:
    """Seconds of each repeat of one measurement; ``best`` is the fastest."""

    samples: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)  # breakdown of the best repeat

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {"best_s": self.best, "median_s": self.median, "samples_s": self.samples, **self.extra}


def best_of(
    measure: Callable[[], float | tuple[float, Mapping[str, float]]], repeats: int, *, no_gc: bool = False
) -> Timing:
    """Run ``measure`` ``repeats`` times (gc.collect() before each); keep every sample.

    ``measure`` returns the seconds it measured, or ``(seconds, breakdown)`` where the
    breakdown (e.g. ``{"setup_s": ...}``) of the fastest repeat is kept in ``Timing.extra``.
    With ``no_gc`` the cyclic garbage collector is off while ``measure`` runs.
    """
    timing = Timing()
    best = float("inf")
    for _ in range(max(1, repeats)):
        gc.collect()
        if no_gc:
            gc.disable()
        try:
            got = measure()
        finally:
            if no_gc:
                gc.enable()
        seconds, extra = (got, {}) if isinstance(got, float) else got
        timing.samples.append(seconds)
        if seconds < best:
            best = seconds
            timing.extra = dict(extra)
    return timing


def best_of_interleaved(
    measures: Mapping[str, Callable[[], float | tuple[float, Mapping[str, float]]]],
    repeats: int,
    *,
    no_gc: bool = False,
) -> dict[str, Timing]:
    """:func:`best_of` for several measurements, in rounds: each round runs every
    measurement once.  A burst of load from another process then slows one sample of
    each system rather than every sample of one system, so the best stays clean."""
    timings = {name: Timing() for name in measures}
    for _ in range(max(1, repeats)):
        for name, measure in measures.items():
            got = best_of(measure, 1, no_gc=no_gc)
            t = timings[name]
            if not t.samples or got.best < t.best:
                t.extra = got.extra
            t.samples.append(got.best)
    return timings


def langgraph_version() -> str | None:
    """The installed LangGraph version, or None when it cannot be imported."""
    try:
        import langgraph.graph  # noqa: F401
    except ImportError:
        return None
    try:
        return importlib.metadata.version("langgraph")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def machine_info() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        # Other processes on the machine add noise to timings; the load says how busy it was.
        "loadavg_1m_5m_15m": [round(x, 2) for x in load] if load else None,
        "paragents": version("paragents"),
        "langgraph": version("langgraph"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def progress(message: str) -> None:
    """A progress line on stderr (stdout is reserved for the table or the JSON)."""
    _err.print(f"[dim]{message}[/dim]")


def fmt_us(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}x"


def mark(text: str, ok: bool | None) -> str:
    """``text`` in green with a tick when a goal is met, red with a cross when missed (the
    marks survive piping to a file), plain when no goal applies."""
    if ok is None:
        return text
    return f"[green]{text} ✓[/green]" if ok else f"[red]{text} ✗[/red]"


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    caption: str | None = None,
    right_from: int = 1,
) -> None:
    """A rich table on stdout; columns from index ``right_from`` on are right-aligned."""
    table = Table(title=title, caption=caption, caption_justify="left", title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i >= right_from else "left", no_wrap=i < right_from)
    for row in rows:
        table.add_row(*row)
    _out.print(table)


def write_json(name: str, doc: Mapping[str, Any], *, to_stdout: bool = False) -> Path:
    """Write ``results/<name>.json``; with ``to_stdout`` also print the document."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    text = json.dumps(doc, indent=2, sort_keys=False)
    path.write_text(text + "\n")
    if to_stdout:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return path


def publish(
    name: str,
    doc: Mapping[str, Any],
    *,
    as_json: bool,
    quick: bool,
    report: Callable[[Any], None],
    plot: Callable[[Any], None],
) -> int:
    """The end of a benchmark's ``main``: the table (or, with ``as_json``, the JSON
    document) on stdout, and unless ``quick`` the JSON and the plot in ``results/``."""
    if quick:
        if as_json:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            report(doc)
        return 0
    write_json(name, doc, to_stdout=as_json)
    if not as_json:
        report(doc)
    plot(doc)
    return 0


def save_figure(fig: Any, name: str) -> Path:
    """Save a matplotlib figure as ``results/<name>.png`` and close it."""
    import matplotlib.pyplot as plt

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
