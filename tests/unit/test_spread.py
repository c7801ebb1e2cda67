"""The Ray driver's own spreading of actors over nodes (no cluster: node listings as data)."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("ray")

from paragents.distributed.actors import Placement
from paragents.distributed.spread import Spreader


def _listing(
    *nodes: tuple[str, dict[str, float]], dead: tuple[str, ...] = ()
) -> list[dict]:
    rows = [{"NodeID": i, "Alive": True, "Resources": r} for i, r in nodes]
    rows += [{"NodeID": i, "Alive": False, "Resources": {"CPU": 64.0}} for i in dead]
    return rows


def _spreader(
    *nodes: tuple[str, dict[str, float]], dead: tuple[str, ...] = ()
) -> Spreader:
    spreader = Spreader()
    spreader.refresh(_listing(*nodes, dead=dead))
    return spreader


def test_actors_that_reserve_nothing_alternate_over_the_nodes() -> None:
    spreader = _spreader(("head", {"CPU": 1.0}), ("w1", {"CPU": 1.0}))
    picks = [spreader.pick(Placement()) for _ in range(6)]
    assert picks == ["head", "w1"] * 3


def test_dead_nodes_are_never_picked() -> None:
    spreader = _spreader(("a", {"CPU": 2.0}), dead=("b",))
    assert {spreader.pick(Placement()) for _ in range(5)} == {"a"}


def test_a_node_with_room_left_is_preferred() -> None:
    spreader = _spreader(("small", {"CPU": 1.0}), ("big", {"CPU": 4.0}))
    picks = [spreader.pick(Placement(num_cpus=1.0)) for _ in range(5)]
    # The first goes to the node with the most CPUs left, then the least loaded with room.
    assert picks == ["big", "small", "big", "big", "big"]
    # Nothing has room now: the actor goes where it could run at all, to the least loaded.
    assert spreader.pick(Placement(num_cpus=1.0)) == "small"


def test_gpu_actors_go_only_where_there_is_a_gpu() -> None:
    spreader = _spreader(("cpu", {"CPU": 8.0}), ("gpu", {"CPU": 8.0, "GPU": 1.0}))
    assert spreader.pick(Placement(num_gpus=0.5)) == "gpu"
    assert spreader.pick(Placement(num_gpus=0.5)) == "gpu"
    assert spreader.pick(Placement()) == "cpu"


def test_no_node_can_ever_hold_it_means_no_pick() -> None:
    spreader = _spreader(("a", {"CPU": 2.0}))
    assert spreader.pick(Placement(num_gpus=1.0)) is None
    assert spreader.pick(Placement(resources={"tpu": 1.0})) is None
    assert spreader.actors == {}


def test_release_gives_the_reservation_back() -> None:
    spreader = _spreader(("a", {"CPU": 1.0}), ("b", {"CPU": 1.0}))
    first = spreader.pick(Placement(num_cpus=1.0))
    second = spreader.pick(Placement(num_cpus=1.0))
    assert {first, second} == {"a", "b"}
    spreader.release(first, Placement(num_cpus=1.0))
    assert spreader.pick(Placement(num_cpus=1.0)) == first


def test_a_replacement_after_a_node_dies_goes_to_a_live_node() -> None:
    spreader = _spreader(("a", {"CPU": 1.0}), ("b", {"CPU": 1.0}))
    placed = [spreader.pick(Placement()) for _ in range(4)]
    assert placed.count("b") == 2
    spreader.release("b", Placement())
    spreader.refresh(_listing(("a", {"CPU": 1.0}), dead=("b",)))
    assert spreader.pick(Placement()) == "a"


def test_demand_uses_rays_resource_names_and_drops_zeros() -> None:
    assert Placement(num_cpus=2.0, resources={"accel": 1.0}).demand() == {
        "CPU": 2.0,
        "accel": 1.0,
    }
    assert Placement().demand() == {}


def test_counts_stay_balanced_and_reservations_within_capacity_when_it_fits() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 5)
        nodes = [(f"n{i}", {"CPU": float(rng.randint(1, 8))}) for i in range(n)]
        spreader = _spreader(*nodes)
        capacity = sum(r["CPU"] for _, r in nodes)
        cpus = [rng.choice([0.0, 1.0]) for _ in range(rng.randint(1, 12))]
        for c in cpus:
            assert spreader.pick(Placement(num_cpus=c)) is not None
        if all(c == 0.0 for c in cpus):
            counts = [spreader.actors.get(i, 0) for i, _ in nodes]
            assert max(counts) - min(counts) <= 1
        if sum(cpus) <= capacity and all(c == 1.0 for c in cpus):
            for i, r in nodes:
                assert spreader.reserved.get(i, {}).get("CPU", 0.0) <= r["CPU"]
        assert sum(spreader.actors.values()) == len(cpus)


def test_a_replacement_avoids_the_lost_actors_node_while_it_is_still_listed_alive() -> (
    None
):
    spreader = _spreader(("a", {"CPU": 1.0}), ("b", {"CPU": 1.0}))
    assert [spreader.pick(Placement()) for _ in range(2)] == ["a", "b"]
    spreader.release("b", Placement())
    # "b" is still listed alive, and holds fewer actors, but the lost actor ran there.
    assert spreader.pick(Placement(), avoid=["b"]) == "a"
    # An avoided node is still taken when it is the only one that can hold the actor.
    gpu = _spreader(("cpu", {"CPU": 4.0}), ("gpu", {"GPU": 1.0}))
    assert gpu.pick(Placement(num_gpus=1.0), avoid=["gpu"]) == "gpu"
