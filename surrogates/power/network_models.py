"""``power.multimachine`` (a network's trained surrogate) and ``power.multimachine:reference``
(its swing equations solved exactly), as forward models.

Parameters are every machine's inertia ``m_i`` and every bus's damping ``d_i`` (i: the bus's
1-based place in the network after Kron reduction); observables every bus's angle and frequency
deviation; the one condition ``disturbance_scale`` (default 1) scales the network file's power
step. The reference's ``jax_forward`` runs diffrax inside JAX, so NUTS can sample the exact
posterior (the comparator for the surrogates); its ``numpy_forward`` runs DOP853 at rtol 1e-10.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from surrogates.power import network_pinn, network_reference
from surrogates.power.network import Network, NetworkError, load_network
from surrogates.power.network_pinn import CONDITION

__all__ = ["NETWORKS", "NetworkReference", "NetworkSurrogate", "bundled", "weights_for"]

NETWORKS = Path(__file__).parent / "networks"
WEIGHTS = Path(__file__).parent / "weights"


def bundled(name: str) -> Network:
    """A network shipped with bayespinn (``four_bus``, ``three_bus``, ``kundur_two_area``) or a file path."""
    path = NETWORKS / f"{name}.toml"
    return load_network(path if path.exists() else Path(name))


def weights_for(name: str) -> Path:
    """Where a network's surrogate lives: shipped for a bundled network, beside the file else."""
    if (NETWORKS / f"{name}.toml").exists():
        return WEIGHTS / f"multimachine_{name}.safetensors"
    return Path(name).with_suffix(".safetensors")


class _NetworkModel:
    conditions = (CONDITION,)
    defaults: ClassVar[dict[str, float]] = {CONDITION: 1.0}  # the file's own step unless given

    def __init__(self, network: Network):
        self.network = network
        n = len(network.buses)
        self._machines = np.flatnonzero(network.machines)
        self.ansatz = network_pinn.Ansatz(network)
        self.parameters = self.ansatz.parameters
        self.observables = tuple(
            name
            for i in range(n)
            for name in (network_reference.angle_name(i + 1), network_reference.frequency_name(i + 1))
        )
        self.units = {
            **{f"m_{i + 1}": "s²/rad (pu)" for i in self._machines},
            **{f"d_{i + 1}": "s/rad (pu)" for i in range(n)},
            CONDITION: "1 (times the file's power step)",
            "t": "s",
        }

    def truth(self) -> dict[str, float]:
        """The network file's nominal values, by parameter name."""
        m = {f"m_{i + 1}": float(self.network.m[i]) for i in self._machines}
        return {**m, **{f"d_{i + 1}": float(v) for i, v in enumerate(self.network.d)}}

    def _arrays(self, xp, values: dict):
        """(m, d) over every bus; m is 0 at the first-order buses."""
        n = len(self.network.buses)
        machine = self.network.machines
        m = xp.stack([xp.asarray(values[f"m_{i + 1}"] if machine[i] else 0.0, dtype=float) for i in range(n)])
        d = xp.stack([xp.asarray(values[f"d_{i + 1}"], dtype=float) for i in range(n)])
        return m, d

    def _observables(self, angle, rate) -> dict:
        """{observable: (T,)} from (T, n) angles and frequencies."""
        out = {}
        for i in range(len(self.network.buses)):
            out[network_reference.angle_name(i + 1)] = angle[:, i]
            out[network_reference.frequency_name(i + 1)] = rate[:, i]
        return out


class NetworkReference(_NetworkModel):
    name = "power.multimachine:reference"
    card = None

    def domain(self, conditions: dict) -> dict[str, tuple[float, float]]:
        """Any positive inertia, damping and step, any time (the reference solver has no box)."""
        return {**dict.fromkeys((*self.parameters, CONDITION), (0.0, math.inf)), "t": (0.0, math.inf)}

    def validation_rmse(self) -> dict[str, float]:
        return dict.fromkeys(self.observables, 0.0)

    def _scaled(self, values: dict) -> Network:
        scale = float(values.pop(CONDITION, 1.0))
        return dataclasses.replace(self.network, p_after=self.ansatz.powers(scale))

    def numpy_forward(self, t_s, **values) -> dict[str, np.ndarray]:
        network = self._scaled(values)
        m, d = self._arrays(np, values)
        return network_reference.solve(network, t_s, m, d)

    def jax_forward(self, t_s, **values) -> dict:
        import jax.numpy as jnp

        network = self._scaled(values)
        m, d = self._arrays(jnp, values)
        return network_reference.solve_jax(network, t_s, m, d)


