"""Distributed execution on Ray: the same graph, policies, event log and report on a cluster.

The scheduling core stays in the driver process (:class:`RayRuntime`); agents are async
Ray actors, heavy tool tasks (a callable task with ``meta["ray"]`` set to ``"remote"`` or
a mapping of Ray options) are Ray remote functions, and endpoint limits are enforced
cluster-wide by one limiter actor.  Ray is an optional extra: ``pip install
'paragents[ray]'``.  From the command line: ``paragents run FLOW.yaml --executor ray
[--ray-address ADDR]``.
"""

from .actors import Placement
from .driver import DistributedError, RayRuntime, arun, run, session

__all__ = ["DistributedError", "Placement", "RayRuntime", "arun", "run", "session"]
