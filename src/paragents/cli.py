"""The ``paragents`` command line (a click app; ``main`` is the console script).

Theory of operation
-------------------
Commands are thin: they load a workflow (:mod:`paragents.workflow`), hand it to a driver
or to the analysis, and print through :mod:`paragents.render`, or, with ``--json``,
print exactly one JSON document on stdout and nothing else (the live progress view,
which otherwise goes to stderr, is off).

``paragents run TARGET``    run a workflow file, or plan and run a goal given in words
                            (:mod:`paragents.goal`); exit 0 when every task is done, 1
                            when some failed or were cancelled.
``paragents plan GOAL``     plan a goal and print the task graph; nothing runs.
``paragents graph FILE``    static analysis: critical path, slack, ranks, lower bound.
``paragents team``          print the default team, to copy and edit for ``--agents``.
``paragents dashboard``     serve the web dashboard of a run store (:mod:`paragents.dashboard`).

Errors a user can cause never end in a traceback: :func:`main` turns every
:class:`~paragents.core.errors.ParagentsError` (and an unreadable or malformed file) into
one line ``error: <message>`` on stderr and exit status 2 (so does an ``OSError`` while
writing output); Ctrl-C exits 130.  Usage
errors (an unknown option, a bad choice) are click's own, also with status 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from .core.budget import Budget
from .core.errors import ParagentsError, WorkflowError
from .core.events import Event
from .core.graph import TaskGraph
from .core.policies import ASSIGN_POLICIES, PRIORITY_POLICIES
from .core.report import build_report
from .core.scheduler import Scheduler
from .durable import (
    EventHook,
    Runner,
    RunSpec,
    aresume,
    arun_goal_recorded,
    arun_recorded,
    with_overrides,
)
from .goal import ANSWER_TASK, DEFAULT_TEAM, PLAN_TASK, GoalRun, arun_goal, planner_for
from .orchestration.commands import orchestrate_group
from .planner import Plan
from .render import (
    RunProgress,
    analyse_graph,
    render_analysis,
    render_plan,
    render_report,
    render_runs,
    render_serverless,
    render_simulation,
)
from .resources import ALLOCATORS
from .runtime import driver
from .sim.scenarios import build_scenario, describe, run_scenario
from .sim.serverless import run_serverless
from .store import RunStore, check_run, open_store, resumable
from .telemetry.tracing import RunTracer, tracer_provider_from_env
from .workflow import (
    BACKEND_OVERRIDES,
    AgentConfig,
    Workflow,
    load_agents,
    load_workflow,
)

__all__ = ["cli", "main"]

#: Exit status for errors the user can fix (bad file, bad graph, bad option).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

_YAML_SUFFIXES = (".yaml", ".yml")


def _workflow_file(target: str) -> Path | None:
    """``target`` as a workflow file path; None when it is a free-text goal."""
    path = Path(target)
    if path.is_file():
        return path
    if path.exists():
        raise WorkflowError(f"{target!r} is not a file; pass a workflow YAML file or a goal")
    if path.suffix.lower() in _YAML_SUFFIXES or (("/" in target or "\\" in target) and " " not in target):
        raise WorkflowError(f"no such workflow file: {target!r}")
    return None


def _team(agents_file: Path | None, backend: str | None) -> AgentConfig:
    """The agents of a goal run: ``--agents FILE`` or the bundled default team."""
    if agents_file is not None:
        return load_agents(agents_file, backend_override=backend)
    return load_agents(DEFAULT_TEAM.read_text(encoding="utf-8"), backend_override=backend)


def _openai_env(base_url: str | None, model: str | None, api_key: str | None) -> None:
    """``--base-url`` / ``--model`` / ``--api-key`` for this process's OpenAI backends."""
    for name, value in (
        ("PARAGENTS_OPENAI_BASE_URL", base_url),
        ("PARAGENTS_OPENAI_MODEL", model),
        ("OPENAI_API_KEY", api_key),
    ):
        if value is not None:
            os.environ[name] = value


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
_store_option = click.option(
    "--store",
    "store_url",
    metavar="PATH|URL",
    help="Run store: a SQLite file, sqlite:///PATH or postgresql://... (default: runs.db in the user's data directory).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else.")


