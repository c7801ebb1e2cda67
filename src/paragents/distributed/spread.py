"""Which node each agent's actor goes to: the driver spreads the actors itself.

Theory of operation
-------------------
Ray's ``"SPREAD"`` strategy is best effort, and for actors that reserve nothing (an
agent on a remote API) it, like a soft node affinity, carries no weight: on a two-node
cluster six such actors under SPREAD were split 3/3 in one run of five (4/2 or 5/1 in
the others, and 6/0 in one CI run). A run whose actors all sit on one node of a cluster
loses the cluster. So the driver decides.

:class:`Spreader` holds the cluster's live nodes (their total resources, from
``ray.nodes()``) and what this run has placed on each.  :meth:`Spreader.pick` returns,
for one placement, the node that can hold it (its totals minus what this run already
reserved there cover every resource asked for) and carries the fewest of the run's
actors; ties go to the node with the most CPUs left, then to the order Ray lists the
nodes in.  When no node has room left, the nodes that could hold it at all are
considered the same way (the actor waits there or spills, see below); when none could
ever hold it, there is no pick and Ray's own scheduler has the last word (the run's
placement timeout then names the agents that were not placed).

The driver ties the actor to the pick (:func:`~paragents.distributed.driver.affinity`):
an actor that reserves resources prefers the node and spills elsewhere if they are
taken by something outside the run or the node died; one that reserves nothing is
pinned, since Ray gives a soft affinity no weight for it and it never waits for
resources.  A replacement actor (its node died) is picked among the nodes alive at that
moment, away from the node the lost actor ran on when another can hold it, with the
dead actor's reservation given back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .actors import Placement

__all__ = ["Node", "Spreader"]


@dataclass(frozen=True, slots=True)
class Node:
    """One live node of the cluster: its id and total resources (``CPU``, ``GPU``, custom)."""

    id: str
    resources: Mapping[str, float]


@dataclass(slots=True)
class Spreader:
    """The run's actors per node, and the node the next one goes to."""

    nodes: list[Node] = field(default_factory=list)
    reserved: dict[str, dict[str, float]] = field(default_factory=dict)
    actors: dict[str, int] = field(default_factory=dict)

    def refresh(self, listing: Iterable[Mapping[str, Any]]) -> None:
        """Take the nodes from ``ray.nodes()``: the alive ones, in the order listed."""
        self.nodes = [
            Node(str(n["NodeID"]), dict(n.get("Resources") or {}))
            for n in listing
            if n.get("Alive")
        ]

    def pick(self, place: Placement, avoid: Collection[str] = ()) -> str | None:
        """The node for an actor that reserves ``place``, recorded as placed there.

        Nodes in ``avoid`` (where a lost actor ran) are taken only when no other can
        hold it: a node that just died may still be listed alive for a moment."""
        demand = place.demand()
        elsewhere = [n for n in self.nodes if n.id not in avoid]
        able = self._able(elsewhere, demand) or self._able(self.nodes, demand)
        if not able:
            return None
        best = min(  # the first of equals: ties go to the order listed
            able,
            key=lambda n: (self.actors.get(n.id, 0), -self._left(n).get("CPU", 0.0)),
        )
        self.actors[best.id] = self.actors.get(best.id, 0) + 1
        held = self.reserved.setdefault(best.id, {})
        for name, amount in demand.items():
            held[name] = held.get(name, 0.0) + amount
        return best.id

    def release(self, node: str, place: Placement) -> None:
        """An actor that reserved ``place`` on ``node`` is gone."""
        if self.actors.get(node, 0) > 0:
            self.actors[node] -= 1
        held = self.reserved.get(node, {})
        for name, amount in place.demand().items():
            held[name] = max(0.0, held.get(name, 0.0) - amount)

    def _able(self, nodes: list[Node], demand: Mapping[str, float]) -> list[Node]:
        """Those of ``nodes`` with room left for ``demand``, else those that could hold it."""
        roomy = [n for n in nodes if _covers(self._left(n), demand)]
        return roomy or [n for n in nodes if _covers(n.resources, demand)]

    def _left(self, node: Node) -> dict[str, float]:
        held = self.reserved.get(node.id, {})
        return {k: v - held.get(k, 0.0) for k, v in node.resources.items()}


def _covers(have: Mapping[str, float], demand: Mapping[str, float]) -> bool:
    return all(have.get(name, 0.0) >= amount - 1e-9 for name, amount in demand.items())
