"""The ``power.multimachine`` surrogate of one network: its swing equations linearised and solved
exactly, plus a PINN trained on the nonlinear residual.

With the angles x = δ − δ*(s) about the steady state after a disturbance of size s (powers
P(s) = P_before + s·(P_after − P_before)) and the machines' frequencies ω, the swing equations
linearised there are y' = A(m, d, s)·y with y = (x, ω) and A built from the Laplacian of
B_ij·cos(δ*_i − δ*_j). From the steady state before the disturbance, y(t) = expm(A·t)·y(0)
exactly. The surrogate is

    δ(t) = δ*(s) + [expm(A·t)·y(0)]_x + s²·c·h(τ)·N(τ, log m, log d, s),        τ = t / T,

with h = τ² at machines (angle and frequency at t = 0 exact), h = τ at first-order buses (angle
exact) and c = 1e-4 rad. The linear part carries the inertia, damping and network to first order
in the disturbance, so the tanh network N only learns the O(s²) nonlinear remainder; it is
trained on the residual of the full nonlinear equations and on DOP853 trajectories, both divided
by s² (``_network_config`` says why the trajectories).
Frequencies are the angles' time derivatives (the linear part's A·y, the network's by forward
mode), as the reference defines them.

N sees time (linearly and as log(1 + t/t_fast)), the parameters and s. The ansatz's revision 2
(surrogates trained since, ``kundur_two_area``) adds two things:

- the linear part's own state y(t)/s as inputs: the remainder is driven by products of the
  linear modes, which a network of t alone has to redraw at every point of the box;
- at first-order buses the initial slip e_i·t·e^(−t/τ_i), τ_i = d_i/L_ii, with e_i the
  nonlinear initial rate s·ΔP_i/d_i less the linear part's. A load relaxing in 0.4 ms (Kundur's)
  starts 0.2 rad/s off the linear part, which a correction of scale c·s²·τ cannot reach; with
  the slip the frequencies at t = 0 are exact but for the correction's c·s²·N/T. The slip leaves
  no offset behind: a first-order bus has no memory once it is back on its algebraic balance
  (a slip e_i·τ_i·(1 − e^(−t/τ_i)) that kept its offset raised the machines' residual 5–30×).

``four_bus`` and ``three_bus`` are revision 1; the first layer's width says which a file is.
Buses that relax faster than FAST_S (Kundur's loads, 0.4 ms) set t_fast and have their
frequency errors and residuals weighted down to angle units (``Ansatz.rate_weight``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from surrogates.pinn.network import mlp_time_jets
from surrogates.pinn.validation import rmse_stats, sobol_design
from surrogates.power import network_reference
from surrogates.power.network import Network, steady_state

__all__ = [
    "BOX_FACTOR",
    "CORRECTION_RAD",
    "NETWORK_CONFIG",
    "SCALE_BOX",
    "T_MAX_S",
    "Ansatz",
    "NetworkProblem",
    "fit_network",
    "initial_slip",
    "linear_response",
    "network_fingerprint",
    "predict",
    "system_matrix",
    "train_network",
    "trajectories",
    "validate_network",
]

BOX_FACTOR = 3.0  # every m_i and d_i over [nominal / 3, 3 · nominal]
SCALE_BOX = (0.25, 2.0)  # the disturbance's size, relative to the network file's step
T_MAX_S = 5.0
# The network's output scale: the nonlinear remainder is 1e-5 to 1e-3 rad, so N is of order one
# (at 1e-2 it had to be 1e-3 to 1e-2, where float32 Adam's noise already sits).
CORRECTION_RAD = 1e-4
# A first-order bus relaxes on τ_i = d_i / Σ_j B_ij (40 ms at the four-bus box's lightest damping),
# and so does the nonlinear remainder's early part: the network also sees log(1 + t / t_fast),
# t_fast = FAST_S or the box's fastest τ_i where that is shorter (0.4 ms at Kundur's loads).
FAST_S = 0.02
CONDITION = "disturbance_scale"
VALIDATION_TIMES_S = np.linspace(0.0, T_MAX_S, 251)


def _network_config():
    from surrogates.pinn.trainer import TrainConfig

    # Physics residual + DOP853 trajectories: on the residual alone the correction lowered the
    # loss 400× and still made the angles worse than the linear part (see docs/architecture.md).
    return TrainConfig(
        hidden=(64, 64, 64),
        adam_steps=2_000,
        lr_start=3e-3,
        lr_end=1e-4,
        collocation_batch=2_048,
        data_batch=2_048,
        lbfgs_steps=1_000,
        lbfgs_collocation=8_192,
        lbfgs_data=16_384,
        lbfgs_resample_every=250,
        n_trajectories=1_000,
        checkpoint_every=250,
    )


NETWORK_CONFIG = _network_config()


@dataclass(frozen=True)
class Ansatz:
    """A network's constants: bus roles, nominal values, steady states and the trained box."""

    network: Network
    # 2: the linear part's state y(t)/s as inputs and the exact initial slip (module docstring).
    revision: int = 1

    @classmethod
    def for_weights(cls, network: Network, weights: dict) -> Ansatz:
        """The ansatz whose inputs ``weights``' first layer takes."""
        return cls(network, 2 if weights["layers.0.weight"].shape[1] == cls(network, 2).n_inputs else 1)

    @property
    def n_inputs(self) -> int:
        n, k = len(self.network.buses), len(self.m_nominal)
        return 3 + len(self.parameters) + (n + k if self.revision >= 2 else 0)

    @cached_property
    def linear_state_rad(self) -> np.ndarray:
        """Scales of the linear state's inputs per unit step: the largest initial angle deviation
        at s = 1 for every angle, times the fastest machine's natural frequency for frequencies."""
        delta, laplacian = self.after(1.0)
        angle = np.abs(self.delta_before - delta).max()
        machines = self.network.machines
        natural = np.sqrt((np.diag(laplacian)[machines] / self.m_nominal).max())
        return np.concatenate([np.full(len(machines), angle), np.full(int(machines.sum()), angle * natural)])

    @cached_property
    def machine_of_bus(self) -> np.ndarray:
        """(n, k): 1 where bus i is machine j."""
        machines = np.flatnonzero(self.network.machines)
        e = np.zeros((len(self.network.buses), len(machines)))
        e[machines, np.arange(len(machines))] = 1.0
        return e

    @cached_property
    def first_order(self) -> np.ndarray:
        return (~self.network.machines).astype(float)

    @cached_property
    def relaxation_s(self) -> np.ndarray:
        """τ_i = d_i / Σ_j B_ij at each bus's lightest damping in the box (an upper bound on how
        fast a first-order bus relaxes: cos ≤ 1); ∞ at machines."""
        tau = self.network.d / BOX_FACTOR / self.network.b.sum(axis=1)
        return np.where(self.network.machines, np.inf, tau)

    @cached_property
    def fast_s(self) -> float:
        """The time scale of the network's log-time input and of the early collocation points."""
        return float(min(FAST_S, self.relaxation_s.min()))

    @cached_property
    def rate_weight(self) -> np.ndarray:
        """Per bus, the weight of frequency errors and residuals in the loss: min(1, τ_i / FAST_S).
        A bus relaxing in τ_i has frequencies of order (angle)/τ_i in its first instants; this
        puts them back in angle units, so a bus relaxing in 0.4 ms (Kundur's loads: 0.2 rad/s in
        the remainder's first millisecond against 3e-4 rad in angle) does not swamp the loss. 1
        wherever τ_i ≥ FAST_S (every bus of four_bus and three_bus)."""
        return np.minimum(1.0, self.relaxation_s / FAST_S)

    @property
    def m_nominal(self) -> np.ndarray:
        return self.network.m[self.network.machines]

    @property
    def parameters(self) -> tuple[str, ...]:
        machines = np.flatnonzero(self.network.machines)
        return tuple(f"m_{i + 1}" for i in machines) + tuple(
            f"d_{i + 1}" for i in range(len(self.network.buses))
        )

    def box(self) -> dict[str, tuple[float, float]]:
        nominal = np.concatenate([self.m_nominal, self.network.d])
        box = {
            k: (float(v) / BOX_FACTOR, float(v) * BOX_FACTOR)
            for k, v in zip(self.parameters, nominal, strict=True)
        }
        return {**box, CONDITION: SCALE_BOX, "t": (0.0, T_MAX_S)}

    def powers(self, scale: float) -> np.ndarray:
        return self.network.p_before + scale * (self.network.p_after - self.network.p_before)

    @cached_property
    def delta_before(self) -> np.ndarray:
        return steady_state(self.network.b, self.network.p_before)

    @cached_property
    def _after_by_scale(self) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        return {}

    def after(self, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The steady state δ*(s) after the disturbance and the Laplacian of B_ij·cos(δ*_i − δ*_j),
        solved once per scale (a Newton solve; every likelihood evaluation asks for it)."""
        scale = float(scale)
        if scale not in self._after_by_scale:
            delta = steady_state(
                self.network.b, self.powers(scale), f"{self.network.name} at {CONDITION} {scale:g}"
            )
            weights = self.network.b * np.cos(delta[:, None] - delta[None, :])
            self._after_by_scale[scale] = (delta, np.diag(weights.sum(axis=1)) - weights)
        return self._after_by_scale[scale]

    def encode(self, xp: Any, t, m_g, d, scale, linear):
        """The network's inputs, each on [-1, 1] over the box, and their first two time derivatives.
        In revision 2, also the linear part's state (y, y', y'') per unit step: the
        nonlinear remainder is driven by products of the linear modes, which a network of t alone
        must redraw at every (m, d) of the box (Kundur's machines swing 5–10 times in 5 s)."""
        log_f = math.log(BOX_FACTOR)
        lo, hi = SCALE_BOX
        fast_s = self.fast_s
        span = math.log1p(T_MAX_S / fast_s)
        u = [
            (2.0 * t / T_MAX_S - 1.0)[..., None],
            (2.0 * xp.log1p(t / fast_s) / span - 1.0)[..., None],
            xp.log(m_g / _const(xp, self.m_nominal, d)) / log_f,
            xp.log(d / _const(xp, self.network.d, d)) / log_f,
            ((2.0 * scale - (lo + hi)) / (hi - lo))[..., None],
        ]
        u = xp.concatenate(u, -1)
        rest = 0.0 * u[..., 2:]
        fast = (2.0 / span / (fast_s + t))[..., None]
        du = xp.concatenate([0.0 * fast + 2.0 / T_MAX_S, fast, rest], -1)
        ddu = xp.concatenate([0.0 * fast, -fast / (fast_s + t)[..., None], rest], -1)
        if self.revision >= 2:
            per_unit = 1.0 / (scale[..., None] * _const(xp, self.linear_state_rad, d))
            u, du, ddu = (
                xp.concatenate([a, b * per_unit], -1) for a, b in zip((u, du, ddu), linear, strict=True)
            )
        return u, du, ddu


def _const(xp: Any, value, like):
    """A NumPy constant as an array of ``like``'s namespace, dtype (and torch device)."""
    if xp.__name__ == "torch":
        return xp.as_tensor(value, dtype=like.dtype, device=like.device)
    return xp.asarray(value, dtype=like.dtype)


def system_matrix(xp: Any, ansatz: Ansatz, m_g, d, laplacian):
    """A of y' = A·y, y = (x of every bus, ω of every machine), batched over leading axes."""
    e = _const(xp, ansatz.machine_of_bus, d)
    k = e.shape[1]
    top_left = -(_const(xp, ansatz.first_order, d) / d)[..., :, None] * laplacian
    top_right = xp.broadcast_to(e, (*top_left.shape[:-1], k))
    bottom_left = -(_const(xp, ansatz.machine_of_bus.T, d) @ laplacian) / m_g[..., :, None]
    bottom_right = -_const(xp, np.eye(k), d) * ((d @ e) / m_g)[..., None, :]
    top = xp.concatenate([top_left, top_right], -1)
    return xp.concatenate([top, xp.concatenate([bottom_left, bottom_right], -1)], -2)


def _expm(xp: Any):
    if xp.__name__ == "torch":
        return xp.linalg.matrix_exp
    if xp.__name__.startswith("jax"):
        import jax.scipy.linalg

        return xp.vectorize(jax.scipy.linalg.expm, signature="(n,n)->(n,n)")
    import scipy.linalg

    return scipy.linalg.expm


def linear_response(xp: Any, a, y0, t):
    """y(t) = expm(A·t)·y0 and its first two time derivatives A·y, A²·y (any leading axes)."""
    y = (_expm(xp)(a * t[..., None, None]) @ y0[..., None])[..., 0]
    dy = (a @ y[..., None])[..., 0]
    return y, dy, (a @ dy[..., None])[..., 0]


def predict(xp: Any, weights: dict, n_layers: int, ansatz: Ansatz, t, m_g, d, scale, delta_after, linear):
    """Angles δ, their rates δ' and accelerations δ'' (each (..., n)), from the linear part
    ``linear`` = (y, y', y'') and the trained correction."""
    n = len(ansatz.network.buses)
    y, dy, ddy = linear
    u, du, ddu = ansatz.encode(xp, t, m_g, d, scale, linear)
    net, net_t, net_tt = mlp_time_jets(xp, weights, u, du, n_layers, ddu)
    g = _const(xp, ansatz.network.machines.astype(float), d)
    tau = (t / T_MAX_S)[..., None]
    h = tau * (1.0 + g * (tau - 1.0))  # τ² at machines, τ at first-order buses
    h_t = (1.0 + g * (2.0 * tau - 1.0)) / T_MAX_S
    h_tt = 2.0 * g / T_MAX_S**2
    size = (CORRECTION_RAD * scale**2)[..., None]
    angle = delta_after + y[..., :n] + size * h * net
    rate = dy[..., :n] + size * (h_t * net + h * net_t)
    acceleration = ddy[..., :n] + size * (h_tt * net + 2.0 * h_t * net_t + h * net_tt)
    if ansatz.revision >= 2:
        slip, slip_t, slip_tt = initial_slip(xp, ansatz, t, d, scale, delta_after)
        angle, rate, acceleration = angle + slip, rate + slip_t, acceleration + slip_tt
    return angle, rate, acceleration


def initial_slip(xp: Any, ansatz: Ansatz, t, d, scale, delta_after):
    """e_i·t·e^(−t/τ_i) at first-order buses (0 at machines) and its two time derivatives:
    τ_i = d_i/L_ii(s), e_i = (s·ΔP_i + [L·(δ_before − δ*)]_i)/d_i, the exact initial rate
    s·ΔP_i/d_i (the powers balance before the step) less the linear part's −[L·x(0)]_i/d_i."""
    b = _const(xp, ansatz.network.b, d)
    weights = b * xp.cos(delta_after[..., :, None] - delta_after[..., None, :])
    degree = weights.sum(-1)
    x0 = _const(xp, ansatz.delta_before, d) - delta_after
    coupled = degree * x0 - (weights * x0[..., None, :]).sum(-1)  # L·x0
    step = _const(xp, ansatz.network.p_after - ansatz.network.p_before, d)
    first_order = _const(xp, ansatz.first_order, d)
    e = first_order * (scale[..., None] * step + coupled) / d
    tau = d / degree
    u = t[..., None] / tau
    decay = xp.exp(-u)
    return e * t[..., None] * decay, e * (1.0 - u) * decay, e / tau * (u - 2.0) * decay


def residual(xp: Any, ansatz: Ansatz, m_g, d, scale, angle, rate, acceleration):
    """m_i·δ_i'' + d_i·δ_i' + Σ_j B_ij·sin(δ_i − δ_j) − P_i(s), per bus (m_i = 0 off machines)."""
    b = _const(xp, ansatz.network.b, d)
    before = _const(xp, ansatz.network.p_before, d)
    step = _const(xp, ansatz.network.p_after - ansatz.network.p_before, d)
    m = m_g @ _const(xp, ansatz.machine_of_bus.T, d)
    electrical = (b * xp.sin(angle[..., :, None] - angle[..., None, :])).sum(-1)
    return m * acceleration + d * rate + electrical - (before + scale[..., None] * step)


@dataclass
class NetworkProblem:
    """Collocation over (t, log m, log d, s) and the residual of the full equations (trainer protocol).

    The disturbance sizes come from a fixed pool of ``n_scales`` values whose steady states are
    solved once (Newton, to 1e-11 pu); every collocation point picks one of them.
    """

    ansatz: Ansatz
    n_scales: int = 512
    seed: int = 0
    n_trajectories: int = 0  # DOP853 trajectories for the data term
    times_per_trajectory: int = 64
    _pool: dict = field(init=False, repr=False)
    _data: tuple = field(init=False, repr=False, default=())

    def __post_init__(self):
        import torch

        lo, hi = SCALE_BOX
        scales = lo + (hi - lo) * (np.arange(self.n_scales) + 0.5) / self.n_scales
        after = [self.ansatz.after(s) for s in scales]
        k = int(self.ansatz.network.machines.sum())
        y0 = [np.concatenate([self.ansatz.delta_before - delta, np.zeros(k)]) for delta, _ in after]
        self._pool = {
            "scale": torch.from_numpy(scales),
            "delta": torch.from_numpy(np.stack([a[0] for a in after])),
            "laplacian": torch.from_numpy(np.stack([a[1] for a in after])),
            "y0": torch.from_numpy(np.stack(y0)),
        }
        if self.n_trajectories > 0:
            self._data = self._reference_data()

    def _reference_data(self):
        """Rows as ``sample`` gives them, with the reference's angles and frequencies there."""
        import torch

        gen = torch.Generator().manual_seed(self.seed + 1000)
        xs, ys = [], []
        for _ in range(self.n_trajectories):
            x = self.sample(self.times_per_trajectory, gen)
            x[:, 1:] = x[0, 1:]  # one point of the box, many times
            x = x[torch.argsort(x[:, 0])]
            row = x[0].numpy()
            values = dict(zip(self.ansatz.parameters, row[1:-1], strict=True))
            values[CONDITION] = float(self._pool["scale"][int(row[-1])])
            angle, rate = _reference(self.ansatz, values, x[:, 0].numpy())
            xs.append(x)
            ys.append(torch.from_numpy(np.concatenate([angle, rate], -1)))
        return torch.cat(xs), torch.cat(ys)

    def data_batch(self, n, gen, device, dtype=None):  # dtype: the model follows its own
        import torch

        x, y = self._data
        index = torch.randint(0, len(x), (n,), generator=gen)
        return x[index].to(device), y[index].to(device)

    def data_loss(self, model, batch):
        """Mean squared angle and frequency error, in units of the correction's scale c·s²
        (frequencies times ``Ansatz.rate_weight``)."""
        import torch

        x, y = batch
        angle, rate, _, scale = self._state(model, x)
        n = angle.shape[-1]
        size = CORRECTION_RAD * scale[:, None] ** 2
        weight = _const(torch, self.ansatz.rate_weight, rate)
        return (((angle - y[:, :n]) / size) ** 2).mean() + (
            ((rate - y[:, n:].to(rate.dtype)) * weight / size) ** 2
        ).mean()

    def sample(self, n: int, gen):
        """Rows (t, m_g..., d..., pool index), in float64."""
        import torch

        k, n_bus = len(self.ansatz.m_nominal), len(self.ansatz.network.buses)
        # Half uniform in t, half uniform in log(1 + t / t_fast): the early transient is resolved.
        u = torch.rand(n, 1, generator=gen, dtype=torch.float64)
        fast_s = self.ansatz.fast_s
        early = fast_s * torch.expm1(u * math.log1p(T_MAX_S / fast_s))
        t = torch.where(torch.arange(n)[:, None] % 2 == 0, T_MAX_S * u, early)
        logs = (2.0 * torch.rand(n, k + n_bus, generator=gen, dtype=torch.float64) - 1.0) * math.log(
            BOX_FACTOR
        )
        nominal = torch.from_numpy(np.concatenate([self.ansatz.m_nominal, self.ansatz.network.d]))
        index = torch.randint(0, self.n_scales, (n, 1), generator=gen).double()
        return torch.cat([t, nominal * torch.exp(logs), index], -1)

    def _state(self, model, x):
        """(angle, rate, acceleration, scale) of the model at rows ``x``, and the inputs."""
        import torch

        dtype = next(model.parameters()).dtype
        x = x.to(torch.float64)
        k = len(self.ansatz.m_nominal)
        t, m_g, d = x[:, 0], x[:, 1 : 1 + k], x[:, 1 + k : -1]
        pool = {key: v.to(x.device)[x[:, -1].long()] for key, v in self._pool.items()}
        # The exact linear part in float64 whatever the model's dtype: it is most of the answer.
        a = system_matrix(torch, self.ansatz, m_g, d, pool["laplacian"])
        linear = tuple(v.to(dtype) for v in linear_response(torch, a, pool["y0"], t))
        t, m_g, d, scale, delta = (v.to(dtype) for v in (t, m_g, d, pool["scale"], pool["delta"]))
        weights = dict(model.named_parameters())
        state = predict(torch, weights, len(model.layers), self.ansatz, t, m_g, d, scale, delta, linear)
        return (*state, scale)

    def physics_loss(self, model, x):
        import torch

        k = len(self.ansatz.m_nominal)
        angle, rate, acceleration, scale = self._state(model, x)
        m_g, d = (v.to(angle.dtype) for v in (x[:, 1 : 1 + k], x[:, 1 + k : -1]))
        r = residual(torch, self.ansatz, m_g, d, scale, angle, rate, acceleration)
        weight = _const(torch, self.ansatz.rate_weight, r)
        return ((r * weight / (CORRECTION_RAD * scale[:, None] ** 2)) ** 2).mean()


def trajectories(ansatz: Ansatz, weights: dict | None, n_layers: int, values: dict, t_s: np.ndarray):
    """Surrogate angles and frequencies (T, n) at one point (NumPy); ``weights`` None: the
    linear part only."""
    k = len(ansatz.m_nominal)
    m_g = np.array([values[p] for p in ansatz.parameters[:k]])
    d = np.array([values[p] for p in ansatz.parameters[k:]])
    scale = float(values.get(CONDITION, 1.0))
    delta, laplacian = ansatz.after(scale)
    y0 = np.concatenate([ansatz.delta_before - delta, np.zeros(k)])
    a = system_matrix(np, ansatz, m_g, d, laplacian)
    linear = linear_response(np, a, y0, t_s)
    if weights is None:
        return delta + linear[0][:, : len(d)], linear[1][:, : len(d)]
    tt = np.asarray(t_s, float)
    angle, rate, _ = predict(
        np, weights, n_layers, ansatz, tt, np.broadcast_to(m_g, (len(tt), k)), np.broadcast_to(d, (len(tt), len(d))),
        np.full(len(tt), scale), delta, linear,
    )  # fmt: skip
    return angle, rate


def _reference(ansatz: Ansatz, values: dict, t_s: np.ndarray):
    k = len(ansatz.m_nominal)
    net = ansatz.network
    m = net.m.copy()
    m[net.machines] = [values[p] for p in ansatz.parameters[:k]]
    d = np.array([values[p] for p in ansatz.parameters[k:]])
    scaled = dataclasses.replace(net, p_after=ansatz.powers(float(values.get(CONDITION, 1.0))))
    out = network_reference.solve(scaled, t_s, m, d)
    n = len(net.buses)
    angle = np.stack([out[network_reference.angle_name(i + 1)] for i in range(n)], -1)
    return angle, np.stack([out[network_reference.frequency_name(i + 1)] for i in range(n)], -1)


def _widest_line_rad(network: Network, angle: np.ndarray) -> float:
    """The largest |δ_i − δ_j| over the lines along a trajectory (π/2 and beyond: at or past the
    unstable region; π: a pole slip)."""
    lines = network.b > 0
    return float(np.abs(angle[:, :, None] - angle[:, None, :])[:, lines].max())


def validate_network(
    network: Network, weights: dict, n_layers: int, n_points: int = 128, seed: int = 31_415
) -> dict:
    """Angle and frequency RMSE per held-out Sobol point of the box against DOP853, the linear
    part's own error (what the network adds), and the widest line angle over the design and the
    box's corners (the box must hold no pole slip)."""
    ansatz = Ansatz.for_weights(network, weights)
    box = ansatz.box()
    log_box = {k: (math.log(lo), math.log(hi)) for k, (lo, hi) in box.items() if k in ansatz.parameters}
    design = sobol_design({**log_box, CONDITION: box[CONDITION]}, n_points, seed)
    t_s = VALIDATION_TIMES_S
    rmse = {"angle": [], "frequency": [], "angle_linear_part": []}
    widest = 0.0
    for i in range(n_points):
        values = {k: (math.exp(v[i]) if k in log_box else float(v[i])) for k, v in design.items()}
        ref_angle, ref_rate = _reference(ansatz, values, t_s)
        angle, rate = trajectories(ansatz, weights, n_layers, values, t_s)
        linear_angle, _ = trajectories(ansatz, None, n_layers, values, t_s)
        rmse["angle"].append(np.sqrt(np.mean((angle - ref_angle) ** 2)))
        rmse["frequency"].append(np.sqrt(np.mean((rate - ref_rate) ** 2)))
        rmse["angle_linear_part"].append(np.sqrt(np.mean((linear_angle - ref_angle) ** 2)))
        widest = max(widest, _widest_line_rad(network, ref_angle))
    return {
        "design": f"{n_points} scrambled Sobol points (seed {seed}) over log m_i, log d_i in "
        f"[nominal/{BOX_FACTOR:g}, {BOX_FACTOR:g}·nominal] and {CONDITION} in {list(SCALE_BOX)}; "
        f"{len(t_s)} times on [0, {T_MAX_S:g}] s; RMSE over every bus and time; reference "
        f"solve_ivp DOP853 rtol={network_reference.RTOL}, atol={network_reference.ATOL}",
        "rmse": {
            "Angle [rad]": rmse_stats(np.array(rmse["angle"])),
            "Frequency deviation [rad.s-1]": rmse_stats(np.array(rmse["frequency"])),
        },
        "linear_part_alone": {"Angle [rad]": rmse_stats(np.array(rmse["angle_linear_part"]))},
        "widest_line_angle_rad": {"design": widest, "box_corners": box_corners_widest_line(ansatz)},
        "per_point_rmse": {"Angle [rad]": [float(v) for v in rmse["angle"]]},
    }


def box_corners_widest_line(ansatz: Ansatz, max_corners: int = 256) -> float:
    """The widest line angle of the reference trajectories at the box's corners. With more than
    ``max_corners`` corners, only those at the largest step and the lightest damping (where the
    swings are widest: damping only removes energy), over every combination of inertias."""
    box = ansatz.box()
    k = len(ansatz.m_nominal)
    names = [*ansatz.parameters, CONDITION]
    if 2 ** len(names) > max_corners:
        names = list(ansatz.parameters[:k])
    fixed = {**{p: box[p][0] for p in ansatz.parameters[k:]}, CONDITION: box[CONDITION][1]}
    widest = 0.0
    for corner in np.ndindex(*(2,) * len(names)):
        values = {**fixed, **{p: box[p][c] for p, c in zip(names, corner, strict=True)}}
        angle, _ = _reference(ansatz, values, VALIDATION_TIMES_S)
        widest = max(widest, _widest_line_rad(ansatz.network, angle))
    return widest


def network_fingerprint(network: Network) -> dict:
    """What the weights were trained for; a surrogate refuses weights of another network."""
    return {
        "name": network.name,
        "buses": list(network.buses),
        "inertia": network.m.tolist(),
        "damping": network.d.tolist(),
        "power_before": network.p_before.tolist(),
        "power_after": network.p_after.tolist(),
        "susceptance": network.b.tolist(),
    }


def fit_network(
    network: Network,
    config=NETWORK_CONFIG,
    checkpoint=None,
    progress=True,
    warm_start=None,
    revision=2,
):
    """Train the correction network; returns its float64 weights, layer count and the trainer's
    record. ``warm_start``: weights of another network with the same buses and roles (their
    revision decides the new network's). ``revision`` 1: time and parameters only and no
    initial slip, as ``four_bus`` and ``three_bus`` were trained."""
    import torch

    from surrogates.pinn.network import MLP
    from surrogates.pinn.trainer import train

    ansatz = Ansatz(network, revision) if warm_start is None else Ansatz.for_weights(network, warm_start)
    model = MLP(ansatz.n_inputs, len(network.buses), config.hidden, seed=config.seed)
    if warm_start is not None:
        model.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in warm_start.items()})
    n_trajectories = config.n_trajectories if config.data_weight > 0 else 0
    problem = NetworkProblem(ansatz, seed=config.seed, n_trajectories=n_trajectories)
    record = train(problem, model, config, checkpoint=checkpoint, progress=progress)
    weights = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    return weights, len(model.layers), record


