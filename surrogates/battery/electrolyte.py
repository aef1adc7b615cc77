"""The cell's electrolyte under a constant-current discharge: a physics-informed network.

Across the cell (negative electrode, separator, positive electrode) the lithium-ion concentration
c_e(t, x) obeys the DFN's electrolyte diffusion

    ε ∂c_e/∂t = ∂/∂x (ε^b D_e(c_e) ∂c_e/∂x) + (1 − t⁺) q(x),     ∂c_e/∂x = 0 at both current collectors,

with PyBaMM's Chen2020 electrolyte (Nyman 2008's D_e and κ, Bruggeman b = 1.5). Here q is the
SPMe's closure: the reaction spread uniformly through each electrode (q = i/(F·L_n) in the
negative, 0 in the separator, −i/(F·L_p) in the positive, i the current density). Under that
closure c_e depends on time and the C-rate only, not on the particles' parameters.

The network maps (t, c_rate) to the coefficients of a series in a stretched coordinate u,
du/dx ∝ ε^(−b), in which the flux ε^b D_e ∂c_e/∂x is continuous wherever ∂c_e/∂u is:

    c_e = c_e0 · (1 + c_rate · (1 − e^(−t/τ_0)) · Σ_k N_k(t, c_rate) φ_k(u)),

with φ_k cosines and one kink per interface (``basis``), the mean mode set by the others. So the
initial state, the no-flux boundaries, the flux's continuity at both interfaces and the
electrolyte's lithium hold exactly; the loss is the diffusion residual alone (no solution data). The voltage terms that
follow from it are PyBaMM's SPMe's (composite electrolyte and solid Ohm's laws, the
concentration overpotential, Butler–Volmer with the local c_e; ``voltage_terms``).
"""

from __future__ import annotations

import functools
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from surrogates.battery import chen2020
from surrogates.pinn.card import save_weights
from surrogates.pinn.network import MLP, mlp_apply, mlp_time_jets
from surrogates.pinn.trainer import TrainConfig, hardware_description, train

__all__ = [
    "BARS",
    "CONSTANTS",
    "ELECTROLYTE_CONFIG",
    "WEIGHTS",
    "basis",
    "concentration",
    "conductivity",
    "diffusivity",
    "diffusivity_integral",
    "quadrature_concentrations",
    "state",
    "state_once",
    "stretched",
    "train_electrolyte",
    "validate_electrolyte",
    "voltage_terms",
]

WEIGHTS = Path(__file__).parent / "weights" / "electrolyte.safetensors"
CONSTANTS = {  # PyBaMM 26's Chen2020 (tests/surrogates/test_battery_electrolyte.py checks them)
    "Negative electrode thickness [m]": 8.52e-05,
    "Separator thickness [m]": 1.2e-05,
    "Positive electrode thickness [m]": 7.56e-05,
    "Negative electrode porosity": 0.25,
    "Separator porosity": 0.47,
    "Positive electrode porosity": 0.335,
    "Negative electrode Bruggeman coefficient (electrolyte)": 1.5,
    "Separator Bruggeman coefficient (electrolyte)": 1.5,
    "Positive electrode Bruggeman coefficient (electrolyte)": 1.5,
    "Negative electrode conductivity [S.m-1]": 215.0,
    "Positive electrode conductivity [S.m-1]": 0.18,
    "Cation transference number": 0.2594,
    "Thermodynamic factor": 1.0,
    "Initial concentration in electrolyte [mol.m-3]": 1000.0,
}
_C = CONSTANTS
REGIONS = ("Negative electrode", "Separator", "Positive electrode")
THICKNESS_M = np.array([_C[f"{r} thickness [m]"] for r in REGIONS])
POROSITY = np.array([_C[f"{r} porosity"] for r in REGIONS])
BRUGGEMAN = _C["Separator Bruggeman coefficient (electrolyte)"]  # 1.5 in all three regions
TRANSFERENCE = _C["Cation transference number"]
C_E0 = _C["Initial concentration in electrolyte [mol.m-3]"]
N_COSINES = 32
N_MODES = N_COSINES + 2  # and a kink at each interface
START_S = 20.0  # τ_0: the ansatz's start-up; the residual sets the true one
TIME_SCALES_S = (20.0, 200.0, 1000.0)  # the transient's inputs e^(−t/τ): its settling takes ~1,000 s
QUADRATURE_NODES = 5  # Gauss–Legendre per electrode, for the averages across each
# the shipped network's bar against PyBaMM's SPMe, at every validation C-rate
BARS = {"c_e_rmse_mol_m3": 30.0, "voltage_share_rmse_V": 4e-3}

