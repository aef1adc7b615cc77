"""The ``reservoir.drawdown`` PINN: the line-source problem in the Boltzmann variable, its network,
and its error against the exponential-integral reference.

The radial diffusivity equation p_t = (1/r)·(r·p_r)_r with a unit line source at r = 0 and p = 0
far away is stiff in (r, t): near the well the pressure varies like ln r on scales that shrink
to zero as t → 0. The seed paper splits the domain near the well; we transform coordinates
instead. With z = r²/(4t) (Boltzmann) and ξ = ln z the problem has no t left in it:

    p_ξξ + e^ξ·p_ξ = 0,      p_ξ → −½ as ξ → −∞ (the source),      p → 0 as ξ → +∞,

one equation on ξ ∈ [ln z_min, ln z_max] that covers every well and image-well radius at every
time of the trained domain. The network N enters an exact envelope,

    p = e^(−z)·(½·Q(z)·ln(1 + 1/z) + N(ln(1 + z))),   Q = (1 + z + z²/2 + z³/6)/(1 + z⁴/24),

which vanishes far away (the outer condition holds by construction) and carries the logarithm of
the source, −½·e^z·ln z, to O(z⁴·ln z) (Q = e^z + O(z⁴)), so N is small and smooth; as
its input ln(1 + z) → z near the source, p_ξ → −½ there by construction too. In m = e^z·p the
equation reads m_ξξ − z·(m_ξ + m) = 0; the loss is its mean square, divided by (1 + z). No values
of E1 enter it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import exp1

from surrogates.pinn.card import save_weights
from surrogates.pinn.network import MLP, mlp_apply
from surrogates.pinn.trainer import TrainConfig, hardware_description, train, training_versions
from surrogates.pinn.validation import rmse_stats, sobol_design
from surrogates.reservoir import wells

__all__ = [
    "DRAWDOWN_CONFIG",
    "WEIGHTS",
    "XI_RANGE",
    "BoltzmannProblem",
    "envelope",
    "half_e1",
    "jax_exp1",
    "predict",
    "reference_half_e1",
    "train_drawdown",
    "validate_drawdown",
]

WEIGHTS = Path(__file__).parent / "weights" / "drawdown.safetensors"
# z = r_D²/(4 t_D) over the trained domain: the well at the longest t_D of the box (k = 1000 mD,
# 500 h + 500 h, the smallest φ·μ·c_t·r_w²) gives z ≈ 1.8e-12; beyond z = 60, p < 1e-27.
Z_MAX = 60.0
XI_RANGE = (math.log(1e-12), math.log(Z_MAX))

DRAWDOWN_CONFIG = TrainConfig(
    hidden=(32, 32, 32),
    adam_steps=3_000,
    lr_start=3e-3,
    lr_end=1e-4,
    collocation_batch=1_024,
    lbfgs_steps=4_000,
    lbfgs_collocation=4_096,
    lbfgs_resample_every=1_000,
    data_weight=0.0,
    checkpoint_every=500,
)


def _encode(xp, z):
    """The network's input: w = ln(1 + z) mapped to [-1, 1] over the trained range.

    Near the source (z → 0) w → z, so dN/dξ = N'(w)·z/(1 + z) → 0 and the source condition
    p_ξ → −½ holds by construction; the network only resolves z ≳ 1e-3, where p bends.
    """
    hi = math.log1p(Z_MAX)
    w = xp.clip(xp.log1p(z), None, hi)  # beyond z = 60 the envelope is < 1e-26
    return (w * (2.0 / hi) - 1.0)[..., None]


def envelope(xp, z):
    """The part of m = e^z·p known in closed form: ½·Q(z)·ln(1 + 1/z), Q = e^z's cubic Taylor
    polynomial over (1 + z⁴/24).

    Near the source m = −½·e^z·ln z + (an entire function), and Q = e^z + O(z⁴): what is left for
    the network is smooth up to a z⁴·ln z term (with Q = 1 it keeps z·ln z, which a tanh network
    follows badly: the median error was 20× larger). Far away Q → 4/z and the envelope decays
    like 2/z², below m ~ 1/(2z), so N stays small everywhere.
    """
    q = (1.0 + z * (1.0 + z * (0.5 + z / 6.0))) / (1.0 + z**4 / 24.0)
    return 0.5 * q * xp.log1p(1.0 / z)


def half_e1(xp, weights: dict, n_layers: int):
    """z ↦ ½·E1(z) by the network, for z > 0 of any shape, in the namespace ``xp``."""

    def ez(z):
        n = mlp_apply(xp, weights, _encode(xp, z), n_layers)[..., 0]
        return xp.exp(-z) * (envelope(xp, z) + n)

    return ez


def reference_half_e1(xp):
    """z ↦ ½·E1(z) exactly: SciPy's ``exp1`` for NumPy, ``jax_exp1`` for JAX."""
    if xp is np:
        return lambda z: 0.5 * exp1(z)
    return lambda z: 0.5 * jax_exp1(z)


