"""``power.multimachine:reference``: a network's swing equations solved exactly, as a forward model.

Parameters are every machine's inertia ``m_i`` and every bus's damping ``d_i`` (i: the bus's
1-based place in the network after Kron reduction); observables every bus's angle and frequency
deviation. ``jax_forward`` runs diffrax inside JAX, so NUTS can sample the exact posterior (the
comparator for the network surrogates); ``numpy_forward`` runs DOP853 at rtol 1e-10.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from surrogates.power import network_reference
from surrogates.power.network import Network, load_network

__all__ = ["NETWORKS", "NetworkReference", "bundled"]

NETWORKS = Path(__file__).parent / "networks"


def bundled(name: str) -> Network:
    """A network shipped with bayespinn (``four_bus``, ``three_bus``) or a file path."""
    path = NETWORKS / f"{name}.toml"
    return load_network(path if path.exists() else Path(name))


class NetworkReference:
    name = "power.multimachine:reference"
    conditions = ()
    card = None

    def __init__(self, network: Network):
        self.network = network
        n = len(network.buses)
        self._machines = np.flatnonzero(network.machines)
        self.parameters = tuple(f"m_{i + 1}" for i in self._machines) + tuple(f"d_{i + 1}" for i in range(n))
        self.observables = tuple(
            name
            for i in range(n)
            for name in (network_reference.angle_name(i + 1), network_reference.frequency_name(i + 1))
        )
        self.units = {
            **{f"m_{i + 1}": "s²/rad (pu)" for i in self._machines},
            **{f"d_{i + 1}": "s/rad (pu)" for i in range(n)},
            "t": "s",
        }

    def truth(self) -> dict[str, float]:
        """The network file's nominal values, by parameter name."""
        m = {f"m_{i + 1}": float(self.network.m[i]) for i in self._machines}
        return {**m, **{f"d_{i + 1}": float(v) for i, v in enumerate(self.network.d)}}

    def domain(self, conditions: dict) -> dict[str, tuple[float, float]]:
        """Any positive inertia and damping, any time (the reference solver has no box)."""
        return {**dict.fromkeys(self.parameters, (0.0, math.inf)), "t": (0.0, math.inf)}

    def validation_rmse(self) -> dict[str, float]:
        return dict.fromkeys(self.observables, 0.0)

    def _arrays(self, xp, values: dict):
        """(m, d) over every bus; m is 0 at the first-order buses."""
        n = len(self.network.buses)
        machine = self.network.machines
        m = xp.stack([xp.asarray(values[f"m_{i + 1}"] if machine[i] else 0.0, dtype=float) for i in range(n)])
        d = xp.stack([xp.asarray(values[f"d_{i + 1}"], dtype=float) for i in range(n)])
        return m, d

    def numpy_forward(self, t_s, **values) -> dict[str, np.ndarray]:
        m, d = self._arrays(np, values)
        return network_reference.solve(self.network, t_s, m, d)

    def jax_forward(self, t_s, **values) -> dict:
        import jax.numpy as jnp

        m, d = self._arrays(jnp, values)
        return network_reference.solve_jax(self.network, t_s, m, d)