ELECTROLYTE_CONFIG = TrainConfig(
    hidden=(48, 48, 48),
    adam_steps=40_000,
    lr_start=3e-3,
    lr_end=1e-4,
    collocation_batch=256,
    data_batch=1,
    lbfgs_steps=2_000,
    lbfgs_collocation=2_048,
    lbfgs_resample_every=100,
    physics_weight=1.0,
    data_weight=0.0,
    n_trajectories=0,
    checkpoint_every=500,
)


def diffusivity(xp: Any, c_e):
    """Nyman 2008's electrolyte diffusivity [m2.s-1] at ``c_e`` [mol.m-3]."""
    y = c_e / 1000.0
    return 8.794e-11 * y * y - 3.972e-10 * y + 4.862e-10


def diffusivity_integral(c_e):
    """Φ(c_e) = ∫_0^c_e D_e dc [m2.s-1 · mol.m-3]: ∂Φ/∂x = D_e ∂c_e/∂x, so a weak form needs no
    gradient of c_e (``through_cell.electrolyte_residual``)."""
    y = c_e / 1000.0
    return 1000.0 * y * (8.794e-11 / 3.0 * y * y - 3.972e-10 / 2.0 * y + 4.862e-10)


def _diffusivity_slope(c_e):
    """dD_e/dc_e [m2.s-1 per mol.m-3]."""
    return (2.0 * 8.794e-11 * c_e / 1000.0 - 3.972e-10) / 1000.0


def conductivity(xp: Any, c_e):
    """Nyman 2008's electrolyte conductivity [S.m-1] at ``c_e`` [mol.m-3]."""
    y = c_e / 1000.0
    return 0.1297 * y**3 - 2.51 * y**1.5 + 3.329 * y


def _edges_m() -> np.ndarray:
    return np.r_[0.0, np.cumsum(THICKNESS_M)]


def stretched(x_m):
    """u in [0, 1] at ``x_m`` [m]: ∫ ε^(−b) dx, normalised."""
    edges = _edges_m()
    du = POROSITY**-BRUGGEMAN
    steps = np.r_[0.0, np.cumsum(du * THICKNESS_M)]
    region = np.clip(np.searchsorted(edges, x_m, side="right") - 1, 0, 2)
    return (steps[region] + du[region] * (x_m - edges[region])) / steps[-1]


def _raw_basis(u) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cos(kπu)/(1 + k²) for k < N_COSINES, then one kink per interface: (u − u_i)₊² − (1 − u_i)·u²,
    whose second derivative jumps at u_i as the solution's does (its source and storage jump
    there) and whose slope vanishes at both ends. Values and two u-derivatives.

    Without the kinks the cosines' coefficients decay only like k⁻³ and the residual near the
    interfaces floors the fit; the weights make the outputs O(1) for coefficients that decay like
    the solution's rather than for the roughest modes."""
    k = np.arange(N_COSINES) * math.pi
    weight = 1.0 / (1.0 + (k / math.pi) ** 2)
    ku = np.multiply.outer(u, k)
    cos = (np.cos(ku) * weight, -k * np.sin(ku) * weight, -(k**2) * np.cos(ku) * weight)
    u = np.asarray(u)[..., None]
    u_i = stretched(_edges_m()[1:3])
    ramp = np.maximum(u - u_i, 0.0)
    kink = (
        ramp**2 - (1.0 - u_i) * u**2,
        2.0 * ramp - 2.0 * (1.0 - u_i) * u,
        2.0 * (ramp > 0) - 2.0 * (1.0 - u_i),
    )
    return tuple(np.concatenate([c, q], -1) for c, q in zip(cos, kink, strict=True))


