"""The ``paragents`` command line (a click app; ``main`` is the console script).

Theory of operation
-------------------
Commands are thin: they load a workflow (:mod:`paragents.workflow`), hand it to a driver
or to the analysis, and print through :mod:`paragents.render`, or, with ``--json``,
print exactly one JSON document on stdout and nothing else (the live progress view,
which otherwise goes to stderr, is off).

``paragents run TARGET``    run a workflow file on the asyncio runtime; exit 0 when every
                            task is done, 1 when some failed or were cancelled.
``paragents graph FILE``    static analysis: critical path, slack, ranks, lower bound.

Errors a user can cause never end in a traceback: :func:`main` turns every
:class:`~paragents.core.errors.ParagentsError` (and an unreadable or malformed file) into
one line ``error: <message>`` on stderr and exit status 2 (so does an ``OSError`` while
writing output); Ctrl-C exits 130.  Usage
errors (an unknown option, a bad choice) are click's own, also with status 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from .core.errors import ParagentsError, WorkflowError
from .core.policies import ASSIGN_POLICIES, PRIORITY_POLICIES
from .render import RunProgress, analyse_graph, render_analysis, render_report
from .runtime import driver
from .workflow import BACKEND_OVERRIDES, Workflow, load_agents, load_workflow

__all__ = ["cli", "main"]

#: Exit status for errors the user can fix (bad file, bad graph, bad option).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

_YAML_SUFFIXES = (".yaml", ".yml")


def _workflow_file(target: str) -> Path:
    """``target`` as a workflow file path, or a WorkflowError saying why it is not one."""
    path = Path(target)
    if path.is_file():
        return path
    if path.exists():
        raise WorkflowError(f"{target!r} is not a file; pass a workflow YAML file")
    if path.suffix.lower() in _YAML_SUFFIXES or "/" in target or "\\" in target:
        raise WorkflowError(f"no such workflow file: {target!r}")
    raise WorkflowError(
        f"{target!r} is not a workflow file; running a free-text goal needs the planner, "
        "which this version does not have yet: pass a workflow YAML file (see examples/)"
    )


def _load(path: Path, backend: str | None, agents_file: Path | None) -> Workflow:
    team = load_agents(agents_file, backend_override=backend) if agents_file is not None else None
    return load_workflow(path, backend_override=backend, agents=team)


def _dump(doc: dict[str, Any]) -> None:
    """The one JSON document of a ``--json`` command; values JSON cannot hold become strings."""
    click.echo(json.dumps(doc, indent=2, default=str))


_agents_option = click.option(
    "--agents",
    "agents_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Agents YAML file (backends: + agents:) replacing the workflow's own agents.",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="paragents", prog_name="paragents")
def cli() -> None:
    """Run LLM multi-agent systems as dynamic task graphs."""


@cli.command("run")
@click.argument("target")
@click.option(
    "--backend",
    type=click.Choice(sorted(BACKEND_OVERRIDES)),
    help="Replace every agent's backend (sim: simulated, no model needed).",
)
@_agents_option
@click.option("--priority", type=click.Choice(sorted(PRIORITY_POLICIES)), help="Priority policy (overrides the file).")
@click.option("--assign", type=click.Choice(sorted(ASSIGN_POLICIES)), help="Assignment policy (overrides the file).")
@click.option("--seed", type=int, help="Scheduler seed (overrides the file).")
@_json_option
def run_command(
    target: str,
    backend: str | None,
    agents_file: Path | None,
    priority: str | None,
    assign: str | None,
    seed: int | None,
    as_json: bool,
) -> int:
    """Run the workflow in TARGET (a workflow YAML file) and report on it.

    Exit status: 0 when every task is done, 1 when some failed or were cancelled,
    2 for an invalid workflow or option.
    """
    workflow = _load(_workflow_file(target), backend, agents_file)
    overrides = {"priority": priority, "assign": assign, "seed": seed}
    workflow = replace(workflow, **{k: v for k, v in overrides.items() if v is not None})
    options = workflow.run_options()
    if as_json:
        result = driver.run(workflow.graph, workflow.agents, **options)
    else:
        with RunProgress(Console(stderr=True), title=workflow.name) as progress:
            result = driver.run(workflow.graph, workflow.agents, on_event=progress.on_event, **options)
    report = result.report
    if as_json:
        doc = report.to_dict()
        doc["workflow"] = workflow.name
        doc["results"] = result.results
        doc["errors"] = result.errors
        _dump(doc)
    else:
        title = f"{workflow.name}: run {result.run_id}"
        render_report(report, Console(), answer=result.answer, errors=result.errors, title=title)
    return 0 if report.tasks.get("done", 0) == report.tasks.get("total", 0) else 1


@cli.command("graph")
@click.argument("workflow_file", metavar="WORKFLOW")
@_agents_option
@_json_option
def graph_command(workflow_file: str, agents_file: Path | None, as_json: bool) -> int:
    """Analyse the task graph of WORKFLOW before running it.

    Prints the critical path and its length, the lower bound on the makespan for the
    workflow's agents, and per task its duration, earliest and latest start, slack,
    upward rank and whether it is critical.
    """
    workflow = _load(Path(workflow_file), None, agents_file)
    speeds = [a.speed for a in workflow.agents for _ in range(a.slots)]
    if as_json:
        _dump({"workflow": workflow.name, **analyse_graph(workflow.graph, speeds)})
    else:
        render_analysis(workflow.graph, Console(), speeds, title=f"{workflow.name}: task graph")
    return 0


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {' '.join(message.splitlines())}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``paragents`` console script."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="paragents", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ParagentsError as exc:
        _fail(str(exc), EXIT_USAGE)
    except OSError as exc:  # files are read by the loader; this is output (a closed pipe, a full disk)
        _fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else 0)