def jax_exp1(z):
    """E1(z) for z > 0 in JAX, to round-off, with dE1/dz = −e^(−z)/z as its derivative.

    ``jax.scipy.special.exp1`` (JAX 0.10) never returns for an array holding both small and large
    arguments (its vectorised iteration does not stop), so this is the textbook pair: the power
    series −γ − ln z − Σ (−z)^k/(k·k!) for z ≤ 1 (25 terms) and the continued fraction
    e^(−z)/(z + 1 − 1/(z + 3 − 4/(z + 5 − …))) for z > 1 (60 steps of Lentz's method).
    """
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def e1(z):
        small = jnp.minimum(z, 1.0)
        term, total = jnp.ones_like(z), jnp.zeros_like(z)
        for k in range(1, 26):
            term = -term * small / k
            total = total + term / k
        series = -np.euler_gamma - jnp.log(small) - total
        large = jnp.maximum(z, 1.0)
        b = large + 1.0
        c, d = jnp.full_like(z, 1e300), 1.0 / b
        h = d
        for i in range(1, 61):
            b = b + 2.0
            d = 1.0 / (b - i * i * d)
            c = b - i * i / c
            h = h * c * d
        return jnp.where(z <= 1.0, series, h * jnp.exp(-large))

    @e1.defjvp
    def _(primals, tangents):
        (z,), (dz,) = primals, tangents
        return e1(z), -jnp.exp(-z) / z * dz

    return e1(z)


def predict(xp, ez, t_s, **values) -> dict:
    """``Pressure [psi]`` at times ``t_s`` [s] with ``ez`` the network's or the reference's ½·E1."""
    return {wells.OBSERVABLE: wells.pressure_psi(xp, ez, t_s, **values)}


@dataclass
class BoltzmannProblem:
    """Collocation in ξ: three quarters over ξ ≥ −10 where p bends, a quarter over the whole range."""

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        lo, hi = XI_RANGE
        low = torch.where(torch.arange(n) % 4 == 0, torch.tensor(lo), torch.tensor(-10.0))
        return (low + (hi - low) * torch.rand(n, generator=gen))[:, None]

    def physics_loss(self, model, x: torch.Tensor) -> torch.Tensor:
        xi = x[:, 0].clone().requires_grad_(True)
        z = torch.exp(xi)
        m = envelope(torch, z) + model(_encode(torch, z))[..., 0]
        (m_xi,) = torch.autograd.grad(m.sum(), xi, create_graph=True)
        (m_xixi,) = torch.autograd.grad(m_xi.sum(), xi, create_graph=True)
        # p = e^(−z)·m turns p_ξξ + z·p_ξ = 0 into m_ξξ − z·(m_ξ + m) = 0, free of exponentials.
        residual = (m_xixi - z * (m_xi + m)) / (1.0 + z)
        return residual.square().mean()

    def data_loss(self, model, batch):  # physics only
        raise NotImplementedError


def network_error(weights: dict, n_layers: int, n: int = 4001) -> dict:
    """max relative error of the network's ½·E1 over ξ in the trained range."""
    z = np.exp(np.linspace(*XI_RANGE, n))
    rel = np.abs(half_e1(np, weights, n_layers)(z) / reference_half_e1(np)(z) - 1.0)
    return {"max_rel": float(rel.max()), "at_z": float(z[rel.argmax()]), "median_rel": float(np.median(rel))}


# Validation records: 60 times log-spaced over 0.01 h … 500 h (shut-in times for a buildup).
VALIDATION_TIMES_S = np.geomspace(*wells.DOMAIN["t"], 60)