@functools.cache
def _conserving_projection() -> np.ndarray:
    """P with a = P·N holding ∫ε·c_e dx fixed: the mean mode is set by the others. The residual
    alone pins a slow drift of the mean only weakly (1,000 mol/m³ over an hour is 5 % of its unit)."""
    nodes, w = np.polynomial.legendre.leggauss(64)
    edges = stretched(_edges_m())
    storage = POROSITY ** (1.0 + BRUGGEMAN)  # ∫ε c dx = Ξ ∫ ε^(1+b) c du
    lithium = sum(
        e * (b - a) / 2.0 * (w @ _raw_basis(a + (b - a) * (nodes + 1.0) / 2.0)[0])
        for e, a, b in zip(storage, edges[:-1], edges[1:], strict=True)
    )
    projection = np.eye(N_MODES)
    projection[0] = -lithium / lithium[0]
    projection[0, 0] = 0.0
    return projection


def basis(u) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The series' basis at ``u`` and its first two u-derivatives, each of shape (..., N_MODES),
    with the lithium in the electrolyte conserved whatever the coefficients."""
    projection = _conserving_projection()
    return tuple(r @ projection for r in _raw_basis(u))


def _time_inputs(xp, t, c_rate):
    """(inputs in [-1, 1], their time derivatives)."""
    decays = [xp.exp(-t / tau) for tau in TIME_SCALES_S]
    z = [2.0 * d - 1.0 for d in decays] + [(c_rate - 1.25) / 0.75 + 0.0 * t]
    dz = [-2.0 * d / tau for d, tau in zip(decays, TIME_SCALES_S, strict=True)] + [0.0 * t]
    return xp.stack(z, -1), xp.stack(dz, -1)


def _start(xp, t):
    return 1.0 - xp.exp(-t / START_S)


def concentration(xp, weights: dict, n_layers: int, t, c_rate, cosines):
    """c_e [mol.m-3] at times ``t`` [s] (shape (...)) and the points whose ``basis`` is ``cosines``
    (shape (n, N_MODES)); returns (..., n)."""
    z, _ = _time_inputs(xp, t, c_rate)
    modes = mlp_apply(xp, weights, z, n_layers)
    return C_E0 * (1.0 + (c_rate * _start(xp, t))[..., None] * (modes @ cosines.T))


def current_density(c_rate):
    """The cell's current density [A.m-2] at ``c_rate``."""
    return chen2020.CAPACITY_AH * c_rate / chen2020._AREA_M2


def _lengths_mean(values) -> float:
    return float(np.sum(THICKNESS_M * values) / THICKNESS_M.sum())


# κ's concentration in the electrolyte's Ohm's law: PyBaMM's composite SPMe takes the x-average of
# ε·c_e / ε as ⟨ε·c_e⟩·⟨1/ε⟩, which the conserved lithium keeps at 1,036 mol/m³ (not c_e0).
C_E_OHMIC = C_E0 * _lengths_mean(POROSITY) * _lengths_mean(1.0 / POROSITY)


