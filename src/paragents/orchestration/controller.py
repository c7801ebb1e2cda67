"""The query-conditioned controller: which operators to run, layer by layer.

Theory of operation
-------------------
The controller is a small torch module.  Its inputs are fixed vectors: the query's
sentence embedding and one embedding per operator description (both from the semantic
context's :class:`~paragents.context.embedder.Embedder`, all-MiniLM-L6-v2, 384
dimensions), so an operator is scored by what it says it does, and a new query is read
by meaning, not by id.

For layer ``l`` it computes a hidden vector from the query, the layer and the previous
layer's choice (a multi-hot vector over operators, zero before the first layer)::

    h      = tanh(W_q q + W_p prev + E[l])
    logit  = (K o) . h / sqrt(H) + b[l, o]      for each operator o (K projects its embedding)
    stop   = sigmoid(logit of Early-Stop)       0 in the first layer
    p      = softmax(logits of the other operators)

Early-Stop is scored like any operator, from its description, but it is decided
**apart** from the others: before every layer after the first, a yes/no draw with
probability ``stop`` ends the network there (that layer does not run); otherwise the
layer's operators are drawn from ``p`` by the cumulative-probability threshold of
:func:`~paragents.orchestration.architecture.sample_layer` (greedily, by
:func:`~paragents.orchestration.architecture.greedy_layer`, and stopping when
``stop > 0.5``, to evaluate).  Keeping the stop apart matters: inside the threshold
draw, a one-layer network would need Early-Stop to hold the whole threshold's mass of
the second layer, so short networks would almost never be tried and never learned.

Learned width.  With a fixed threshold, a layer of one operator needs that operator to
hold the threshold's mass alone: at 0.8, a query whose best first layer is a single
operator the policy scores at 0.45 never tries it, and policy gradient cannot learn the
value of what it never draws.  With ``widths`` (thresholds such as 0.3, 0.5, 0.7, 0.9)
the controller also picks, per layer, which threshold to draw with: a softmax head on
the same ``h``, sampled while training and its most probable entry taken to evaluate.
The width says how much of the distribution to run (a narrow layer: the top operator
or two; a wide one: most of them), the operator scores say which, and a single
operator becomes reachable without first concentrating the scores on it.

:meth:`Controller.decide` returns the architecture with the log probability of every
decision: for the Early-Stop gate ``log stop`` or ``log(1 - stop)``; for an operator
drawn ``log p_i - log(1 - mass drawn before i)`` (the probability of drawing ``i`` next
without replacement); and, when sampling with a threshold ``spread``, for each layer's
size the log chance that a threshold drawn from ``threshold +- spread`` stopped the
draws where they stopped (:func:`~paragents.orchestration.architecture.stop_chance`,
computed here on the probabilities so that its gradient flows), plus the log
probability of the width picked when the controller learns one.  Policy gradient
weighs them all.

Files.  Parameters are saved with :func:`save_controller` to a file whose name is the
hash of the :class:`ControllerConfig` (operators, layers, sizes, thresholds, and whatever
the caller adds, such as the benchmark and reward weights), so a file is only ever
loaded into a controller of the configuration that made it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .architecture import (
    EARLY_STOP,
    Architecture,
    greedy_layer,
    sample_layer,
    threshold_range,
)

__all__ = ["Controller", "ControllerConfig", "Decision", "load_controller", "save_controller"]


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """Everything that shapes a controller's parameters; ``tags`` name what it was trained for.

    ``spread`` randomises the threshold while sampling (training); evaluation uses
    ``threshold`` itself.  Non-empty ``widths`` replace ``threshold``: the controller
    learns which of them each layer draws with (the spread applies around each)."""

    operators: tuple[str, ...]
    layers: int = 4
    hidden: int = 64
    threshold: float = 0.5
    spread: float = 0.0
    widths: tuple[float, ...] = ()
    embed_dim: int = 384
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if EARLY_STOP not in self.operators:
            raise ValueError(f"the operator set must include {EARLY_STOP!r}")
        if len(set(self.operators)) != len(self.operators):
            raise ValueError(f"duplicate operators in {self.operators}")
        if self.layers < 1 or self.hidden < 1:
            raise ValueError("layers and hidden must be >= 1")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        threshold_range(self.threshold, self.spread)
        for width in self.widths:
            if not 0 < width <= 1:
                raise ValueError(f"widths must be thresholds in (0, 1], got {width}")

    def key(self) -> str:
        """A short stable hash of the configuration: the parameter file's name."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Decision:
    """One query's sampled (or greedy) architecture.

    ``drawn[l]`` are the positions decided in layer ``l``: Early-Stop's (its gate,
    whichever way it went) in every layer after the first, then the operators drawn, in
    draw order; ``ran[l]`` the positions that ran, in ``arch[l]``'s order.  A network
    that stopped has one more ``drawn`` entry than ``ran``: ``[early stop]``.
    ``thresholds[l]`` is the threshold layer ``l`` was drawn with (the width picked, or
    the fixed threshold), one per layer that ran.
    """

    arch: Architecture
    drawn: list[list[int]] = field(default_factory=list)
    ran: list[list[int]] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Decisions:
    """A batch of decisions with what policy gradient needs, as tensors.

    ``log_probs[b, l, o]`` is the log probability of the decision on ``o`` in layer ``l``
    of episode ``b`` (for Early-Stop, of its gate's outcome; 0 where nothing was
    decided); ``size_log_probs[b, l]`` the log probability that layer ``l``'s draws
    stopped where they did (a sampled threshold with a spread; else 0);
    ``entropy[b]`` sums the entropy of the distributions episode ``b`` drew from
    (operators and gate).
    """

    items: list[Decision]
    log_probs: torch.Tensor
    entropy: torch.Tensor
    size_log_probs: torch.Tensor


