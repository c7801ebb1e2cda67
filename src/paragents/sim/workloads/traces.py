"""Workflow traces as task graphs: bundled Pegasus executions and WfCommons recipes.

Theory of operation
-------------------
A WfCommons instance (schemaVersion 1.4) lists ``workflow.tasks``; each task has a
``name`` (its id here), ``parents`` (names, or ids in some files: both are accepted),
``runtimeInSeconds``, ``category`` and ``files``, each with ``link`` (input or output),
``name`` and ``sizeInBytes``.  :func:`parse_wfcommons` reads that JSON with the standard
library only: ``wfcommons.Instance(path)`` would fetch a JSON schema over the network.

A task's ``duration`` is its measured runtime (seconds on the machine that ran it, taken
as speed 1).  What a transfer model needs is kept in ``Task.meta``:

``category``     the task's application step (``mProject``, ``individuals``, ...).
``edge_bytes``   parent id -> bytes that flow along that dependency: the sizes of the
                 parent's output files that the child reads (0 when they share none).
``input_bytes``  bytes of the task's inputs that come from no parent (staged in).

Synthetic instances come from the ``wfcommons`` package's recipes (WfChef): the recipe
duplicates microstructures of a real base graph up to ``num_tasks`` and draws runtimes
and file sizes from fitted distributions.  Generation happens in memory; it draws from
both ``random`` and ``numpy.random``, so :func:`recipe_graph` seeds both (and restores
neither: callers that share those generators should reseed).  A recipe cannot shrink its
smallest base graph: asking for fewer tasks raises :class:`RecipeSizeError` naming the
recipe and its minimum.  ``num_tasks`` is an upper bound: a recipe may return a few
tasks fewer.  The RNASeq recipe produces no edges at all (independent tasks).

Nothing here runs tasks; the functions return :class:`~paragents.core.graph.TaskGraph`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ...core.errors import GraphError, ParagentsError
from ...core.graph import Task, TaskGraph

__all__ = [
    "PEGASUS_TRACES",
    "RECIPES",
    "RecipeSizeError",
    "load_trace",
    "parse_wfcommons",
    "pegasus_traces",
    "recipe_graph",
    "recipe_min_tasks",
]

#: Short name -> file name of each bundled Pegasus trace (``paragents/sim/data/pegasus``).
PEGASUS_TRACES: dict[str, str] = {
    "1000genome": "1000genome-chameleon-2ch-100k-001.json",
    "cycles": "cycles-chameleon-1l-1c-9p-001.json",
    "epigenomics": "epigenomics-chameleon-hep-1seq-100k-001.json",
    "montage": "montage-chameleon-2mass-005d-001.json",
    "seismology": "seismology-chameleon-100p-001.json",
    "soykb": "soykb-chameleon-10fastq-10ch-001.json",
    "srasearch": "srasearch-chameleon-10a-001.json",
}

#: Short name -> recipe class name in ``wfcommons.wfchef.recipes``.
RECIPES: dict[str, str] = {
    "blast": "BlastRecipe",
    "bwa": "BwaRecipe",
    "cycles": "CyclesRecipe",
    "epigenomics": "EpigenomicsRecipe",
    "1000genome": "GenomeRecipe",
    "montage": "MontageRecipe",
    "rnaseq": "RnaseqRecipe",
    "seismology": "SeismologyRecipe",
    "soykb": "SoykbRecipe",
    "srasearch": "SrasearchRecipe",
}


class RecipeSizeError(ParagentsError, ValueError):
    """A recipe was asked for fewer tasks than its smallest base graph has."""


# ------------------------------------------------------------------------ parsing
def _file_sets(files: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """``(inputs, outputs)``: file name -> size in bytes, for one task's ``files``."""
    inputs: dict[str, int] = {}
    outputs: dict[str, int] = {}
    for f in files:
        size = int(f.get("sizeInBytes", 0))
        if size < 0:
            raise GraphError(f"file {f.get('name')!r} has a negative size {size}")
        (outputs if f.get("link") == "output" else inputs)[str(f["name"])] = size
    return inputs, outputs