def _goal_options(f: Any) -> Any:
    """Options of the commands that plan a goal."""
    for option in reversed(
        [
            click.option("--max-tasks", default=6, show_default=True, help="Most tasks in a plan."),
            click.option("--base-url", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1."),
            click.option("--model", help="Model name at --base-url."),
            click.option("--api-key", help="API key at --base-url (default: $OPENAI_API_KEY)."),
        ]
    ):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="paragents", prog_name="paragents")
def cli() -> None:
    """Run LLM multi-agent systems as dynamic task graphs."""


@cli.command("run")
@click.argument("target")
@click.option(
    "--backend",
    type=click.Choice(sorted(BACKEND_OVERRIDES)),
    help="Replace every agent's backend: local (bundled model), openai (--base-url), sim (simulated).",
)
@_agents_option
@click.option("--priority", type=click.Choice(sorted(PRIORITY_POLICIES)), help="Priority policy (overrides the file).")
@click.option("--assign", type=click.Choice(sorted(ASSIGN_POLICIES)), help="Assignment policy (overrides the file).")
@click.option("--seed", type=int, help="Scheduler seed (overrides the file).")
@_goal_options
@click.option("--max-tokens", type=int, help="Budget: stop the run once this many tokens are used.")
@click.option("--max-cost", type=float, help="Budget: stop the run once it has cost this much.")
@click.option("--max-dispatches", type=int, help="Budget: dispatch at most this many task attempts.")
@click.option("--deadline", type=float, metavar="SECONDS", help="Budget: stop the run after this many seconds.")
@_store_option
@click.option("--no-store", is_flag=True, help="Do not record the run (it cannot be shown or resumed later).")
@click.option("--run-id", help="The run's id in the store (default: a new random id).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the tasks run: this process (asyncio), or a Ray cluster (workflow runs only).")
@click.option("--ray-address", metavar="ADDR", help="Ray cluster to run on with --executor ray (default: start a local one).")
@click.option("--dashboard", "with_dashboard", is_flag=True,
              help="Serve the dashboard of the run's store on 127.0.0.1 while it runs, and print its URL.")
@_json_option
def run_command(
    target: str,
    backend: str | None,
    agents_file: Path | None,
    priority: str | None,
    assign: str | None,
    seed: int | None,
    max_tasks: int,
    base_url: str | None,
    model: str | None,
    api_key: str | None,
    max_tokens: int | None,
    max_cost: float | None,
    max_dispatches: int | None,
    deadline: float | None,
    store_url: str | None,
    no_store: bool,
    run_id: str | None,
    with_dashboard: bool,
    executor: str,
    ray_address: str | None,
    as_json: bool,
) -> int:
    """Run TARGET: a workflow YAML file, or a goal in plain words.

    A goal is planned into a task graph by the team's planner (streamed: tasks start as
    they are planned), run in parallel on the team (the bundled local model by default,
    `--agents` for your own team) and merged into one answer.

    Exit status: 0 when every task is done, 1 when some failed or were cancelled,
    2 for an invalid workflow or option.
    """
    _openai_env(base_url, model, api_key)
    limits = {"max_tokens": max_tokens, "max_cost": max_cost, "max_tasks": max_dispatches, "deadline_s": deadline}
    budget = {k: v for k, v in limits.items() if v is not None} or None
    if budget is not None:
        Budget(**budget)  # refuse a bad limit before anything runs
    if with_dashboard and no_store:
        raise ParagentsError("--dashboard shows the run from its store: it cannot go with --no-store")
    store = None if no_store else open_store(store_url)
    if with_dashboard:
        _start_dashboard(store_url)
    path = _workflow_file(target)
    if path is None:
        if executor == "ray":
            raise click.UsageError("--executor ray runs workflow files; goal runs use the local executor")
        return _run_goal(target, backend, agents_file, priority, assign, seed, max_tasks, as_json, store, run_id, budget)
    spec = RunSpec(
        "workflow",
        path.read_text(encoding="utf-8"),
        str(path),
        agents=agents_file.read_text(encoding="utf-8") if agents_file is not None else None,
        backend=backend,
        priority=priority,
        assign=assign,
        seed=seed,
        budget=budget,
    )
    workflow = with_overrides(_load(path, backend, agents_file), spec)

    def go(hook: EventHook | None) -> driver.RunResult:
        with _executor(executor, ray_address) as runner:
            if store is None:
                return asyncio.run(runner(workflow.graph, workflow.agents, on_event=hook, **workflow.run_options()))
            return asyncio.run(arun_recorded(workflow, spec, store, run_id=run_id, on_event=hook, runner=runner))

    result = _with_progress(go, workflow.name, as_json)
    return _print_run(result, workflow.name, as_json)