def train_network(
    network: Network,
    config=NETWORK_CONFIG,
    out: Path | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
    validation_points: int = 128,
    warm_start: dict | None = None,
    revision: int = 2,
) -> dict:
    """Train, validate and write the weights with their card; returns the card."""
    from surrogates.pinn.card import save_weights

    weights, n_layers, record = fit_network(network, config, checkpoint, progress, warm_start, revision)
    validation = validate_network(network, weights, n_layers, validation_points)
    ansatz = Ansatz.for_weights(network, weights)
    card = _card(ansatz, config, record, validation, n_layers, warm_start is not None)
    return save_weights(out, weights, card)


def _card(ansatz: Ansatz, config, record: dict, validation: dict, n_layers: int, warm: bool) -> dict:
    from surrogates.pinn.trainer import hardware_description, training_versions

    network = ansatz.network
    angle, rate = ansatz.linear_state_rad[[0, -1]]
    linear = (
        [
            f"x_i(t)/(s·{angle:.3g} rad), the linear part's angle deviation at every bus",
            f"ω_j(t)/(s·{rate:.3g} rad/s), the linear part's frequency at every machine",
        ]
        if ansatz.revision >= 2
        else []
    )
    device = record["device"]
    return {
        "name": "power.multimachine",
        "network": network_fingerprint(network),
        "system": "m_i·δ_i'' + d_i·δ_i' + Σ_j B_ij·sin(δ_i − δ_j) = P_i(s) (m_i = 0 at first-order buses), "
        "from the steady state of P_before",
        "architecture": {
            "type": "exact linearised solution + tanh MLP correction",
            "ansatz": f"δ = δ*(s) + [expm(A·t)·y0]_x + s²·{CORRECTION_RAD:g}·h(τ)·N; h = τ² at machines, "
            "τ at first-order buses",
            "inputs": [
                "2t/T − 1",
                f"log(1 + t/{ansatz.fast_s:.3g} s) on [-1, 1]",
                "log(m_i/nominal)/log 3",
                "log(d_i/nominal)/log 3",
                "scale on [-1, 1]",
                *linear,
            ],
            "hidden": list(config.hidden),
            "outputs": [f"N_{i + 1}" for i in range(len(network.buses))],
            "n_layers": n_layers,
            "dtype": "float64",
        },
        "domain": {k: list(v) for k, v in ansatz.box().items()},
        "parameters": list(ansatz.parameters),
        "conditions": [CONDITION],
        "training": {
            "config": config.to_dict(),
            "loss": f"physics_weight·mean (residual / {CORRECTION_RAD:g}·s²)² of the full nonlinear equations "
            f"at resampled collocation points + data_weight·mean ((angle and frequency error) / {CORRECTION_RAD:g}·s²)² "
            f"at {config.n_trajectories} DOP853 trajectories × 64 times (half uniform, half "
            "log-spaced from 0)",
            "warm_start": warm,
            "wall_time_s": round(record["wall_time_s"], 1),
            "final_loss": next((h for h in reversed(record["history"]) if "loss" in h), None),
            "device": device,
            "hardware": hardware_description(device),
            "reproduce": f"bayespinn train power.multimachine --network {network.name}"
            + (" --physics-only" if config.data_weight == 0 else ""),
        },
        "versions": training_versions(),
        "validation": {k: v for k, v in validation.items() if k != "per_point_rmse"},
    }