def parse_wfcommons(doc: Mapping[str, Any], *, source: str = "<document>") -> TaskGraph:
    """A task graph from a parsed WfCommons JSON document (schemaVersion 1.4)."""
    try:
        raw = doc["workflow"]["tasks"]
    except (KeyError, TypeError):
        raise GraphError(f"{source}: not a WfCommons instance (no workflow.tasks)") from None
    alias = {str(t["id"]): str(t["name"]) for t in raw if "id" in t}
    files = {str(t["name"]): _file_sets(t.get("files", ())) for t in raw}
    tasks = []
    for t in raw:
        name = str(t["name"])
        parents = tuple(dict.fromkeys(p if p in files else alias.get(p, p) for p in map(str, t.get("parents", ()))))
        inputs = files[name][0]
        edge_bytes = {}
        for p in parents:
            if p not in files:
                raise GraphError(f"{source}: task {name!r} names unknown parent {p!r}")
            edge_bytes[p] = sum(size for f, size in files[p][1].items() if f in inputs)
        from_parents = {f for p in parents for f in files[p][1]}
        meta = {
            "category": t.get("category", name),
            "edge_bytes": edge_bytes,
            "input_bytes": sum(size for f, size in inputs.items() if f not in from_parents),
        }
        tasks.append(Task(name, depends_on=parents, duration=float(t["runtimeInSeconds"]), meta=meta))
    return TaskGraph(tasks)


def pegasus_traces() -> list[str]:
    """The short names of the bundled Pegasus traces, sorted."""
    return sorted(PEGASUS_TRACES)


def load_trace(name_or_path: str | Path) -> TaskGraph:
    """A bundled trace by short name (see :func:`pegasus_traces`) or any WfCommons JSON file."""
    key = str(name_or_path)
    if key in PEGASUS_TRACES:
        ref = resources.files("paragents.sim").joinpath("data", "pegasus", PEGASUS_TRACES[key])
        return parse_wfcommons(json.loads(ref.read_text()), source=key)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(pegasus_traces())
        raise FileNotFoundError(f"no trace {key!r}: not a bundled trace ({known}) and not a file")
    return parse_wfcommons(json.loads(path.read_text()), source=str(path))


# ------------------------------------------------------------------------ recipes
def _recipe_class(name: str) -> Any:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    from wfcommons.wfchef import recipes

    return getattr(recipes, RECIPES[name])


def recipe_min_tasks(name: str) -> int:
    """The fewest tasks recipe ``name`` can generate: the order of its smallest base graph."""
    recipe = _recipe_class(name)(num_tasks=0)
    summary = json.loads((Path(recipe.this_dir) / "microstructures" / "summary.json").read_text())
    return min(int(g["order"]) for g in summary["base_graphs"].values())


def _workflow_graph(workflow: Any) -> TaskGraph:
    """Turn a ``wfcommons`` Workflow object into a task graph (ids in sorted order)."""
    wtasks = workflow.tasks
    tasks = []
    for tid in sorted(wtasks):
        wt = wtasks[tid]
        parents: Sequence[str] = sorted(workflow.tasks_parents.get(tid, ()))
        inputs = {f.file_id: f.size for f in wt.input_files}
        edge_bytes = {
            p: sum(f.size for f in wtasks[p].output_files if f.file_id in inputs) for p in parents
        }
        from_parents = {f.file_id for p in parents for f in wtasks[p].output_files}
        meta = {
            "category": wt.category or wt.name,
            "edge_bytes": edge_bytes,
            "input_bytes": sum(size for f, size in inputs.items() if f not in from_parents),
        }
        tasks.append(Task(tid, depends_on=tuple(parents), duration=float(wt.runtime), meta=meta))
    return TaskGraph(tasks)


def recipe_graph(name: str, num_tasks: int, *, seed: int = 0) -> TaskGraph:
    """A synthetic workflow from WfCommons recipe ``name`` with at most ``num_tasks`` tasks.

    Deterministic under ``seed`` (both ``random`` and ``numpy.random`` are seeded).
    """
    import numpy as np
    from wfcommons import WorkflowGenerator

    cls = _recipe_class(name)
    least = recipe_min_tasks(name)
    if num_tasks < least:
        raise RecipeSizeError(
            f"recipe {name!r} ({RECIPES[name]}) needs num_tasks >= {least} (its smallest base graph), "
            f"got {num_tasks}"
        )
    random.seed(seed)
    np.random.seed(seed)
    workflow = WorkflowGenerator(cls(num_tasks=num_tasks)).build_workflow(f"{name}-{num_tasks}-seed{seed}")
    return _workflow_graph(workflow)