class NetworkSurrogate(_NetworkModel):
    """The network's trained surrogate (``network_pinn``): exact linear part + PINN correction."""

    name = "power.multimachine"
    # Its error (1e-6 to 2e-4 rad) is below a PMU's noise; in quadrature it changes little.
    surrogate_error = "rmse"

    def __init__(self, network: Network, path: Path):
        from surrogates.pinn.card import load_weights

        super().__init__(network)
        if not Path(path).exists():
            raise NetworkError(
                f"{network.name}: no trained surrogate at {path}; train one with "
                f"`bayespinn train power.multimachine --network {network.name}`"
            )
        self._weights, self.card = load_weights(path)
        if self.card.get("network") != network_pinn.network_fingerprint(network):
            raise NetworkError(
                f"{path}: trained for network {self.card.get('network', {}).get('name')!r} with other "
                f"buses, values or powers than {network.name!r}; retrain it for this network"
            )
        self._n_layers = self.card["architecture"]["n_layers"]
        self.ansatz = network_pinn.Ansatz.for_weights(network, self._weights)

    def domain(self, conditions: dict) -> dict[str, tuple[float, float]]:
        return self.ansatz.box()

    def validation_rmse(self) -> dict[str, float]:
        rmse = self.card["validation"]["rmse"]
        return {
            name: rmse["Angle [rad]" if name.startswith("Angle") else "Frequency deviation [rad.s-1]"][
                "overall"
            ]
            for name in self.observables
        }

    def numpy_forward(self, t_s, **values) -> dict[str, np.ndarray]:
        angle, rate = network_pinn.trajectories(self.ansatz, self._weights, self._n_layers, values, t_s)
        return self._observables(angle, rate)

    def jax_forward(self, t_s, **values) -> dict:
        import jax.numpy as jnp

        weights = {k: jnp.asarray(v) for k, v in self._weights.items()}
        scale = float(values.get(CONDITION, 1.0))  # a condition: known, not inferred
        delta, laplacian = self.ansatz.after(scale)
        k = len(self.ansatz.m_nominal)
        m_g = jnp.stack([jnp.asarray(values[p], float) for p in self.parameters[:k]])
        d = jnp.stack([jnp.asarray(values[p], float) for p in self.parameters[k:]])
        a = network_pinn.system_matrix(jnp, self.ansatz, m_g, d, jnp.asarray(laplacian))
        y0 = jnp.asarray(np.concatenate([self.ansatz.delta_before - delta, np.zeros(k)]))
        linear = _jax_linear_response(a, y0, t_s)
        t = jnp.asarray(t_s, float)
        shape = t.shape
        angle, rate, _ = network_pinn.predict(
            jnp, weights, self._n_layers, self.ansatz, t, jnp.broadcast_to(m_g, (*shape, k)),
            jnp.broadcast_to(d, (*shape, len(d))), jnp.full(shape, scale), jnp.asarray(delta), linear,
        )  # fmt: skip
        return self._observables(angle, rate)


def _jax_linear_response(a, y0, t_s):
    """``network_pinn.linear_response`` in JAX; on evenly spaced known times one expm and a scan
    of its powers (a gradient costs 0.2 ms instead of 7 ms for 251 times)."""
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg

    if isinstance(t_s, jax.core.Tracer) or np.ndim(t_s) != 1 or len(t_s) < 3:
        return network_pinn.linear_response(jnp, a, y0, jnp.asarray(t_s, float))
    t = np.asarray(t_s, float)
    step = np.diff(t)
    if not np.allclose(step, step[0], rtol=1e-9, atol=0.0):
        return network_pinn.linear_response(jnp, a, y0, jnp.asarray(t))
    phi = jax.scipy.linalg.expm(a * step[0])

    def advance(y, _):
        y = phi @ y
        return y, y

    first = jax.scipy.linalg.expm(a * t[0]) @ y0
    _, rest = jax.lax.scan(advance, first, None, length=len(t) - 1)
    y = jnp.concatenate([first[None], rest])
    dy = y @ a.T
    return y, dy, dy @ a.T