@functools.cache
def quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes in each electrode: (their basis, shape (2·M, N_MODES); the weights of
    an electrode's average, shape (M,))."""
    nodes, w = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    edges = _edges_m()
    x = np.concatenate([a + (b - a) * (nodes + 1.0) / 2.0 for a, b in (edges[:2], edges[2:])])
    return basis(stretched(x))[0], w / 2.0


def quadrature_concentrations(xp, weights: dict, n_layers: int, t, c_rate):
    """c_e at each electrode's Gauss–Legendre nodes: two arrays of shape (..., M)."""
    cosines, _ = quadrature()
    c = concentration(xp, weights, n_layers, t, c_rate, xp.asarray(cosines))
    return c[..., :QUADRATURE_NODES], c[..., QUADRATURE_NODES:]


def state(xp, weights: dict, t, c_rate):
    """(c_e at the negative's nodes, c_e at the positive's, the voltage share ``voltage_terms``)."""
    c_n, c_p = quadrature_concentrations(xp, weights, len(weights) // 2, t, c_rate)
    return c_n, c_p, voltage_terms(xp, c_n, c_p, c_rate)


def state_once(xp, weights: dict, t, c_rate):
    """``state``, computed in NumPy when JAX knows ``t`` and ``c_rate`` before tracing (a
    record's times and C-rate inside a jitted likelihood). It does not depend on the parameters,
    so a sampler then never recomputes it: it was 0.3 ms of a 1.4 ms likelihood on one core."""
    if getattr(xp, "__name__", "") != "jax.numpy":
        return state(xp, weights, t, c_rate)
    import jax

    if any(isinstance(a, jax.core.Tracer) for a in (t, c_rate, *weights.values())):
        return state(xp, weights, t, c_rate)
    cell = {k: np.asarray(v) for k, v in weights.items()}
    return tuple(xp.asarray(a) for a in state(np, cell, np.asarray(t), np.asarray(c_rate)))


def region_mean(xp, values):
    """The average across an electrode of ``values`` at its Gauss–Legendre nodes (last axis)."""
    return values @ xp.asarray(quadrature()[1], dtype=values.dtype)


def voltage_terms(xp, c_n, c_p, c_rate):
    """The electrolyte's and the solid's share of the voltage [V] under the SPMe's closure
    (PyBaMM's composite model): concentration overpotential + electrolyte Ohm's law + solid
    Ohm's law. ``c_n``, ``c_p`` are c_e at each electrode's nodes (``quadrature_concentrations``)."""
    i = current_density(c_rate)
    chi = 2.0 * (1.0 - TRANSFERENCE) * _C["Thermodynamic factor"]
    eta_c = chi * chen2020._THERMAL_V * (region_mean(xp, xp.log(c_p)) - region_mean(xp, xp.log(c_n)))
    # the current in the electrolyte falls linearly across each electrode: a third of its length
    resistance = np.array([1.0 / 3.0, 1.0, 1.0 / 3.0]) * THICKNESS_M / POROSITY**BRUGGEMAN
    ohmic_e = -i * float(resistance.sum() / conductivity(np, C_E_OHMIC))
    L_n, _, L_p = THICKNESS_M
    sigma_n, sigma_p = (
        _C["Negative electrode conductivity [S.m-1]"],
        _C["Positive electrode conductivity [S.m-1]"],
    )
    ohmic_s = -i * (L_n / (3.0 * sigma_n) + L_p / (3.0 * sigma_p))
    return eta_c + ohmic_e + ohmic_s


@dataclass
class ElectrolyteResidual:
    """The trainer's problem: the diffusion residual on a fixed grid in u at sampled (t, c_rate)."""

    n_grid: int = 192

    def __post_init__(self):
        u = (np.arange(self.n_grid) + 0.5) / self.n_grid  # cell midpoints: never on an interface
        steps = stretched(_edges_m())
        region = np.clip(np.searchsorted(steps, u, side="right") - 1, 0, 2)
        total_stretch_m = float(np.sum(POROSITY**-BRUGGEMAN * THICKNESS_M))  # Ξ: u = ξ/Ξ
        eps_b = POROSITY[region] ** BRUGGEMAN
        # ε^b·(1 − t⁺)·q / i: the source per unit current density, by region
        source = (
            (1.0 - TRANSFERENCE) / chen2020.F * np.array([1.0 / THICKNESS_M[0], 0.0, -1.0 / THICKNESS_M[2]])
        )
        as_t = torch.from_numpy
        self.phi, self.phi_u, self.phi_uu = (as_t(b) for b in basis(u))
        self.storage = as_t(POROSITY[region] * eps_b)  # ε^(1+b)
        self.source = as_t(eps_b * source[region])
        self.inverse_stretch2 = 1.0 / total_stretch_m**2
        # the residual's unit: the negative electrode's source at 1C (so 2C weighs four times 1C)
        self.unit = float(abs(POROSITY[0] ** BRUGGEMAN * source[0]) * current_density(1.0))

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        # denser towards 2C, where the positive electrode nears depletion and the profile's
        # coefficients turn fastest with the C-rate (density ∝ (2 − c_rate)^(−1/2))
        c_rate = 2.0 - 1.5 * torch.rand(n, generator=gen, dtype=torch.float64).square()
        t_max = 1.5 * 3600.0 / c_rate
        uniform = torch.rand(n, generator=gen, dtype=torch.float64) * t_max
        early = torch.exp(
            torch.empty(n, dtype=torch.float64).uniform_(math.log(1.0), math.log(3000.0), generator=gen)
        )
        t = torch.where(torch.arange(n) % 2 == 0, uniform, torch.minimum(early, t_max))
        return torch.stack([t, c_rate], -1)

    def physics_loss(self, model, x: torch.Tensor) -> torch.Tensor:
        dtype = next(model.parameters()).dtype
        x = x.to(dtype)
        t, c_rate = x[:, 0], x[:, 1]
        z, dz = _time_inputs(torch, t, c_rate)
        modes, modes_t, _ = mlp_time_jets(torch, dict(model.named_parameters()), z, dz, len(model.layers))
        phi, phi_u, phi_uu = (a.to(x.device, dtype) for a in (self.phi, self.phi_u, self.phi_uu))
        s = (c_rate * _start(torch, t))[:, None]
        s_t = (c_rate * torch.exp(-t / START_S) / START_S)[:, None]
        shape = modes @ phi.T
        c = C_E0 * (1.0 + s * shape)
        c_t = C_E0 * (s_t * shape + s * (modes_t @ phi.T))
        c_u = C_E0 * s * (modes @ phi_u.T)
        c_uu = C_E0 * s * (modes @ phi_uu.T)
        # ∂u(D(c)·∂u c) = D·c_uu + D'(c)·c_u²
        flux_divergence = self.inverse_stretch2 * (
            diffusivity(torch, c) * c_uu + _diffusivity_slope(c) * c_u * c_u
        )
        i = current_density(c_rate)[:, None]
        residual = self.storage.to(x) * c_t - flux_divergence - self.source.to(x) * i
        return (residual / self.unit).square().mean()

    def data_batch(self, n, gen, device, dtype=torch.float32):
        return {}

    def data_loss(self, model, batch):  # physics only (see the module's docstring)
        raise NotImplementedError


def train_electrolyte(
    config: TrainConfig = ELECTROLYTE_CONFIG, out: Path = WEIGHTS, checkpoint=None, progress=True
):
    """Fit the network to the diffusion residual, measure it against PyBaMM's SPMe, write the card."""
    model = MLP(len(TIME_SCALES_S) + 1, N_MODES, config.hidden, seed=config.seed)
    record = train(ElectrolyteResidual(), model, config, checkpoint=checkpoint, progress=progress)
    model.double()
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    n_layers = len(model.layers)
    card = {
        "name": "battery.electrolyte",
        "system": "the DFN's electrolyte diffusion (Chen2020) with the SPMe's uniform reaction, constant current",
        "architecture": {
            "type": "tanh MLP of time and C-rate giving a series across the cell",
            "inputs": [f"2·exp(−t/{tau:g} s) − 1" for tau in TIME_SCALES_S] + ["(c_rate − 1.25)/0.75"],
            "hidden": list(config.hidden),
            "n_layers": n_layers,
            "ansatz": f"c_e = {C_E0:g}·(1 + c_rate·(1 − exp(−t/{START_S:g} s))·Σ_k N_k φ_k(u)), "
            f"φ_k = cos(kπu)/(1 + k²) for k < {N_COSINES} and (u − u_i)₊² − (1 − u_i)·u² at each "
            "interface u_i, the mean mode set by the others (conserved lithium); u = ∫ε^(−1.5)dx "
            "normalised",
            "dtype": "float64",
        },
        "domain": {"c_rate": [0.5, 2.0], "t_s": "[0, 1.5 × 3600 s / c_rate]"},
        "training": {
            "config": config.to_dict(),
            "loss": "mean squared diffusion residual in units of the negative electrode's source",
            "wall_time_s": round(record["wall_time_s"], 1),
            "final_loss": next((h for h in reversed(record["history"]) if "loss" in h), None),
            "device": record["device"],
            "hardware": hardware_description(record["device"]),
            "reproduce": "bayespinn train battery.p2d (trains this network first when its file is missing)",
        },
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "validation": validate_electrolyte(weights, n_layers),
    }
    save_weights(out, weights, card)
    return card


SPME_CELLS = (("x_n", 40), ("x_s", 40), ("x_p", 40))
VALIDATION_C_RATES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
_SPME_SHARE = (
    "X-averaged concentration overpotential [V]",
    "X-averaged electrolyte ohmic losses [V]",
    "X-averaged solid phase ohmic losses [V]",
)


def spme_solution(c_rate: float, dt_s: float = 10.0):
    """PyBaMM's SPMe (Chen2020, 40 volumes per region) at scales 1/1 up to its cut-off: (times,
    x [m], c_e [mol.m-3] of shape (x, t), the electrolyte's and solid's voltage share [V])."""
    from surrogates.battery.pybamm_reference import PybammReference

    sim = PybammReference("SPMe", 60, SPME_CELLS, solve_past_cutoff=False).simulation(True)
    inputs = {"positive_diffusivity_scale": 1.0, "negative_j0_scale": 1.0, "c_rate": c_rate}
    t_max = 1.5 * 3600.0 / c_rate
    sol = sim.solve([0.0, t_max], inputs=inputs, t_interp=np.arange(0.0, t_max, dt_s))
    before = sol.t < sol.t[-1]  # the event's own time is the cut-off, off the 10 s grid
    c_e = sol["Electrolyte concentration [mol.m-3]"].entries[:, before]  # at the volumes' centres
    share = sum(sol[k].entries[before] for k in _SPME_SHARE)
    return sol.t[before], sol["x [m]"].entries[:, 0], c_e, share


def validate_electrolyte(weights: dict, n_layers: int) -> dict:
    """c_e and the voltage share against PyBaMM's SPMe at each of ``VALIDATION_C_RATES``."""
    rows = []
    for c_rate in VALIDATION_C_RATES:
        t, x, c_ref, share_ref = spme_solution(c_rate)
        cosines = basis(stretched(x))[0]
        c = concentration(np, weights, n_layers, t, np.full_like(t, c_rate), cosines).T
        share = voltage_terms(
            np, *quadrature_concentrations(np, weights, n_layers, t, np.full_like(t, c_rate)), c_rate
        )
        rows.append(
            {
                "c_rate": c_rate,
                "c_e_rmse_mol_m3": float(np.sqrt(np.mean((c - c_ref) ** 2))),
                "c_e_max_abs_mol_m3": float(np.abs(c - c_ref).max()),
                "c_e_range_mol_m3": [float(c_ref.min()), float(c_ref.max())],
                "voltage_share_rmse_V": float(np.sqrt(np.mean((share - share_ref) ** 2))),
                "voltage_share_max_abs_V": float(np.abs(share - share_ref).max()),
            }
        )
    return {
        "reference": "PyBaMM SPMe, Chen2020, scales 1/1, finite volumes 40 per region, every 10 s up to the "
        "2.5 V cut-off; the voltage share is concentration overpotential + electrolyte and solid ohmic losses",
        "bar": BARS,
        "worst": {
            k: max(r[k] for r in rows) for k in rows[0] if k.endswith(("_V", "_m3")) and "range" not in k
        },
        "points": rows,
    }