def _start_dashboard(store_url: str | None) -> None:
    """Serve the dashboard of ``store_url`` from a background thread for as long as this
    process lives, and say where (on stderr: stdout may be the ``--json`` document)."""
    from .dashboard import BackgroundServer

    server = BackgroundServer(store_url=store_url).start()
    click.echo(f"dashboard: {server.url}", err=True)


def _executor(executor: str, ray_address: str | None) -> AbstractContextManager[Runner]:
    """The ``arun`` of the chosen executor, for a ``with`` block (Ray: connected for it)."""
    if executor == "local":
        return nullcontext(driver.arun)
    try:
        from .distributed import session  # Ray is an optional extra
    except ImportError as exc:
        raise click.UsageError(f"--executor ray needs Ray: pip install 'paragents[ray]' ({exc})") from None
    return session(ray_address)


def _with_progress(go: Callable[[EventHook | None], driver.RunResult], title: str, quiet: bool) -> driver.RunResult:
    """Run ``go`` with the live progress view on stderr (unless ``quiet``) and, when an
    OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``), its spans exported."""
    provider = tracer_provider_from_env()
    tracer = RunTracer(title, tracer_provider=provider) if provider is not None else None
    try:
        if quiet:
            return go(tracer.on_event if tracer is not None else None)
        with RunProgress(Console(stderr=True), title=title) as progress:
            if tracer is None:
                return go(progress.on_event)

            def both(event: Event, scheduler: Scheduler) -> None:
                progress.on_event(event, scheduler)
                tracer.on_event(event, scheduler)

            return go(both)
    finally:
        if tracer is not None and provider is not None:
            tracer.close()
            provider.shutdown()


def _print_run(result: driver.RunResult, name: str, as_json: bool) -> int:
    """The report of a workflow run; exit 0 when every task is done, else 1."""
    report = result.report
    if as_json:
        doc = report.to_dict()
        doc["workflow"] = name
        doc["results"] = result.results
        doc["errors"] = result.errors
        _dump(doc)
    else:
        title = f"{name}: run {result.run_id}"
        render_report(report, Console(), answer=result.answer, errors=result.errors, title=title)
    return 0 if report.tasks.get("done", 0) == report.tasks.get("total", 0) else 1


