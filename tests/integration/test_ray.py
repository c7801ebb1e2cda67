"""The Ray driver on real Ray: a local instance, and a two-node cluster on this machine.

Each class shares one Ray instance among its tests (started in a class-scoped fixture,
shut down after), so the whole module starts Ray twice.  Every Ray process listens on
127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from click.testing import CliRunner
from ray.cluster_utils import Cluster

from paragents.agents import Agent
from paragents.backends.simulated import SimulatedBackend
from paragents.cli import cli
from paragents.core.graph import Task, TaskGraph
from paragents.distributed import RayRuntime
from paragents.runtime import driver as local
from paragents.store import open_store
from paragents.workflow import load_workflow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "research_report.yaml"

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _dispatch_order_respects_inputs(result: local.RunResult) -> None:
    """Every dispatch of a task came after every one of its inputs had finished."""
    finished: dict[str, float] = {}
    for e in result.events:
        if e.kind == "finished":
            finished.setdefault(e.task, e.time)
        elif e.kind == "dispatched":
            for p in result.graph.predecessors(e.task):
                assert p in finished and finished[p] <= e.time, (
                    f"{e.task} dispatched before its input {p} finished"
                )


def _layered(n_layers: int, width: int, agents: int) -> tuple[TaskGraph, list[Agent]]:
    """``n_layers`` of ``width`` LLM tasks, each depending on two of the layer before."""
    backend = SimulatedBackend(ttft_s=0.15, tokens_per_s=2000, jitter=0.0, seed=3)
    tasks = []
    for layer in range(n_layers):
        for i in range(width):
            deps = (
                ()
                if layer == 0
                else (f"t{layer - 1}_{i}", f"t{layer - 1}_{(i + 1) % width}")
            )
            tasks.append(
                Task(
                    f"t{layer}_{i}",
                    prompt=f"step {layer} part {i}",
                    depends_on=deps,
                    duration=0.15,
                )
            )
    team = [Agent(f"a{i}", backend=backend, slots=1) for i in range(agents)]
    return TaskGraph(tasks), team


class TestLocalRay:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def local_ray(cls) -> Iterator[None]:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield
        ray.shutdown()

    def test_workflow_gives_the_asyncio_runtimes_results_in_dependency_order(
        self,
    ) -> None:
        flow = load_workflow(EXAMPLE, backend_override="sim")
        on_ray = asyncio.run(
            RayRuntime(flow.graph, flow.agents, **flow.run_options()).run()
        )
        flow = load_workflow(EXAMPLE, backend_override="sim")
        here = local.run(flow.graph, flow.agents, **flow.run_options())
        assert on_ray.errors == {}
        assert on_ray.results == here.results
        assert on_ray.answer == here.answer
        _dispatch_order_respects_inputs(on_ray)
        report = on_ray.report.to_dict()
        assert report["tasks"]["done"] == report["tasks"]["total"] == len(flow.graph)
        # Completion tokens are fixed by the tasks; prompt tokens depend on what the run's
        # context store held at each dispatch, which timing decides on either runtime.
        assert (
            report["tokens"]["completion"]
            == here.report.to_dict()["tokens"]["completion"]
        )
        nodes = {e.data["node"] for e in on_ray.events if e.kind == "finished"}
        assert nodes == {ray.get_runtime_context().get_node_id()}

    def test_callables_and_remote_tool_tasks_run_on_the_cluster(self) -> None:
        def double(ctx: local.TaskContext) -> int:
            return 2 * sum(ctx.inputs.values())

        async def one() -> int:
            return 1

        graph = TaskGraph(
            [
                Task("one", action=one),
                Task(
                    "heavy",
                    depends_on=("one",),
                    action=double,
                    meta={"ray": {"num_cpus": 1}},
                ),
                Task("again", depends_on=("heavy",), action=double),
            ]
        )
        result = asyncio.run(RayRuntime(graph, [Agent("tool", slots=2)]).run())
        assert result.results == {"one": 1, "heavy": 2, "again": 4}

    def test_cli_runs_a_workflow_on_ray_and_records_it(self, tmp_path: Path) -> None:
        store = tmp_path / "runs.db"
        args = [
            "run",
            str(EXAMPLE),
            "--backend",
            "sim",
            "--executor",
            "ray",
            "--json",
            "--store",
            str(store),
        ]
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 0, out.output
        doc = json.loads(out.output)
        assert doc["tasks"]["done"] == doc["tasks"]["total"] == 13
        stored = open_store(str(store)).load_run(doc["run_id"])
        assert len(stored.results) == 13
        assert [e.kind for e in stored.events][:1] == ["started"]

    def test_cli_refuses_a_goal_on_ray(self) -> None:
        out = CliRunner().invoke(
            cli, ["run", "plan a trip", "--executor", "ray", "--no-store", "--json"]
        )
        assert out.exit_code == 2
        assert "--executor ray runs workflow files" in out.output


@ray.remote(num_cpus=1)
def _node_of_a_short_task() -> str:
    time.sleep(0.1)  # overlap with its twin, so that one CPU per node forces two nodes
    return ray.get_runtime_context().get_node_id()


def _wait_until_both_nodes_take_work(timeout_s: float = 30.0) -> None:
    """Block until two one-CPU tasks run on two different nodes: the cluster is whole
    before the tests measure where work runs (``wait_for_nodes`` only says the second
    node registered)."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = set(ray.get([_node_of_a_short_task.remote() for _ in range(2)]))
        if len(nodes) == 2:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the second node took no work within {timeout_s:g} s")


class TestTwoNodes:
    @pytest.fixture(scope="class")
    @classmethod
    def cluster(cls) -> Iterator[Cluster]:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False},
        )
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        _wait_until_both_nodes_take_work()
        yield cluster
        ray.shutdown()
        cluster.shutdown()

    def test_tasks_run_on_both_nodes(self, cluster: Cluster) -> None:
        graph, team = _layered(3, 6, 6)
        placed: dict[str, str] = {}

        def note_placement(event: Any, scheduler: Any) -> None:
            if not placed:
                placed.update(runtime.nodes())

        runtime = RayRuntime(graph, team, on_event=note_placement)
        result = asyncio.run(runtime.run())
        assert result.errors == {}
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        # The driver spreads the six actors (no CPU reserved) three and three.
        assert sorted(Counter(placed.values()).values()) == [3, 3]
        assert set(placed.values()) == alive
        nodes = {e.data["node"] for e in result.events if e.kind == "finished"}
        assert nodes == alive
        assert len(nodes) == 2
        _dispatch_order_respects_inputs(result)

    def test_removing_a_node_mid_run_still_completes_the_run(
        self, cluster: Cluster
    ) -> None:
        graph, team = _layered(6, 6, 6)
        worker = next(n for n in cluster.worker_nodes)
        removed = threading.Event()

        def on_event(event: Any, _sched: Any) -> None:
            if (
                removed.is_set()
                or event.kind != "dispatched"
                or not event.task.startswith("t2_")
            ):
                return
            removed.set()  # the third layer is on its way: take the worker node away
            threading.Thread(target=cluster.remove_node, args=(worker,)).start()

        result = asyncio.run(RayRuntime(graph, team, on_event=on_event).run())
        assert removed.is_set()
        report = result.report.to_dict()
        assert report["tasks"]["done"] == report["tasks"]["total"] == len(graph)
        assert result.errors == {}
        kinds = [e.kind for e in result.events]
        assert "agent_removed" in kinds and "requeued" in kinds
        assert len({e.data["node"] for e in result.events if e.kind == "finished"}) == 2
        _dispatch_order_respects_inputs(result)