def validate_drawdown(weights: dict, n_layers: int, n_points: int = 128, seed: int = 4_242) -> dict:
    """Pressure-drop error against the exponential-integral reference on a held-out Sobol design.

    Every input of the box varies (log scales for k, L, rate, μ, c_t, h); half the points are
    drawdowns (production_time = 0), half buildups. Per record: max over its times of
    |Δp_net − Δp_ref| / max |Δp_ref|, and the RMSE over max |Δp_ref|. (In psi the errors mean
    little over this box: its corners drop millions of psi, which no well does.)
    """
    logs = {"permeability", "fault_distance", "rate", "viscosity", "total_compressibility", "thickness"}
    box = {k: v for k, v in wells.DOMAIN.items() if k != "t"}
    design = sobol_design(
        {k: (math.log(a), math.log(b)) if k in logs else (a, b) for k, (a, b) in box.items()}, n_points, seed
    )
    design = {k: np.exp(v) if k in logs else np.asarray(v) for k, v in design.items()}
    design["production_time"] = np.where(np.arange(n_points) % 2 == 0, 0.0, design["production_time"])
    net, ref = half_e1(np, weights, n_layers), reference_half_e1(np)
    rel, rmse = np.empty(n_points), np.empty(n_points)
    for i in range(n_points):
        row = {k: float(v[i]) for k, v in design.items()}
        dp_net = wells.pressure_drop_psi(np, net, VALIDATION_TIMES_S, **row)
        dp_ref = wells.pressure_drop_psi(np, ref, VALIDATION_TIMES_S, **row)
        rel[i] = np.abs(dp_net - dp_ref).max() / np.abs(dp_ref).max()
        rmse[i] = np.sqrt(np.mean((dp_net - dp_ref) ** 2)) / np.abs(dp_ref).max()
    return {
        "design": f"{n_points} scrambled Sobol points (seed {seed}) over every input of the box (log "
        "scales for k, L, rate, viscosity, c_t, thickness), half drawdowns, half buildups; 60 times "
        "log-spaced over 0.01-500 h; reference: line source + image well with SciPy exp1",
        "relative_pressure_drop_error": {
            "median": float(np.median(rel)),
            "p95": float(np.quantile(rel, 0.95)),
            "max": float(rel.max()),
        },
        # Relative, as the error is: a study's surrogate σ is this times each reading's drop.
        "relative_rmse": rmse_stats(rmse),
        "network_half_e1": network_error(weights, n_layers),
    }


def train_drawdown(
    config: TrainConfig = DRAWDOWN_CONFIG, out: Path = WEIGHTS, checkpoint=None, progress=True
):
    """Train the Boltzmann-variable network, validate it, write the weights with their card."""
    model = MLP(1, 1, config.hidden, seed=config.seed)
    record = train(BoltzmannProblem(), model, config, checkpoint=checkpoint, progress=progress)
    model.double()
    weights = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    n_layers = len(model.layers)
    return save_weights(out, weights, _card(config, record, validate_drawdown(weights, n_layers), n_layers))


def _card(config: TrainConfig, record: dict, validation: dict, n_layers: int) -> dict:

    device = record["device"]
    return {
        "name": "reservoir.drawdown",
        "system": "radial diffusivity equation, unit line source, infinite homogeneous reservoir; "
        "sealing fault by an image well at 2L, skin as a steady term, buildup by superposition in time",
        "architecture": {
            "type": "tanh MLP inside an exact envelope",
            "inputs": ["w = ln(1 + z), z = r_D²/(4 t_D) (Boltzmann variable), mapped to [-1, 1] over z ≤ 60"],
            "hidden": list(config.hidden),
            "outputs": ["N"],
            "n_layers": n_layers,
            "ansatz": "p_D = e^(−z)·(½·Q(z)·ln(1 + 1/z) + N(ln(1 + z))), Q = (1 + z + z²/2 + z³/6)/(1 + z⁴/24), "
            "z = r_D²/(4 t_D)",
            "dtype": "float64",
        },
        "normalisation": "t_D = 0.0002637 k t/(φ μ c_t r_w²), p_D = k h Δp/(141.2 q B μ) (field units)",
        "domain": {k: list(v) for k, v in wells.DOMAIN.items()},
        "parameters": list(wells.PARAMETERS),
        "conditions": list(wells.CONDITIONS),
        "observables": [wells.OBSERVABLE],
        "units": wells.UNITS,
        "training": {
            "config": config.to_dict(),
            "loss": "mean ((m_ξξ − z·(m_ξ + m))/(1 + z))², m = e^z·p (source and far field hold by construction)",
            "mix": "physics residual and the line-source condition only; no E1 values",
            "wall_time_s": round(record["wall_time_s"], 1),
            "final_loss": next((h for h in reversed(record["history"]) if "loss" in h), None),
            "device": device,
            "hardware": hardware_description(device),
            "reproduce": "bayespinn train reservoir.drawdown",
        },
        "versions": training_versions(),
        "validation": validation,
    }