def _run_goal(
    goal: str,
    backend: str | None,
    agents_file: Path | None,
    priority: str | None,
    assign: str | None,
    seed: int | None,
    max_tasks: int,
    as_json: bool,
    store: RunStore | None,
    run_id: str | None,
    budget: dict[str, float] | None,
) -> int:
    team = _team(agents_file, backend)
    run_id = run_id or uuid.uuid4().hex[:12]
    options: dict[str, Any] = {
        "limits": team.limits,
        "max_tasks": max_tasks,
        "priority": priority or "critical_path",
        "assign": assign or "earliest_finish",
        "seed": seed or 0,
        "budget": Budget(**budget) if budget else None,
    }
    spec = RunSpec("goal", goal, agents=agents_file.read_text(encoding="utf-8") if agents_file else None,
                   backend=backend, priority=priority, assign=assign, seed=seed, budget=budget)

    def go(hook: EventHook | None) -> GoalRun:
        if store is None:
            return asyncio.run(arun_goal(goal, team.agents, run_id=run_id, on_event=hook, **options))
        recorded = arun_goal_recorded(goal, team.agents, spec, store, run_id=run_id, on_event=hook, **options)
        return asyncio.run(recorded)

    try:
        if as_json:
            run = go(None)
        else:
            with RunProgress(Console(stderr=True), title="goal") as progress:
                run = go(progress.on_event)
    finally:
        asyncio.run(_close(team))
    result, report = run.result, run.result.report
    answer = result.results.get(ANSWER_TASK)
    if as_json:
        doc = report.to_dict()
        doc["answer"] = answer
        doc["goal"] = goal
        doc["plan"] = run.plan.to_dict() if run.plan is not None else None
        doc["planner"] = {
            "attempts": run.planner.stats.attempts,
            "first_try_valid": run.planner.stats.first_try_valid,
            "repaired": run.planner.stats.repaired,
        }
        doc["results"] = result.results
        doc["errors"] = result.errors
        _dump(doc)
    else:
        console = Console()
        if run.plan is not None:
            render_plan(run.plan, console)
        render_report(report, console, answer=answer, errors=result.errors, title=f"goal: run {result.run_id}")
    if PLAN_TASK in result.errors:
        click.echo(f"error: planning failed: {result.errors[PLAN_TASK]}", err=True)
    return 0 if report.tasks.get("done", 0) == report.tasks.get("total", 0) else 1


async def _close(team: AgentConfig) -> None:
    for backend in {id(a.backend): a.backend for a in team.agents if a.backend is not None}.values():
        await backend.aclose()


@cli.command("plan")
@click.argument("goal")
@click.option("--backend", type=click.Choice(sorted(BACKEND_OVERRIDES)), help="Replace the planner's backend.")
@_agents_option
@_goal_options
@_json_option
def plan_command(
    goal: str,
    backend: str | None,
    agents_file: Path | None,
    max_tasks: int,
    base_url: str | None,
    model: str | None,
    api_key: str | None,
    as_json: bool,
) -> int:
    """Plan GOAL into a task graph with the team's planner and print it (nothing runs)."""
    _openai_env(base_url, model, api_key)
    team = _team(agents_file, backend)
    _, planner = planner_for(team.agents, max_tasks=max_tasks)

    async def plan() -> Plan:
        try:
            return await planner.plan(goal)
        finally:
            await _close(team)

    result = asyncio.run(plan())
    stats = planner.stats
    if as_json:
        _dump(
            {
                "goal": goal,
                **result.to_dict(),
                "attempts": stats.attempts,
                "first_try_valid": stats.first_try_valid,
                "repaired": stats.repaired,
            }
        )
    else:
        render_plan(result, Console())
    return 0


@cli.command("team")
def team_command() -> int:
    """Print the default team (agents and backends) as YAML, to copy and edit for --agents."""
    click.echo(DEFAULT_TEAM.read_text(encoding="utf-8"), nl=False)
    return 0


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


@cli.group("runs")
def runs_group() -> None:
    """Recorded runs: list, show, resume after a crash, check the log's consistency."""


@runs_group.command("list")
@_store_option
@click.option("--limit", default=20, show_default=True, help="Most runs to list, newest first.")
@_json_option
def runs_list(store_url: str | None, limit: int, as_json: bool) -> int:
    """List the store's runs, newest first."""
    with open_store(store_url) as store:
        runs = store.list_runs(limit)
    if as_json:
        _dump({"store": store.url, "runs": [asdict(r) for r in runs]})
    else:
        render_runs(runs, Console(), title=f"runs in {store.url}")
    return 0