class Controller(nn.Module):
    """Scores operators per layer from the query, the layer and the previous choice."""

    def __init__(self, config: ControllerConfig, operator_embeddings: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        emb = torch.as_tensor(np.asarray(operator_embeddings, dtype=np.float32))
        k, d = len(config.operators), config.embed_dim
        if tuple(emb.shape) != (k, d):
            raise ValueError(f"operator embeddings must be {k}x{d}, got {tuple(emb.shape)}")
        self.config = config
        self.register_buffer("operator_embeddings", emb)
        self.register_buffer("input_mean", torch.zeros(d))
        self.register_buffer("input_std", torch.ones(d))
        h = config.hidden
        self.query = nn.Linear(d, h)
        self.previous = nn.Linear(k, h, bias=False)
        self.layer = nn.Embedding(config.layers, h)
        self.keys = nn.Linear(d, h)
        self.bias = nn.Parameter(torch.zeros(config.layers, k))
        self.stop = config.operators.index(EARLY_STOP)
        self.width = nn.Linear(h, len(config.widths)) if config.widths else None

    def standardise(self, query_embeddings: np.ndarray) -> None:
        """Centre and scale query inputs by these embeddings' per-dimension statistics
        (saved with the parameters): queries of one benchmark are close together in
        embedding space, and standardising spreads the differences the policy must read."""
        x = torch.as_tensor(np.asarray(query_embeddings, dtype=np.float32))
        self.input_mean.copy_(x.mean(0))
        self.input_std.copy_(x.std(0).clamp_min(1e-3) if len(x) > 1 else torch.ones_like(self.input_std))

    def forward(self, query: torch.Tensor, previous: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Operator probabilities ``(batch, operators)``, Early-Stop's slot 0, and the
        probability of stopping before this layer ``(batch,)``, 0 in the first."""
        probs, stop, _ = self.scores(query, previous, layer)
        return probs, stop

    def scores(self, query: torch.Tensor, previous: torch.Tensor,
               layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`forward`'s two outputs and the probability of each width ``(batch, widths)``
        (None without widths)."""
        query = (query - self.input_mean) / self.input_std / math.sqrt(self.config.embed_dim)
        h = torch.tanh(self.query(query) + self.previous(previous) + self.layer.weight[layer])
        keys = self.keys(self.operator_embeddings)
        logits = h @ keys.T / math.sqrt(self.config.hidden) + self.bias[layer]
        stop_logit = logits[..., self.stop]
        mask = torch.zeros_like(logits)
        mask[..., self.stop] = -math.inf
        probs = torch.softmax(logits + mask, dim=-1)
        stop = torch.sigmoid(stop_logit) if layer else torch.zeros_like(stop_logit)
        widths = torch.softmax(self.width(h), dim=-1) if self.width is not None else None
        return probs, stop, widths

    def decide(self, query_embeddings: np.ndarray | torch.Tensor, rng: random.Random | None) -> Decisions:
        """Architectures for a batch of queries ``(batch, embed_dim)``: sampled with
        ``rng``, greedy when it is None."""
        q = torch.as_tensor(np.asarray(query_embeddings, dtype=np.float32))
        if q.ndim == 1:
            q = q.unsqueeze(0)
        names, k, depth = self.config.operators, len(self.config.operators), self.config.layers
        batch = q.shape[0]
        items = [Decision(arch=()) for _ in range(batch)]
        layers: list[list[tuple[str, ...]]] = [[] for _ in range(batch)]
        log_probs = torch.zeros(batch, depth, k)
        size_log_probs = torch.zeros(batch, depth)
        spread = self.config.spread if rng is not None else 0.0
        entropy = torch.zeros(batch)
        previous = torch.zeros(batch, k)
        active = list(range(batch))
        for layer in range(depth):
            if not active:
                break
            probs, stop, widths = self.scores(q[active], previous[active], layer)
            plogp = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
            if widths is not None:
                plogp = plogp - (widths * torch.log(widths.clamp_min(1e-12))).sum(-1)
                width_rows = widths.detach().tolist()
            if layer:
                plogp = plogp - stop * torch.log(stop.clamp_min(1e-12)) - (1 - stop) * torch.log((1 - stop).clamp_min(1e-12))
            entropy = entropy.index_add(0, torch.tensor(active), plogp)
            rows, stops = probs.detach().tolist(), stop.detach().tolist()
            before = np.zeros((len(active), k, k), dtype=np.float32)  # [row, o, j]: j drawn before o
            drawn_mask = np.zeros((len(active), k), dtype=np.float32)
            last_mask = np.zeros((len(active), k), dtype=np.float32)  # the operator drawn last
            stopped = np.zeros(len(active), dtype=bool)
            picked = np.zeros((len(active), len(self.config.widths)), dtype=np.float32)  # the width chosen
            ranges = [(0.0, 1.0)] * len(active)  # each row's threshold interval (stopped rows: unused)
            still = []
            for row, b in enumerate(active):
                item = items[b]
                if layer:
                    drawn_mask[row, self.stop] = 1.0
                    stopped[row] = rng.random() < stops[row] if rng is not None else stops[row] > 0.5
                    if stopped[row]:
                        item.drawn.append([self.stop])
                        continue
                threshold = self.config.threshold
                if widths is not None:
                    w = width_rows[row]
                    pick = (rng.choices(range(len(w)), weights=w)[0] if rng is not None
                            else max(range(len(w)), key=w.__getitem__))
                    picked[row, pick] = 1.0
                    threshold = self.config.widths[pick]
                item.thresholds.append(threshold)
                ranges[row] = threshold_range(threshold, spread)
                p = rows[row]
                if rng is not None:
                    drawn = sample_layer(p, threshold, rng, spread)
                else:
                    drawn = greedy_layer(p, threshold)
                for j, o in enumerate(drawn):
                    before[row, o, drawn[:j]] = 1.0
                    drawn_mask[row, o] = 1.0
                last_mask[row, drawn[-1]] = 1.0
                item.drawn.append(([self.stop] if layer else []) + drawn)
                item.ran.append(sorted(drawn))
                layers[b].append(tuple(names[i] for i in item.ran[-1]))
                previous[b] = 0.0
                previous[b, item.ran[-1]] = 1.0
                still.append(b)
            mass_before = (torch.from_numpy(before) * probs.unsqueeze(1)).sum(-1)
            terms = torch.log(probs.clamp_min(1e-12)) - torch.log((1 - mass_before).clamp_min(1e-6))
            gate = torch.where(torch.from_numpy(stopped), stop, 1 - stop)
            terms[:, self.stop] = torch.log(gate.clamp_min(1e-12))
            log_probs[active, layer] = terms * torch.from_numpy(drawn_mask)
            if spread:  # stop_chance of the last draw: mass after it, and before it
                last = torch.from_numpy(last_mask)
                after = (probs * torch.from_numpy(drawn_mask)).sum(-1)  # Early-Stop's p is 0
                last_before = after - (probs * last).sum(-1)
                # torch.minimum splits the gradient where after == high (every operator drawn)
                low, high = torch.tensor(ranges).T
                chance = (torch.minimum(after, high) - torch.clamp(last_before, min=low)) / (high - low)
                size_log_probs[active, layer] = torch.log(chance.clamp_min(1e-6)) * last.sum(-1)
            if widths is not None and rng is not None:  # the width's own draw
                chosen = torch.from_numpy(picked)
                size_log_probs[active, layer] += torch.log((widths * chosen).sum(-1).clamp_min(1e-12)) * chosen.sum(-1)
            active = still
        for item, arch in zip(items, layers, strict=True):
            item.arch = tuple(arch)
        return Decisions(items, log_probs, entropy, size_log_probs)


def save_controller(controller: Controller, directory: Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the parameters to ``directory/controller-<config key>.pt``; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"controller-{controller.config.key()}.pt"
    torch.save({"config": asdict(controller.config), "state": controller.state_dict(), **(extra or {})}, path)
    return path


def load_controller(config: ControllerConfig, operator_embeddings: Sequence[Sequence[float]] | np.ndarray, directory: Path) -> Controller:
    """The controller saved for exactly this configuration; FileNotFoundError naming the file."""
    path = directory / f"controller-{config.key()}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no trained controller for this configuration: {path} (train one first)")
    saved = torch.load(path, weights_only=False)
    controller = Controller(config, np.asarray(operator_embeddings))
    controller.load_state_dict(saved["state"])
    return controller
