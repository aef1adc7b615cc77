"""The ``battery.p2d`` surrogate: the DFN's charge conservation and Butler–Volmer, solved at
five nodes per electrode, under surfaces and electrolyte concentrations learned from the DFN.

The DFN differs from the SPM by what happens across the cell: the electrolyte's concentration
and potential drop, and a reaction that is not uniform through each electrode, so the particles
near the separator fill first. On Chen2020 those add 13–200 mV to the SPM's voltage and bring the
cut-off up to 1 % earlier; the SPMe, which keeps the electrolyte but spreads the reaction evenly,
leaves 3–36 mV of that. Here each electrode is resolved at the electrolyte's five Gauss–Legendre
nodes s_k (``through_cell``). A network N(time, x^SPM, log10 scales, c_rate) gives each node's
particle surface stoichiometry, in logit space so it stays inside (0, 1), and its electrolyte
concentration, in log space:

    logit x_k = logit x^SPM(t) + g·N_mean + h·Σ_{m=1..4} N_m·P_m(s_k),   g = 0.1·f/sqrt(f + 0.01),
                                                                        h = 0.5·sqrt(f),
    ln c_e,k  = ln c_e,k^SPMe(t) + e·Σ_{m=0..4} M_m·P_m(s_k),             e = 0.5·(1 − e^(−t/120 s)),

with f = t·c_rate/3600 the nominal discharge fraction (g, h and e vanish at t = 0: the initial
state is exact). The reaction j_k = j_avg·(1 + Σ δ_m·P_m(s_k)) is not learned: ``through_cell.solve_reaction``
finds the δ at which the DFN's charge conservation in solid and electrolyte (their Ohm's laws,
with κ at each node's c_e) and Butler–Volmer hold at every node, by Newton, whose last step
carries the gradient (the implicit function theorem's). Then

    V = B_p − B_n − ∫ i_e/κ_eff dx + 0.1·N_V         (``through_cell.cell_voltage``)

plus PyBaMM's barrier at empty and full at each electrode's mean surface. The physics under it:

- x^SPM, the surface stoichiometries of ``battery.spm``'s particle network (trained on the
  spherical-diffusion residual alone; its weights are copied into this surrogate's file);
- c_e^SPMe(t, x) at the nodes, from ``electrolyte``'s network (trained on the electrolyte-diffusion
  residual alone with the SPMe's uniform reaction; copied likewise). The uneven reaction moves
  c_e far from it (22–147 mol/m³ RMS, up to 675, over eight training discharges), and the
  voltage at the DFN's own surfaces with it by 0.8–16 mV (0.4–1.4 mV with the DFN's own c_e),
  so the network corrects it at the nodes (M, fitted to the DFN's c_e);
- the DFN's charge conservation and Butler–Volmer at the nodes, solved exactly (a hard
  constraint, residual under 1e-9 V), and Chen2020's OCPs in closed form (``chen2020``);
- each node's particle diffusion under that solved, uneven reaction, as a residual in the loss
  (below).

N is fitted in two stages to PyBaMM DFN solutions (``p2d_reference``) on a Sobol design of the
box, every 10 s up to the cut-off and densely on the last 5 % before it: first the nodes'
surfaces (in logit space) and c_e (in log space) alone, then with the voltage and the particles'
diffusion residual too. While fitting the voltage the reaction is held at its solved value
(through the solve, Adam diverged). On 64 held-out points: 0.84 / 2.5 / 3.4 mV (median / p95 /
max voltage RMSE), the cut-off time within 0.11 % (``weights/p2d.json``). The box's edge holds
none of them: at 2C with positive_diffusivity_scale 0.4–0.7 the DFN's electrolyte empties near
the positive collector before the cut-off (under 1 mol/m³ at the last node, the network's 23; of the
1,024 training discharges none went below 30), and 7 of a 17 × 5 grid of scales at 2C were over
5 mV (at most 15 mV, one cut-off 0.85 % late); at 1.95C at most 8 mV, at 1.9C 3.6 mV. The five
nodes are the limit there, not the data: at the DFN's own node surfaces and c_e the node solve is
10 mV off at 97 % of such a discharge and 60 mV at 99 % (0.7 mV throughout at 1C), and a retrain
with 64 more discharges drawn in the corner (1.9–2C, diffusivity × 0.25–1) fitted the nodes' c_e
there but left the worst cell at 10 mV and the held-out figures worse (1.03 / 3.0 / 3.7 mV).

The particles' diffusion residual (``DfnFit.particle_residuals``): along a whole discharge,
node k's particle under the reaction solved at the network's surfaces and c_e is x^SPM +
A·G·δ_k, with δ_k the reaction's departure from uniform there and G Duhamel's superposition of
the sphere's exact constant-flux response over the record (``particle.step_response_matrix``,
exact for a reaction linear between samples): the DFN's particle equation, its flux condition
and initial state in integral form, and x_k minus that is the residual. With the DFN's own
reaction at the nodes it gives the DFN's surfaces to 3e-5 / 9e-5 RMS in stoichiometry (negative
/ positive, eight training discharges); with the reaction solved at the DFN's surfaces and c_e,
to 0.0035 / 0.0042 (every 7th training discharge, ``training.fit``: the five-node solve's own
floor). It is weighted 1 in the voltage stage, on 4 whole discharges a step (in the first stage,
from the SPM's uniform surfaces, it diverged, see ``_stages``; at weight 10, in the second, too).

Before c_e was learned, with the SPMe closure's c_e under the solve, the residual's floor at the
DFN's own surfaces was 0.0113 / 0.0174, and weighting it pulled the surfaces away from the
DFN's toward that closure's particles. Measured as the bias a 5 mV record every 10 s would give
each of the 64 held-out points (linearised: −(SᵀS)⁻¹Sᵀe in exact-posterior sd, S the
surrogate's sensitivities to both log scales, e its error against the DFN;
``case_studies/battery_p2d/posterior_bias.py``), median over the points / share with both
under 1 sd, and at the case study's record:

    c_e             weight   residual RMS       held-out mV          posterior bias      case study (1C)
    SPMe closure    0        0.0125 / 0.0174    1.32 / 2.86 / 6.06   0.97 / 0.84, 47 %   +0.24 / −0.09 sd
    SPMe closure    0        0.0125 / 0.0179    1.30 / 2.99 / 6.02   0.89 / 0.93, 47 %   −0.30 / +0.63 sd
    SPMe closure    0.1      0.0121 / 0.0170    1.35 / 2.99 / 6.88   1.01 / 1.02, 39 %   −0.72 / +0.90 sd
    SPMe closure    1        0.0109 / 0.0150    1.48 / 3.17 / 7.51   1.49 / 1.50, 17 %   −1.41 / +1.95 sd
    learned         0        0.0078 / 0.0151    0.81 / 2.47 / 3.36   0.96 / 0.98, 41 %   −0.13 / +0.32 sd
    learned         1        0.0066 / 0.0108    0.84 / 2.49 / 3.37   1.08 / 1.00, 41 %   +0.22 / +0.17 sd

(the second row is a retrain of the first, another draw of the same recipe; the last row is
shipped, and NUTS on it at the case study's record measured +0.26 to +0.29 / +0.11 to +0.14 sd
over five runs). With c_e learned,
the residual no longer fights the DFN's surfaces: weighted, it falls by 15 / 28 % at no cost in
accuracy or bias. The table also says what a surrogate-alone posterior is worth across the box,
whatever the weights: at about half the held-out points a 5 mV record's bias exceeds 1 sd (a
0.3 mV error along the sensitivities is 1 sd of a 356-sample record), which is what
``correct = "importance"`` is for.

The electrolyte's diffusion under the uneven reaction is measured, not weighted. Pointwise at
the nodes (c_e across an electrode the quartic through them) the DFN's own c_e left 0.5 (median)
of the negative electrode's mean source at 1C, and in integral form from the collector to a node
up to 0.2 (finite differences on PyBaMM's mesh: 0.017): five nodes do not resolve c_e's
gradient. In weak form they do (``through_cell.electrolyte_residual``: test functions flat at
the collector, flat and zero at the separator, twice by parts, so no gradient of c_e enters):
PyBaMM's own fields leave 0.024 of the mean source at worst, and a reaction spread uniformly, as
the SPMe spreads it, up to 0.33. The shipped c_e under its solved reaction leaves 0.035 / 0.044
RMS over every 7th training discharge (``training.fit``, ``DfnFit.electrolyte_residuals``); on
the tests' 1.5C discharge 0.017 / 0.033 / 0.039 in the negative electrode, where the closure it
corrects leaves 0.19 / 0.070 / 0.11, and in the positive the solved reaction's departure from
the DFN's dominates it. Weighted in the voltage stage (in units of 0.02 of the mean source, the
reaction held) it fell only to 0.031 / 0.041, while the held-out median rose from 0.84 to 1.08
mV (2.59 / 3.32 mV p95 / max) and one training sample's solve stopped converging (513 mV): with
the reaction held only c_e can answer the residual, and it moves off the DFN's to absorb the
reaction's error. Through the solve the loss rose from 9 to 1e5 by step 200 and stayed between
4e3 and 2e6 until stopped at step 900, as it did for the voltage. So the correction is fitted to
the DFN's c_e, and the residual measured.

The cut-off cliff is the OCP's own steep edge, reached at the nodes nearest the separator, whose
surfaces rise steeply into it: this network's outputs follow them, so along a record it runs at
every time (at 48 record nodes it was 1.5 mV off; only the particle network, smooth in √t, runs
there). The solve runs at every time too: its reaction follows the graphite OCP's steps.

Measured on the way (1,024 DFN discharges, Adam, 2 cores): a network that gave the reaction
too, with the residual in its loss, fitted the voltage to 12–28 mV at best; Newton steps inside
the training with no surface data, 32–100 mV; surfaces fitted in stoichiometry rather than logit
overshot full on 2.8 % of samples, where no reaction balances them. A 32-wide network met the bar
at 2.2 / 5.1 / 10.4 mV and saved 0.25 of a 1.9 ms likelihood gradient. The SPMe-based surrogate
this replaced (a shift and a Gauss–Hermite spread of one surface per electrode, fitted to the
voltage alone) met the bar at 2.2 / 4.2 / 6.4 mV, with a likelihood gradient 3× cheaper.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import BarycentricInterpolator

from surrogates.battery import chen2020, electrolyte, p2d_reference, pybamm_reference, spm_pinn, through_cell
from surrogates.battery.particle import step_response_matrix
from surrogates.pinn.card import load_weights, save_residuals, save_weights
from surrogates.pinn.network import MLP, mlp_apply
from surrogates.pinn.trainer import TrainConfig, hardware_description, train

__all__ = ["DOMAIN", "P2D_CONFIG", "WEIGHTS", "dfn_curves", "predict", "train_p2d", "validate_p2d"]

DOMAIN = spm_pinn.DOMAIN
WEIGHTS = Path(__file__).parent / "weights" / "p2d.safetensors"
# prefixes of the SPM particle network's and the electrolyte network's tensors in this surrogate's file
PARTICLE, ELECTROLYTE = "particle.", "electrolyte."
VOLTAGE_SCALE_V = 0.1
SHIFT_SCALE, SPREAD_SCALE = 0.1, 0.5  # of the surfaces' logits: their mean's shift, their spread
SURFACE_MODES = 4  # P1..P4 across an electrode: with the mean, one value per node
C_E_MODES = 5  # P0..P4 of the electrolyte's correction across an electrode: one per node
C_E_SCALE = 0.5  # of the correction to ln c_e: the DFN's c_e is up to 0.65 off the SPMe closure's
ELECTROLYTE_S = 120.0  # about the electrolyte's diffusion time across the cell, L²/D_e
# outputs: 0, 1 each electrode's mean surface, 2 the voltage, then SURFACE_MODES per electrode,
# then C_E_MODES per electrode
N_INPUTS, N_OUTPUTS = 8, 3 + 2 * SURFACE_MODES + 2 * C_E_MODES
LOSS_SCALE_V = 0.01  # the voltage's loss is in units of 10 mV
LOSS_SCALE_LOGIT = 0.02  # the surfaces' in units of 0.02 in logit (0.005 in x at x = 0.5)
LOSS_SCALE_LOG_C_E = 0.01  # c_e's in units of 1 % (10 mol/m³ at c_e0)
SOLVE_STEPS = 6  # damped Newton from a uniform start (``through_cell._newton_step``), the last step full
END_FRACTIONS = 1.0 - np.geomspace(0.05, 1e-4, 40)  # of the cut-off time: the cliff
TRAIN_SEED = 7  # the held-out design uses spm_pinn's validation seed
PARTICLE_SCALE = 0.01  # the particles' residual is in units of 0.01 in stoichiometry
PARTICLE_LOSS_TEXT = (
    f"mean ((x_k − x_k,particle) / {PARTICLE_SCALE:g})², the particles' diffusion residual over "
    "both electrodes' nodes along whole training discharges: x_k,particle = x^SPM + A·G·δ_k, node "
    "k's particle under the reaction solved at the network's surfaces (held), by Duhamel's "
    "superposition of the sphere's exact constant-flux response (particle.step_response_matrix; "
    "δ_k the reaction's departure from uniform)"
)
ELECTROLYTE_STEP_S = 0.5  # ∂c_e/∂t for it: central differences over ±0.5 s (one-sided at t = 0)
ELECTROLYTE_LOSS_TEXT = (
    "R_m, the electrolyte's diffusion residual in weak form at both electrodes' nodes along whole "
    "training discharges (through_cell.electrolyte_residual: three test functions per electrode, "
    f"∂c_e/∂t by central differences over ±{ELECTROLYTE_STEP_S:g} s, the reaction solved at the network's "
    "surfaces and c_e; R_m over the mean source)"
)
RECORD_NODES = 48  # where the particle network runs along a record (``record_nodes``)

P2D_CONFIG = TrainConfig(
    hidden=(64, 64, 64, 64),
    adam_steps=3_000,  # the surfaces' stage; the voltage's takes two thirds of it (``train_p2d``)
    lr_start=3e-3,
    lr_end=1e-4,
    collocation_batch=4,  # whole discharges a step for the particles' residual
    data_batch=8_192,
    lbfgs_steps=0,
    lbfgs_data=32_768,
    lbfgs_resample_every=250,
    physics_weight=1.0,  # the particles' residual, in the voltage stage (``_stages``)
    data_weight=1.0,
    n_trajectories=1_024,
    checkpoint_every=250,
)
VOLTAGE_STAGE_LR = 1e-3  # the second stage starts from the first's surfaces: a gentler start


def _split(weights: dict) -> tuple[dict, dict, dict]:
    """(the correcting network, the particle network, the electrolyte network)."""
    parts = {"": {}, PARTICLE: {}, ELECTROLYTE: {}}
    for k, v in weights.items():
        prefix = next((p for p in (PARTICLE, ELECTROLYTE) if k.startswith(p)), "")
        parts[prefix][k[len(prefix) :]] = v
    return parts[""], parts[PARTICLE], parts[ELECTROLYTE]


def discharge_fraction(t, c_rate):
    """f = t·c_rate / 3600 s, the nominal share of the capacity discharged."""
    return t * c_rate / 3600.0


def encode(xp, t, x_n, x_p, positive_diffusivity_scale, negative_j0_scale, c_rate):
    """The network's inputs, each in about [-1, 1], and f, the nominal discharge fraction; arrays
    of ``xp``, any broadcastable shapes. Besides time (linear, as sqrt(f) for the particles' and
    as e^(−t/120 s) for the electrolyte's start-up transient), the SPM's surface stoichiometries:
    the DFN smooths the graphite OCP's steps where x_n crosses them, a feature fixed in x_n,
    not in time."""
    f = discharge_fraction(t, c_rate)
    cols = [
        f * (4.0 / 3.0) - 1.0,
        2.0 * xp.sqrt(f / 1.5 + 1e-12) - 1.0,
        2.0 * xp.exp(-t / ELECTROLYTE_S) - 1.0,
        2.0 * x_n - 1.0,
        2.0 * x_p - 1.0,
        xp.log10(positive_diffusivity_scale),
        xp.log10(negative_j0_scale),
        (c_rate - 1.25) / 0.75,
    ]
    base = 0.0 * sum(cols)  # the broadcast shape, the same in NumPy, torch and JAX
    return xp.stack([c + base for c in cols], -1), f


def surface_logits(xp, out, f, x_n, x_p) -> dict:
    """{domain: logit of its surface stoichiometries at its nodes (..., 5)} from the network's
    outputs ``out`` (..., N_OUTPUTS) and the SPM's surfaces (see the module's docstring)."""
    g = SHIFT_SCALE * f / xp.sqrt(f + 0.01)
    h = SPREAD_SCALE * xp.sqrt(f + 1e-12)  # the uneven reaction spreads the surfaces as √t
    logits = {}
    for i, (domain, x_spm) in enumerate(zip(through_cell.DOMAINS, (x_n, x_p), strict=True)):
        modes = out[..., 3 + i * SURFACE_MODES : 3 + (i + 1) * SURFACE_MODES]
        legendre = xp.asarray(through_cell.legendre_at_nodes(domain, SURFACE_MODES).T, dtype=out.dtype)
        logits[domain] = (_logit(xp, x_spm) + g * out[..., i])[..., None] + h[..., None] * (modes @ legendre)
    return logits


def electrolyte_concentrations(xp, out, t, c_e_n, c_e_p) -> tuple:
    """c_e [mol.m-3] at each electrode's nodes, two arrays (..., 5): the electrolyte network's
    (``c_e_n``, ``c_e_p``, under the SPMe's uniform reaction) times exp(e·Σ_{m=0..4} N_m·P_m(s_k)),
    e = 0.5·(1 − e^(−t/120 s)), the network's correction for the uneven reaction (the initial
    state stays exact)."""
    e = C_E_SCALE * (1.0 - xp.exp(-t / ELECTROLYTE_S))
    concentrations = []
    for i, (domain, base) in enumerate(zip(through_cell.DOMAINS, (c_e_n, c_e_p), strict=True)):
        start = 3 + 2 * SURFACE_MODES + i * C_E_MODES
        legendre = np.c_[
            np.ones(electrolyte.QUADRATURE_NODES), through_cell.legendre_at_nodes(domain, C_E_MODES - 1)
        ]
        modes = out[..., start : start + C_E_MODES] @ xp.asarray(legendre.T, dtype=out.dtype)
        concentrations.append(base * xp.exp(e[..., None] * modes))
    return tuple(concentrations)


def _sigmoid(xp, z):
    return 1.0 / (1.0 + xp.exp(-z))


def _logit(xp, x):
    x = xp.clip(x, 1e-9, 1.0 - 1e-9)
    return xp.log(x) - xp.log1p(-x)


def solve_reactions(xp, surfaces: dict, current_a, negative_j0_scale, c_e_n, c_e_p) -> dict:
    """{domain: the reaction's Legendre coefficients (..., 4) that balance its nodes}."""
    scales, c_e = (negative_j0_scale, 1.0), (c_e_n, c_e_p)
    return {
        k: through_cell.solve_reaction(xp, k, surfaces[k], c, current_a, scale, SOLVE_STEPS)
        for k, c, scale in zip(through_cell.DOMAINS, c_e, scales, strict=True)
    }


def node_voltage(xp, surfaces: dict, reaction: dict, voltage_out, current_a, negative_j0_scale, c_e_n, c_e_p):
    """The terminal voltage [V]: ``through_cell.cell_voltage`` at the nodes' surfaces and
    reaction, PyBaMM's barrier at empty and full at each electrode's mean surface (as in the SPM:
    a node a hair past full would weigh thousands of volts) and the network's voltage term."""
    v, _ = through_cell.cell_voltage(xp, surfaces, reaction, current_a, negative_j0_scale, c_e_n, c_e_p)
    return _terminal(xp, v, surfaces, voltage_out)


def _terminal(xp, cell_v, surfaces: dict, voltage_out):
    """``node_voltage`` from ``through_cell``'s cell voltage ``cell_v``."""
    mean = {k: electrolyte.region_mean(xp, x) for k, x in surfaces.items()}
    barrier = chen2020.u_asymptotes(xp, mean["positive"]) - chen2020.u_asymptotes(xp, mean["negative"])
    return cell_v + barrier + VOLTAGE_SCALE_V * voltage_out


def _particles(xp, particle, t, positive_diffusivity_scale, c_rate):
    """The SPM's surface stoichiometries at times ``t``, (..., 2)."""
    x_n, x_p = spm_pinn.surface_stoichiometries(
        xp, particle, len(particle) // 2, t, positive_diffusivity_scale, c_rate
    )
    return xp.stack([x_n + 0.0 * x_p, x_p + 0.0 * x_n], -1)  # x_n does not see the positive's scale


def record_nodes(t, *inputs) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the particle network runs along a record: (RECORD_NODES Chebyshev points in √t
    spanning ``t``, the (T, RECORD_NODES) barycentric matrix from them to ``t``) when ``t`` is
    known before tracing, varies along its last axis only and is longer than twice the nodes, and
    every input is constant along it; None otherwise, and it runs at every time.

    The SPM's surfaces are smooth in √t (the particles start as √t), so 48 nodes move a voltage
    by under 2 µV up to the cut-off."""
    try:
        times = np.asarray(t, dtype=float)  # a JAX tracer or a torch tensor with a graph refuses
    except (TypeError, RuntimeError, ValueError):
        return None
    along_t = all(np.ndim(v) == 0 or tuple(np.shape(v))[-1:] == (1,) for v in inputs)
    if times.ndim == 0 or times.size != times.shape[-1] or times.size <= 2 * RECORD_NODES or not along_t:
        return None
    s = np.sqrt(np.clip(times.reshape(-1), 0.0, None))
    if not s.max() > s.min():
        return None
    return _chebyshev_in_root_t(s.tobytes(), times.shape)


@functools.lru_cache(maxsize=16)
def _chebyshev_in_root_t(root_t: bytes, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``record_nodes``'s answer from √t, built once per record (0.3 ms, as long as a likelihood)."""
    s = np.frombuffer(root_t)
    nodes = s.min() + (s.max() - s.min()) * (np.polynomial.chebyshev.chebpts2(RECORD_NODES) + 1.0) / 2.0
    matrix = BarycentricInterpolator(nodes, np.eye(RECORD_NODES))(s)
    return (nodes**2).reshape(shape[:-1] + (RECORD_NODES,)), matrix


def network_fields(xp, weights: dict, n_layers: int, t, *inputs):
    """The networks' fields at times ``t`` (inputs of t's dtype, as ``predict`` passes them):
    (..., 2 + N_OUTPUTS), the SPM's x_n and x_p and this network's outputs. Along a record the
    particle network runs at ``record_nodes`` only and is interpolated; this network runs at
    every time: it follows the surfaces nearest the separator into the cut-off, too steep for the
    nodes (1.5 mV off at 48 nodes, 0.2 mV at 96, measured). All of ``predict`` that is neural
    networks (``benchmarks/battery_p2d.py`` times it alone: ``networks_only``)."""
    net, particle, _ = _split(weights)
    positive_diffusivity_scale, _, c_rate = inputs
    record = record_nodes(t, *inputs)
    if record is None:
        x = _particles(xp, particle, t, positive_diffusivity_scale, c_rate)
    else:
        nodes, matrix = (xp.asarray(a, dtype=t.dtype) for a in record)
        x = matrix @ _particles(xp, particle, nodes, positive_diffusivity_scale, c_rate)
    z, _ = encode(xp, t, x[..., 0], x[..., 1], *inputs)
    out = mlp_apply(xp, net, z, n_layers)
    return xp.concatenate([x + 0.0 * out[..., :1], out], -1)


def predict(
    xp, weights: dict, n_layers: int, t, positive_diffusivity_scale, negative_j0_scale, c_rate
) -> dict:
    """``Voltage [V]`` at times ``t`` [s] (an array of ``xp``) and any broadcastable inputs;
    ``weights`` holds all three networks (see ``_split``). Along a record the particle network
    runs at ``record_nodes`` only; the rest at every time."""
    # Arrays of t's dtype pass through untouched (see smib_pinn.predict).
    positive_diffusivity_scale, negative_j0_scale, c_rate = (
        v if getattr(v, "dtype", None) == t.dtype else xp.asarray(v, dtype=t.dtype)
        for v in (positive_diffusivity_scale, negative_j0_scale, c_rate)
    )
    fields = network_fields(xp, weights, n_layers, t, positive_diffusivity_scale, negative_j0_scale, c_rate)
    x_n, x_p, out = fields[..., 0], fields[..., 1], fields[..., 2:]
    logits = surface_logits(xp, out, discharge_fraction(t, c_rate), x_n, x_p)
    surfaces = {k: _sigmoid(xp, v) for k, v in logits.items()}
    c_e_n, c_e_p = electrolyte_concentrations(
        xp, out, t, *electrolyte.state_once(xp, _split(weights)[2], t, c_rate)[:2]
    )
    current = chen2020.CAPACITY_AH * c_rate + 0.0 * x_n
    j0 = negative_j0_scale + 0.0 * current
    # The reaction is solved at every time, not interpolated: it follows the graphite OCP's steps
    # and, past the cut-off, stops converging, so from record nodes it was off by 0.1 mV before the
    # cut-off and by 250 mV on windows reaching far past it (measured).
    _, (cell_v, _) = through_cell.solve_cell(xp, surfaces, current, j0, c_e_n, c_e_p, SOLVE_STEPS)
    return {"Voltage [V]": _terminal(xp, cell_v, surfaces, out[..., 2])}


def dfn_curve(values: dict, dt_s: float = 10.0) -> tuple[np.ndarray, dict, float]:
    """PyBaMM's DFN up to its cut-off: (times every ``dt_s`` and densely on the last 5 %, the
    voltage and each electrode's surface stoichiometries and electrolyte concentration [mol.m-3]
    at its nodes there, the cut-off time [s])."""
    _, _, t_cut = p2d_reference.window(dt_s=dt_s, **values)
    times = np.union1d(np.arange(0.0, t_cut, dt_s), END_FRACTIONS * t_cut)
    sol = p2d_reference.simulation(True).solve(
        [0.0, t_cut], inputs={k: float(values[k]) for k in p2d_reference.INPUTS}, t_interp=times
    )
    fields = {"voltage": np.asarray(sol["Voltage [V]"](times))}
    for domain, x_m in zip(through_cell.DOMAINS, node_positions_m(), strict=True):
        name = f"{domain.capitalize()} particle surface stoichiometry"
        fields[f"{domain}_surfaces"] = np.asarray(sol[name](t=times, x=x_m)).T  # (T, 5)
        fields[f"{domain}_c_e"] = np.asarray(sol["Electrolyte concentration [mol.m-3]"](t=times, x=x_m)).T
    return times, fields, t_cut


def node_positions_m() -> tuple[np.ndarray, np.ndarray]:
    """The electrolyte's Gauss–Legendre nodes in each electrode [m], ascending in x."""
    xi, _ = np.polynomial.legendre.leggauss(electrolyte.QUADRATURE_NODES)
    edges = np.r_[0.0, np.cumsum(electrolyte.THICKNESS_M)]
    return tuple(a + (b - a) * (xi + 1.0) / 2.0 for a, b in (edges[:2], edges[2:]))


def dfn_curves(
    n_points: int, seed: int = TRAIN_SEED, cache: Path | None = None, progress: bool = True
) -> dict:
    """Training data: ``dfn_curve`` at ``n_points`` Sobol points, as flat arrays (cached)."""
    from tqdm.auto import tqdm

    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bayespinn"
    path = cache / f"dfn_curves_{n_points}_{seed}_{p2d_reference.PARTICLE_VOLUMES}_nodes_c_e.npz"
    if path.exists():
        return dict(np.load(path))
    rows = []
    for values in tqdm(
        spm_pinn.validation_design(n_points, seed), desc="PyBaMM DFN", disable=not progress, mininterval=2.0
    ):
        t, fields, _ = dfn_curve(values)
        rows.append({"t": t, **fields, **{k: np.full(len(t), values[k]) for k in DOMAIN}})
    data = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)  # an interrupted run leaves no half-written cache
    return data