@runs_group.command("show")
@click.argument("run_id")
@_store_option
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML report (task graph, Gantt, numbers) to this file.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the Gantt chart (tasks per agent over time) to this PNG file.")
@_json_option
def runs_show(run_id: str, store_url: str | None, html_path: Path | None, png_path: Path | None,
              as_json: bool) -> int:
    """Show one run: its status, report and the state of every task."""
    with open_store(store_url) as store:
        stored = store.load_run(run_id)
    if html_path is not None or png_path is not None:
        from .dashboard import html_report, png_gantt

        if html_path is not None:
            html_path.write_text(html_report(stored), encoding="utf-8")
        if png_path is not None:
            png_gantt(stored, png_path)
    graph = TaskGraph([rec.task for rec in stored.tasks])
    report = build_report(stored.events, graph, run_id=run_id)
    if as_json:
        doc = report.to_dict()
        doc.update(
            status=stored.status,
            stop_reason=stored.stop_reason,
            spec=stored.spec,
            results={tid: r.result for tid, r in stored.results.items()},
            task_states={t: timing.state for t, timing in report.timings.items()},
        )
        _dump(doc)
    else:
        title = f"{stored.name}: run {run_id} ({stored.status}, {time.strftime('%Y-%m-%d %H:%M', time.localtime(stored.created_at))})"
        render_report(report, Console(), title=title)
    return 0


@runs_group.command("resume")
@click.argument("run_id")
@_store_option
@_json_option
def runs_resume(run_id: str, store_url: str | None, as_json: bool) -> int:
    """Resume RUN_ID: tasks that finished keep their results and never run again; the
    rest run now, under the same run id, continuing its log."""
    with open_store(store_url) as store:
        result = _with_progress(lambda hook: asyncio.run(aresume(store, run_id, on_event=hook)), run_id, as_json)
    return _print_run(result, run_id, as_json)


@runs_group.command("check")
@click.argument("run_id")
@_store_option
@_json_option
def runs_check(run_id: str, store_url: str | None, as_json: bool) -> int:
    """Check RUN_ID's log: every dispatched task ended or can be resumed, no result
    without its finish, a contiguous log, a known and acyclic graph.  Exit 1 on a problem."""
    with open_store(store_url) as store:
        stored = store.load_run(run_id)
    problems, pending = check_run(stored), resumable(stored)
    if as_json:
        _dump({"run_id": run_id, "status": stored.status, "consistent": not problems, "problems": problems,
               "resumable": pending})
    else:
        for p in problems:
            click.echo(f"problem: {p}")
        for p in pending:
            click.echo(f"resumable: {p}")
        if not problems:
            click.echo(f"run {run_id} ({stored.status}): consistent")
    return 1 if problems else 0


@cli.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", default=8765, show_default=True, help="Port to listen on.")
@_store_option
@click.option("--token", envvar="PARAGENTS_DASHBOARD_TOKEN",
              help="Require this token on every request (header or ?token=); default: $PARAGENTS_DASHBOARD_TOKEN.")
def dashboard_command(host: str, port: int, store_url: str | None, token: str | None) -> int:
    """Serve the web dashboard of a run store: every run, one run live (task graph,
    Gantt, utilisation, latency split, tokens and cost, adaptations), and /metrics."""
    from .dashboard import serve
    from .dashboard.server import check_bind, url_of

    check_bind(host, token)
    click.echo(f"dashboard: {url_of(host, port, token)}  (Ctrl-C stops it)", err=True)
    serve(host, port, store_url, token)
    return 0


