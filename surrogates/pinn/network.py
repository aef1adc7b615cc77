"""Multilayer perceptron written once over an array namespace (torch or jax.numpy).

The same function evaluates the network in torch (training) and in JAX (inference), so the
exported JAX surrogate is the trained torch network by construction, not by re-implementation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["MLP", "layer_names", "mlp_apply", "mlp_time_jets"]


def layer_names(n_layers: int) -> list[tuple[str, str]]:
    return [(f"layers.{i}.weight", f"layers.{i}.bias") for i in range(n_layers)]


def mlp_apply(xp: Any, weights: dict, x, n_layers: int):
    """tanh MLP on already-normalised inputs ``x`` of shape (..., n_in).

    ``xp`` is the array namespace (``torch`` or ``jax.numpy``); ``weights`` maps the torch
    ``state_dict`` names to arrays of that namespace.
    """
    for i, (w_name, b_name) in enumerate(layer_names(n_layers)):
        x = x @ weights[w_name].T + weights[b_name]
        if i < n_layers - 1:
            x = xp.tanh(x)
    return x


def mlp_time_jets(xp: Any, weights: dict, x, dx, n_layers: int, ddx=None):
    """The MLP and its first two time derivatives, for inputs x(t) with derivatives ``dx`` and
    ``ddx`` (None: inputs linear in t), by forward mode written out.

    Cheaper than nested autodiff for a PINN's time derivatives, and the same in every namespace.
    """
    h, h1, h2 = x, dx, ddx
    for i, (w_name, b_name) in enumerate(layer_names(n_layers)):
        w = weights[w_name].T
        h, h1, h2 = h @ w + weights[b_name], h1 @ w, (None if h2 is None else h2 @ w)
        if i < n_layers - 1:
            # tanh(z)' = (1 − a²)·z', tanh(z)'' = (1 − a²)·(z'' − 2a·z'²)
            a = xp.tanh(h)
            slope = 1.0 - a * a
            curvature = -2.0 * a * h1 * h1 if h2 is None else h2 - 2.0 * a * h1 * h1
            h, h1, h2 = a, slope * h1, slope * curvature
    return h, h1, (0.0 * h1 if h2 is None else h2)


class MLP(torch.nn.Module):
    """Plain tanh MLP with Xavier initialisation; normalisation lives in the system's encoder."""

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int], seed: int = 0):
        super().__init__()
        sizes = [n_in, *hidden, n_out]
        gen = torch.Generator().manual_seed(seed)
        self.layers = torch.nn.ModuleList()
        for a, b in itertools.pairwise(sizes):
            layer = torch.nn.Linear(a, b)
            bound = math.sqrt(6.0 / (a + b))
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.zero_()
            self.layers.append(layer)
        self.n_in, self.n_out, self.hidden = n_in, n_out, list(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mlp_apply(torch, dict(self.named_parameters()), x, len(self.layers))