@dataclass
class DfnFit:
    """The trainer's problem at DFN samples: the charge conservation is solved, not penalised;
    the physics residual is the particles' along whole discharges (``particle_residuals``).
    ``with_voltage`` False: the nodes' surfaces (logit) and c_e (log) alone; True: the voltage
    too, through the solved reaction. The SPM's surfaces and the electrolyte network's c_e do not
    depend on what is trained, so they are computed once."""

    data: dict
    particle: dict
    cell: dict  # the electrolyte network
    with_voltage: bool = False
    columns: dict = field(init=False)
    starts: np.ndarray = field(init=False)  # each discharge's first row
    lengths: np.ndarray = field(init=False)

    def __post_init__(self):
        d = self.data
        x_n, x_p = spm_pinn.surface_stoichiometries(
            np, self.particle, len(self.particle) // 2, d["t"], d["positive_diffusivity_scale"], d["c_rate"]
        )
        z, f = encode(
            np, d["t"], x_n, x_p, d["positive_diffusivity_scale"], d["negative_j0_scale"], d["c_rate"]
        )
        c_e_n, c_e_p, _ = electrolyte.state(np, self.cell, d["t"], d["c_rate"])
        columns = {
            "z": z,
            "t": d["t"],
            "f": f,
            "x_n": x_n,
            "x_p": x_p,
            "current": chen2020.CAPACITY_AH * d["c_rate"],
            "j0": d["negative_j0_scale"],
            "voltage": d["voltage"],
            "c_e_n": c_e_n,
            "c_e_p": c_e_p,
            **{k: _logit(np, d[f"{k}_surfaces"]) for k in through_cell.DOMAINS},
            **{f"{k}_log_c_e": np.log(d[f"{k}_c_e"]) for k in through_cell.DOMAINS},
        }
        self.columns = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in columns.items()}
        # Each curve counts as much as any other (the bar is on each curve's RMSE): a 0.5C curve
        # has four times the samples of a 2C one.
        self.starts = np.flatnonzero(d["t"] == 0.0)
        self.lengths = np.diff(np.r_[self.starts, len(d["t"])])
        self.probability = torch.from_numpy(np.repeat(1.0 / self.lengths, self.lengths))
        self._responses = {}

    def _inputs_at(self, rows: np.ndarray, t: np.ndarray) -> dict:
        """The network's inputs and the electrolyte network's c_e for samples ``rows`` moved to
        times ``t``, as float64 tensors: the inputs of ``electrolyte_concentrations``."""
        d = {k: self.data[k][rows] for k in DOMAIN}
        scale = d["positive_diffusivity_scale"]
        x_n, x_p = spm_pinn.surface_stoichiometries(
            np, self.particle, len(self.particle) // 2, t, scale, d["c_rate"]
        )
        z, _ = encode(np, t, x_n, x_p, scale, d["negative_j0_scale"], d["c_rate"])
        c_e_n, c_e_p, _ = electrolyte.state(np, self.cell, t, d["c_rate"])
        return {
            k: torch.from_numpy(np.ascontiguousarray(v))
            for k, v in zip(("z", "t", "c_e_n", "c_e_p"), (z, t, c_e_n, c_e_p))
        }

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` training discharges, whole: the particles' residual needs each one's history."""
        return torch.randint(len(self.starts), (n,), generator=gen)

    def physics_loss(self, model, x):
        """The particles' diffusion residual on discharges ``x``, in units of ``PARTICLE_SCALE``."""
        residuals = self.particle_residuals(model, x.long().tolist())
        return torch.cat([r.reshape(-1) for r in residuals.values()]).square().mean() / PARTICLE_SCALE**2

    def particle_residuals(self, model, discharges: list, at_dfn: bool = False) -> dict:
        """{domain: the nodes' surfaces minus their particles' (T, 5)} along ``discharges``, one
        after the other: each node's particle under the reaction solved at those surfaces (held,
        as for the voltage), by Duhamel's superposition of the sphere's exact response
        (``particle.step_response_matrix``); the SPM's surfaces carry the uniform reaction's part.
        The surfaces and c_e are the network's, or with ``at_dfn`` the DFN's own (the training
        data's)."""
        b, lengths, _ = self._discharges(discharges)
        if at_dfn:
            logits = {k: b[k] for k in through_cell.DOMAINS}
            c_e = tuple(torch.exp(b[f"{k}_log_c_e"]) for k in through_cell.DOMAINS)
        else:
            logits, c_e = self.fields(self._run(model, b["z"]), b)
        surfaces = {k: torch.sigmoid(v) for k, v in logits.items()}
        with torch.no_grad():  # the reaction held
            reaction = solve_reactions(torch, surfaces, b["current"], b["j0"], *c_e)
        residual = {}
        for domain, spm in zip(through_cell.DOMAINS, (b["x_n"], b["x_p"]), strict=True):
            legendre = torch.from_numpy(through_cell.legendre_at_nodes(domain, SURFACE_MODES).T)
            uneven = (reaction[domain] @ legendre).split(lengths)
            responses = (self.particle_response(i, domain) for i in discharges)
            particles = torch.cat([a * (g @ q) for (a, g), q in zip(responses, uneven)])
            residual[domain] = surfaces[domain] - (spm[:, None] + particles)
        return residual

    def electrolyte_residuals(self, model, discharges: list) -> dict:
        """{domain: ``through_cell.electrolyte_residual`` (T, 3)} of the network's c_e along
        ``discharges``, under the reaction solved at its surfaces and c_e, ∂c_e/∂t by central
        differences over ± ``ELECTROLYTE_STEP_S`` (one-sided at t = 0). Measured, not in the
        loss (the module's docstring says why)."""
        b, _, rows = self._discharges(discharges)
        logits, c_e = self.fields(self._run(model, b["z"]), b)
        surfaces = {k: torch.sigmoid(v) for k, v in logits.items()}
        reaction = solve_reactions(torch, surfaces, b["current"], b["j0"], *c_e)
        t = self.data["t"][rows]
        shifted = [
            self._inputs_at(rows, when)
            for when in (t + ELECTROLYTE_STEP_S, np.maximum(t - ELECTROLYTE_STEP_S, 0.0))
        ]
        late, early = (
            electrolyte_concentrations(torch, self._run(model, a["z"]), a["t"], a["c_e_n"], a["c_e_p"])
            for a in shifted
        )
        dt = (shifted[0]["t"] - shifted[1]["t"])[:, None]
        return {
            domain: through_cell.electrolyte_residual(
                torch, domain, c_e[i], (late[i] - early[i]) / dt, reaction[domain], b["current"]
            )
            for i, domain in enumerate(through_cell.DOMAINS)
        }

    def _discharges(self, discharges: list) -> tuple[dict, list, np.ndarray]:
        """(the columns of ``discharges``' samples, one discharge after the other, in float64;
        their lengths; their rows)."""
        lengths = [int(self.lengths[i]) for i in discharges]
        rows = np.concatenate([self.starts[i] + np.arange(n) for i, n in zip(discharges, lengths)])
        return {k: v[torch.from_numpy(rows)].double() for k, v in self.columns.items()}, lengths, rows

    @staticmethod
    def _run(model, z):
        return model(z.to(next(model.parameters()).dtype)).double()

    def particle_response(self, i: int, domain: str) -> tuple[float, torch.Tensor]:
        """(A, the step-response matrix) of ``domain``'s particles along discharge ``i`` (cached)."""
        key = (i, domain)
        if key not in self._responses:
            d, row = self.data, self.starts[i]
            scale = d["positive_diffusivity_scale"][row] if domain == "positive" else 1.0
            rate, amplitude = chen2020.particle_rates(domain, chen2020.CAPACITY_AH * d["c_rate"][row], scale)
            times = d["t"][row : row + self.lengths[i]]
            self._responses[key] = (amplitude, torch.from_numpy(step_response_matrix(times, rate)))
        return self._responses[key]

    def data_batch(self, n: int, gen: torch.Generator, device, dtype=torch.float32) -> dict:
        index = torch.multinomial(self.probability, n, replacement=True, generator=gen)
        return {k: v[index].to(device, dtype) for k, v in self.columns.items()}

    def data_loss(self, model, batch: dict) -> torch.Tensor:
        b = {k: v.double() for k, v in batch.items()}  # Newton's solve needs float64
        out = model(batch["z"]).double()
        logits, c_e = self.fields(out, b)
        loss = sum(((logits[k] - b[k]) / LOSS_SCALE_LOGIT).square().mean() for k in logits)
        loss = loss + sum(
            ((torch.log(c) - b[f"{k}_log_c_e"]) / LOSS_SCALE_LOG_C_E).square().mean()
            for k, c in zip(through_cell.DOMAINS, c_e, strict=True)
        )
        if self.with_voltage:
            loss = loss + ((self.voltage(out, logits, c_e, b) - b["voltage"]) / LOSS_SCALE_V).square().mean()
        return loss.to(batch["z"].dtype)

    @staticmethod
    def fields(out, b: dict) -> tuple[dict, tuple]:
        """(the nodes' surfaces' logits, their c_e) from the network's outputs at samples ``b``."""
        logits = surface_logits(torch, out, b["f"], b["x_n"], b["x_p"])
        return logits, electrolyte_concentrations(torch, out, b["t"], b["c_e_n"], b["c_e_p"])

    @staticmethod
    def voltage(out, logits: dict, c_e: tuple, b: dict):
        surfaces = {k: torch.sigmoid(v) for k, v in logits.items()}
        # The reaction is held at its solved value while fitting: its derivative through the solve
        # made Adam diverge (loss 5 to 100–200 in 700 steps, measured); held, it converges.
        held = {k: v.detach() for k, v in surfaces.items()}
        reaction = solve_reactions(torch, held, b["current"], b["j0"], *(c.detach() for c in c_e))
        return node_voltage(torch, surfaces, reaction, out[..., 2], b["current"], b["j0"], *c_e)


def validate_p2d(weights: dict, n_layers: int, n_points: int = 64, seed: int = 20_260) -> dict:
    """``spm_pinn.validate_voltage`` against PyBaMM's DFN."""

    def voltage(t, **values):
        return predict(np, weights, n_layers, np.asarray(t, float), **values)["Voltage [V]"]

    cells = ", ".join(f"{n} {k}" for k, n in p2d_reference.CELLS)
    return {
        "design": spm_pinn.design_text(n_points, seed),
        "reference": f"PyBaMM {spm_pinn._pybamm_version()} DFN, Chen2020, IDAKLU rtol="
        f"{pybamm_reference.SOLVER_TOLERANCES['rtol']}, finite volumes {cells}, "
        f"{p2d_reference.PARTICLE_VOLUMES} per particle (packed at the surface)",
        **spm_pinn.validate_voltage(voltage, p2d_reference, spm_pinn.validation_design(n_points, seed)),
    }


def train_p2d(
    config: TrainConfig = P2D_CONFIG,
    out: Path = WEIGHTS,
    checkpoint=None,
    progress=True,
    validation_points: int = 64,
) -> dict:
    """Solve the DFN on the training design, fit the network, validate it, write the card."""
    particle, particle_card = load_weights(spm_pinn.WEIGHTS)
    if not electrolyte.WEIGHTS.exists():
        electrolyte.train_electrolyte(progress=progress)
    cell, cell_card = load_weights(electrolyte.WEIGHTS)
    data = dfn_curves(config.n_trajectories, progress=progress)
    model = MLP(N_INPUTS, N_OUTPUTS, config.hidden, seed=config.seed)
    with torch.no_grad():  # start from the SPM's surfaces, uniform across each electrode
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.zero_()
    stages, problem = {}, DfnFit(data, particle, cell)
    for stage, cfg in _stages(config).items():
        problem.with_voltage = stage == "voltage"
        path = (
            None
            if checkpoint is None
            else Path(f"{checkpoint}.{stage}" if stage == "surfaces" else checkpoint)
        )
        stages[stage] = train(problem, model, cfg, checkpoint=path, progress=progress)
    model.double()
    record = {
        "device": stages["voltage"]["device"],
        "wall_time_s": sum(r["wall_time_s"] for r in stages.values()),
        "stages": stages,
        "fit": _training_fit(problem, model),
    }
    net = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    weights = {
        **net,
        **{PARTICLE + k: v for k, v in particle.items()},
        **{ELECTROLYTE + k: v for k, v in cell.items()},
    }
    n_layers = len(model.layers)
    validation = validate_p2d(weights, n_layers, n_points=validation_points)
    arrays = validation.pop("arrays")
    card = _card(config, record, validation, n_layers, len(data["t"]), particle_card, cell_card)
    save_weights(out, weights, card)
    return save_residuals(out, arrays)  # the correlated surrogate-error model reads these


def _stages(config: TrainConfig) -> dict:
    """The two stages' configs: the surfaces alone, then the voltage too (two thirds the steps),
    and the particles' residual where ``physics_weight`` weights it. Never in the first stage:
    from the SPM's uniform surfaces the residual's particles, pushed by the reaction solved
    there, land far outside (0, 1), and at weight 1 the loss rose to 4e3 (the reaction held) or
    6e4 (through the solve), measured."""
    import dataclasses

    voltage = dataclasses.replace(
        config, adam_steps=round(config.adam_steps * 2 / 3), lr_start=VOLTAGE_STAGE_LR
    )
    return {"surfaces": dataclasses.replace(config, physics_weight=0.0), "voltage": voltage}


def _training_fit(problem: DfnFit, model, every: int = 7) -> dict:
    """The fit on every ``every``-th training sample: voltage RMSE with and without the voltage
    term, the nodes' surfaces' RMSE (stoichiometry), their c_e's RMSE and the solved balance's
    largest residual; on every ``every``-th discharge, the particles' diffusion residual
    (stoichiometry), and the same at the DFN's own surfaces and c_e (how far the five-node
    reaction lets it fall), and the electrolyte's weak residual (of its mean source)."""
    b = {k: v[::every].double() for k, v in problem.columns.items()}
    with torch.no_grad():
        out = model(b["z"])
        logits, c_e = problem.fields(out, b)
        surfaces = {k: torch.sigmoid(v) for k, v in logits.items()}
        args = (b["current"], b["j0"], *c_e)
        _, (cell_v, residual) = through_cell.solve_cell(torch, surfaces, *args, SOLVE_STEPS)
        with_term = _terminal(torch, cell_v, surfaces, out[..., 2])
        physics = _terminal(torch, cell_v, surfaces, 0.0 * out[..., 2])

    def rmse(a, ref):
        return float((a - ref).square().mean().sqrt())

    discharges = list(range(0, len(problem.starts), every))
    with torch.no_grad():
        particles = problem.particle_residuals(model, discharges)
        floor = problem.particle_residuals(model, discharges, at_dfn=True)
        electrolyte_residuals = problem.electrolyte_residuals(model, discharges)
    return {
        "samples": int(b["z"].shape[0]),
        "voltage_rmse_mV": 1e3 * rmse(with_term, b["voltage"]),
        "voltage_rmse_without_term_mV": 1e3 * rmse(physics, b["voltage"]),
        **{f"{k}_surfaces_rmse": rmse(surfaces[k], torch.sigmoid(b[k])) for k in surfaces},
        **{
            f"{k}_c_e_rmse_mol_m3": rmse(c, torch.exp(b[f"{k}_log_c_e"]))
            for k, c in zip(through_cell.DOMAINS, c_e, strict=True)
        },
        "balance_residual_max_mV": 1e3 * float(residual.abs().max()),
        "discharges": len(discharges),
        **{f"{k}_particle_residual_rms": float(v.square().mean().sqrt()) for k, v in particles.items()},
        **{f"{k}_particle_residual_max": float(v.abs().max()) for k, v in particles.items()},
        **{f"{k}_particle_residual_rms_at_dfn": float(v.square().mean().sqrt()) for k, v in floor.items()},
        **{
            f"{k}_electrolyte_residual_rms": float(v.square().mean().sqrt())
            for k, v in electrolyte_residuals.items()
        },
    }


def _card(config, record, validation, n_layers, n_samples, particle_card, cell_card) -> dict:
    import jax

    device = record["device"]
    return {
        "name": "battery.p2d",
        "system": "PyBaMM DFN (Chen2020), constant-current discharge from the default initial state",
        "architecture": {
            "type": "tanh MLP giving each electrode's surfaces at 5 nodes; the DFN's charge conservation "
            "and Butler–Volmer solved there for the reaction (through_cell)",
            "inputs": [
                "f·4/3 − 1 (f = t·c_rate/3600 s)",
                "2·sqrt(f/1.5) − 1",
                f"2·exp(−t/{ELECTROLYTE_S:g} s) − 1",
                "2·x_n^SPM − 1",
                "2·x_p^SPM − 1",
                "log10 positive_diffusivity_scale",
                "log10 negative_j0_scale",
                "(c_rate − 1.25)/0.75",
            ],
            "hidden": list(config.hidden),
            "outputs": [
                "N_0, N_1 (shift of each electrode's mean surface, logit)",
                "N_2 (voltage)",
                "N_3..N_6 (negative surfaces across the electrode: P1..P4, logit)",
                "N_7..N_10 (positive surfaces across the electrode: P1..P4, logit)",
                "N_11..N_15 (negative electrolyte concentration's correction: P0..P4, log)",
                "N_16..N_20 (positive electrolyte concentration's correction: P0..P4, log)",
            ],
            "n_layers": n_layers,
            "ansatz": "at each electrode's 5 Gauss–Legendre nodes s_k (s from its current collector): "
            "logit x_k = logit x^SPM + g·N_mean + h·Σ_m N_m·P_m(s_k), g = 0.1·f/sqrt(f + 0.01), h = 0.5·sqrt(f); "
            "ln c_e,k = ln c_e,k^SPMe + e·Σ_{m=0..4} M_m·P_m(s_k), e = 0.5·(1 − exp(−t/120 s)), c_e^SPMe the "
            "electrolyte network's; "
            "the reaction j_k = j_avg·(1 + Σ_m δ_m·P_m(s_k)), m = 1..4 (∫ a·j dx = I exactly), with δ "
            f"solved by {SOLVE_STEPS} Newton steps, each but the last shortened to at most "
            f"{through_cell.MAX_STEP:g} in norm (the last one carries the gradient) so that every node "
            "gives the same B = U(x_k) + η_k(j_k, x_k, c_e,k) ∓ A_k + 2(1 − t+)·RT/F·ln c_e,k, A_k the "
            "solid's and electrolyte's Ohm's laws (κ at c_e,k) integrated from the collector to s_k; "
            "V = B_p − B_n − ∫ i_e/κ_eff dx + PyBaMM's barrier at each electrode's mean surface + 0.1·N_2 "
            "(through_cell.cell_voltage)",
            "particle_network": "battery.spm's (tensors under 'particle.'), trained on the spherical "
            f"diffusion residual alone; its card's sha256 {particle_card.get('sha256', '?')}",
            "electrolyte_network": "battery.electrolyte's (tensors under 'electrolyte.'), trained on the "
            "electrolyte diffusion residual alone with the reaction uniform through each electrode (the "
            "SPMe's closure), corrected at the nodes by this network's M; its card's sha256 "
            f"{cell_card.get('sha256', '?')}",
            "dtype": "float64",
            "evaluation": f"along a record (over {2 * RECORD_NODES} known times, inputs constant) the "
            f"particle network runs at {RECORD_NODES} Chebyshev points in √t and is interpolated "
            "(barycentric); this network, the reaction's solve, the OCPs, Butler–Volmer and Ohm's laws "
            "at every time",
        },
        "domain": {k: list(v) for k, v in DOMAIN.items()},
        "time_window": "t in [0, 1.5 × 3600 s / c_rate]; fitted up to each cell's cut-off",
        "parameters": ["positive_diffusivity_scale", "negative_j0_scale"],
        "conditions": ["c_rate"],
        "observables": ["Voltage [V]"],
        "training": {
            "config": config.to_dict(),
            "stages": {k: v.to_dict() for k, v in _stages(config).items()},
            "loss": _loss_text(config),
            "mix": _mix_text(config, n_samples),
            "fit": {k: float(f"{v:.4g}") for k, v in record["fit"].items()},
            "wall_time_s": round(record["wall_time_s"], 1),
            "stage_wall_time_s": {k: round(r["wall_time_s"], 1) for k, r in record["stages"].items()},
            "final_loss": {
                k: next((h for h in reversed(r["history"]) if "loss" in h), None)
                for k, r in record["stages"].items()
            },
            "device": device,
            "hardware": hardware_description(device),
            "reproduce": "bayespinn train battery.p2d",
        },
        "versions": {
            "torch": torch.__version__,
            "jax": jax.__version__,
            "pybamm": spm_pinn._pybamm_version(),
            "python": platform.python_version(),
        },
        "validation": validation,
    }


def _loss_text(config: TrainConfig) -> str:
    """The card's account of the loss of both stages."""
    return (
        "stage 'surfaces': Σ_electrodes mean ((logit x_k − logit x_k,DFN) / 0.02)² + mean ((ln "
        "c_e,k − ln c_e,k,DFN) / 0.01)² over the nodes and training samples; stage 'voltage', from its "
        "weights: the same + mean ((V_net − "
        "V_DFN) / 10 mV)², V_net through the solved reaction"
        + (
            f", + {config.physics_weight:g}·{PARTICLE_LOSS_TEXT}, {config.collocation_batch} a step. "
            f"Measured (training.fit), not weighted: {ELECTROLYTE_LOSS_TEXT}"
            if config.physics_weight > 0
            else f". Measured (training.fit), not weighted: {PARTICLE_LOSS_TEXT}; {ELECTROLYTE_LOSS_TEXT}"
        )
    )


def _mix_text(config: TrainConfig, n_samples: int) -> str:
    """The card's account of the data and the physics that went into the fit."""
    return (
        f"PyBaMM DFN solutions (p2d_reference's mesh) at {config.n_trajectories} Sobol points "
        f"(seed {TRAIN_SEED}) of the box, {n_samples} samples: every 10 s up to the cut-off and "
        "40 times on the last 5 % before it; their voltage, their particles' surface "
        "stoichiometries and their electrolyte concentration at the 5 nodes of each electrode. "
        "The physics: the DFN's charge "
        "conservation in solid and electrolyte and Butler–Volmer at the nodes, solved exactly for "
        "the reaction (a hard constraint, not a penalty); the particles' diffusion residual with "
        "the reaction uniform (the particle network's loss, under the learned surfaces' shift and "
        "spread); the electrolyte's diffusion residual with the SPMe's uniform reaction (the "
        "electrolyte network's loss); the OCPs in closed form. The particles' diffusion under "
        "the uneven reaction enters through the DFN's surfaces"
        + (" only" if config.physics_weight == 0 else " and as a residual in the voltage stage's loss")
        + "; the electrolyte's through the DFN's c_e, its weak-form residual measured (training.fit)"
    )