@cli.command("simulate")
@click.argument("workload")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Workload or latency parameter (repeatable), e.g. -p rate=0.5 -p server=shared.")
@click.option("--agents", "n_agents", default=4, show_default=True, help="Number of generalist agents.")
@click.option("--speeds", help="Comma-separated agent speeds, e.g. 1,1,2,2,4,4,8,8 (overrides --agents).")
@click.option("--priority", type=click.Choice(sorted(PRIORITY_POLICIES)), help="Priority policy.")
@click.option("--assign", type=click.Choice(sorted(ASSIGN_POLICIES)), help="Assignment policy.")
@click.option("--allocator", help="GPU share allocator (serverless workload): " + ", ".join(sorted(ALLOCATORS)) + ".")
@click.option("--seed", default=0, show_default=True, help="Seed of every random draw.")
@_json_option
def simulate_command(
    workload: str,
    params: tuple[str, ...],
    n_agents: int,
    speeds: str | None,
    priority: str | None,
    assign: str | None,
    allocator: str | None,
    seed: int,
    as_json: bool,
) -> int:
    """Run WORKLOAD in the discrete-event simulator (virtual time, the real scheduler).

    WORKLOAD: simple | medium | complex (one travel request), stream (a Poisson stream of
    them), layered (random layered DAG), pegasus:NAME (a bundled Pegasus trace:
    1000genome, cycles, epigenomics, montage, seismology, soykb, srasearch), recipe:NAME
    (a WfCommons recipe), a WfCommons FILE.json, a workflow FILE.yaml, or serverless
    (four agents sharing one GPU under --allocator).  An unknown parameter (-p) is
    refused with the list of those the workload takes.
    """
    if workload == "serverless":
        return _simulate_serverless(params, allocator or "adaptive", seed, as_json)
    if allocator is not None:
        raise ParagentsError("--allocator applies to the serverless workload only")
    speed_list = _speeds(speeds)
    scenario = build_scenario(workload, params, agents=n_agents, speeds=speed_list)
    result = run_scenario(scenario, priority=priority, assign=assign, seed=seed)
    doc = {**describe(scenario), **result.to_dict()}
    if as_json:
        _dump(doc)
    else:
        console = Console()
        render_report(result.report, console, title=f"simulated {workload} (seed {seed})")
        render_simulation(doc, console)
    return 0


def _speeds(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise ParagentsError(f"--speeds {text!r} is not a comma-separated list of numbers") from None
    if any(v <= 0 for v in values):
        raise ParagentsError(f"--speeds {text!r}: every speed must be > 0")
    return values


def _simulate_serverless(params: Sequence[str], allocator: str, seed: int, as_json: bool) -> int:
    options = {"load": 0.8, "duration": 60.0}
    for pair in params:
        key, sep, value = pair.partition("=")
        if key not in options or not sep:
            raise ParagentsError(f"serverless takes -p load=X and -p duration=SECONDS, not {pair!r}")
        try:
            options[key] = float(value)
        except ValueError:
            raise ParagentsError(f"parameter {pair!r}: {value!r} is not a number") from None
    result = run_serverless(allocator, load=options["load"], seed=seed, duration_s=options["duration"])
    doc = result.to_dict()
    if as_json:
        _dump(doc)
    else:
        render_serverless(doc, Console())
    return 0


@cli.command("bench", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@_json_option
def bench_command(name: str, args: tuple[str, ...], as_json: bool) -> int:
    """Run the benchmark NAME from the repository's benchmarks/ folder (extra ARGS are
    passed on, e.g. --quick).  It prints its table (or, with --json, its JSON document)
    and writes its results to benchmarks/results/."""
    folder = _benchmarks_folder()
    names = sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))
    if name not in names:
        raise ParagentsError(f"unknown benchmark {name!r} (choose from {', '.join(names)})")
    argv = [sys.executable, str(folder / f"{name}.py"), *args, *(["--json"] if as_json else [])]
    return subprocess.run(argv, check=False).returncode


cli.add_command(orchestrate_group)


def _benchmarks_folder() -> Path:
    """benchmarks/ of the source checkout paragents runs from, or of the current directory."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / "benchmarks" / "_common.py").is_file():
            return root / "benchmarks"
    raise ParagentsError("no benchmarks/ folder: run from a paragents source checkout")


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
