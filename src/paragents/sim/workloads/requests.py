"""Decomposed user requests: travel plans of simple, medium and complex shape, as a stream.

Theory of operation
-------------------
A planner turns "plan my trip" into a handful of subtasks with the structure such plans
have: understand the request, fan out to independent searches (flights, hotels,
attractions, weather, ...), join them into partial plans (a budget, a day plan), and
join those into the itinerary.  Branches are uneven, as in real plans: some searches need
the parsed request, some only its words, and partial plans join different subsets.
Three shapes, 4, 8 and 16 subtasks:

``simple``   parse -> flights -> itinerary, and hotels -> itinerary (the hotel search
             needs only the city and dates, already in the request's own words)
``medium``   parse -> {flights, hotels, attractions, weather} -> {budget, day_plan}
             -> itinerary
``complex``  parse -> eight searches -> {budget, day1, day2, day3, packing}
             -> itinerary -> review

Each subtask is a model call producing ``tokens`` completion tokens, after ``tool_s``
seconds of external work for the searches (the API behind them); both are drawn per
request from a lognormal around the template's value (coefficient of variation
``spread``), so no two requests are identical.  ``Task.duration`` is the estimate the
scheduler plans with: ``tool_s + tokens / ESTIMATE_TOKENS_PER_S``, the time on an
unloaded model server (see :mod:`paragents.sim.latency` for what the simulator really
charges).  Task ids are ``<request>/<subtask>`` so many requests share one run.

:func:`poisson_stream` makes a stream of such requests: exponential inter-arrival times
at ``rate`` requests/s, the shape of each drawn from ``mix``; everything from one seed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from ...core.errors import ParagentsError
from ...core.graph import Task, TaskGraph
from ..engine import Arrival
from ..latency import lognormal

__all__ = ["ESTIMATE_TOKENS_PER_S", "SHAPES", "poisson_stream", "travel_graph", "travel_request"]

#: Decode speed (tokens/s) the duration estimates assume: one call alone on a server.
ESTIMATE_TOKENS_PER_S = 40.0

# (subtask, skill, completion tokens, tool seconds, inputs)
_Template = tuple[tuple[str, str, float, float, tuple[str, ...]], ...]

_SIMPLE: _Template = (
    ("parse", "plan", 60, 0.0, ()),
    ("flights", "search", 120, 1.2, ("parse",)),
    ("hotels", "search", 120, 1.0, ()),
    ("itinerary", "write", 250, 0.0, ("flights", "hotels")),
)
_MEDIUM: _Template = (
    ("parse", "plan", 60, 0.0, ()),
    ("flights", "search", 120, 1.2, ("parse",)),
    ("hotels", "search", 120, 1.0, ("parse",)),
    ("attractions", "search", 150, 0.8, ("parse",)),
    ("weather", "search", 60, 0.4, ("parse",)),
    ("budget", "plan", 100, 0.0, ("flights", "hotels")),
    ("day_plan", "plan", 200, 0.0, ("attractions", "weather", "hotels")),
    ("itinerary", "write", 300, 0.0, ("budget", "day_plan")),
)
_COMPLEX: _Template = (
    ("parse", "plan", 80, 0.0, ()),
    ("flights_out", "search", 120, 1.2, ("parse",)),
    ("flights_back", "search", 120, 1.2, ("parse",)),
    ("hotels", "search", 140, 1.0, ("parse",)),
    ("attractions", "search", 150, 0.8, ("parse",)),
    ("restaurants", "search", 120, 0.8, ("parse",)),
    ("weather", "search", 60, 0.4, ("parse",)),
    ("transport", "search", 100, 0.6, ("parse",)),
    ("events", "search", 120, 0.7, ("parse",)),
    ("budget", "plan", 120, 0.0, ("flights_out", "flights_back", "hotels", "transport")),
    ("day1", "plan", 180, 0.0, ("attractions", "weather", "hotels")),
    ("day2", "plan", 180, 0.0, ("restaurants", "events", "weather")),
    ("day3", "plan", 180, 0.0, ("attractions", "restaurants", "transport")),
    ("packing", "write", 80, 0.0, ("weather",)),
    ("itinerary", "write", 300, 0.0, ("budget", "day1", "day2", "day3")),
    ("review", "write", 120, 0.0, ("itinerary", "packing")),
)

SHAPES: Mapping[str, _Template] = {"simple": _SIMPLE, "medium": _MEDIUM, "complex": _COMPLEX}


class WorkloadError(ParagentsError, ValueError):
    """A workload was asked for with impossible parameters."""


def _template(shape: str) -> _Template:
    try:
        return SHAPES[shape]
    except KeyError:
        raise WorkloadError(f"unknown request shape {shape!r} (choose from {', '.join(SHAPES)})") from None


def travel_request(shape: str, name: str, rng: random.Random, *, spread: float = 0.3) -> tuple[Task, ...]:
    """One request's subtasks, ids prefixed with ``name/``."""
    tasks = []
    for sub, skill, tokens, tool, inputs in _template(shape):
        n = max(1.0, round(lognormal(rng, tokens, spread)))
        t = lognormal(rng, tool, spread)
        tasks.append(
            Task(
                f"{name}/{sub}",
                prompt=f"{sub} for travel request {name}",
                skills=frozenset({skill}),
                depends_on=tuple(f"{name}/{i}" for i in inputs),
                duration=t + n / ESTIMATE_TOKENS_PER_S,
                tokens=int(n),
                retries=2,
                meta={"tool_s": t, "request": name, "shape": shape},
            )
        )
    return tuple(tasks)


def travel_graph(shape: str, *, seed: int = 0, name: str = "r0", spread: float = 0.3) -> TaskGraph:
    """One request as a graph of its own."""
    return TaskGraph(travel_request(shape, name, random.Random(seed), spread=spread))


def poisson_stream(
    rate: float,
    count: int,
    *,
    mix: Mapping[str, float] | Sequence[str] = ("simple", "medium", "complex"),
    seed: int = 0,
    spread: float = 0.3,
) -> list[Arrival]:
    """``count`` requests arriving as a Poisson process of ``rate`` per second; each shape
    drawn from ``mix`` (weights, or a list of shapes drawn uniformly)."""
    if not rate > 0 or count < 0:
        raise WorkloadError(f"need rate > 0 and count >= 0, got rate={rate}, count={count}")
    weights = dict(mix) if isinstance(mix, Mapping) else dict.fromkeys(mix, 1.0)
    for shape in weights:
        _template(shape)
    shapes, w = list(weights), list(weights.values())
    rng = random.Random(seed)
    out, now = [], 0.0
    for i in range(count):
        now += rng.expovariate(rate)
        shape = rng.choices(shapes, w)[0]
        name = f"r{i}"
        out.append(Arrival(now, name, travel_request(shape, name, rng, spread=spread), kind=shape))
    return out
