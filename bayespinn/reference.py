"""The reference solver behind a surrogate study: correcting its posterior and checking it exactly.

``correct`` turns the surrogate posterior into one that targets the exact posterior
(``[inference] correct = "importance" | "delayed-acceptance"``); ``check_exact`` computes the exact
posterior of a two-parameter study on a grid and compares a run with it; ``check_reference``
re-runs a run's posterior predictive through the reference solver (``calibrate --check-reference``).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from bayespinn.errors import UserError
from inference.correction import Potentials, delayed_acceptance, importance, laplace_moments
from inference.diagnostics import ESS_MIN
from inference.exact import compare, grid_posterior, log_posterior_fn
from inference.model import build_model

__all__ = [
    "SHIFT_FLAG_SD",
    "check_exact",
    "check_reference",
    "correct",
    "exact_grid",
    "grid_parameters",
    "likelihood_sd",
    "mean_shift_in_sd",
    "precision_times",
    "reference_flags",
    "reference_of",
]

log = logging.getLogger("bayespinn")
# An estimated shift of a posterior mean by more than this many posterior sds is flagged.
SHIFT_FLAG_SD = 0.2


def reference_of(prep, allow_reference: bool = False):
    """The reference forward model of a surrogate study, and the exact NumPyro model on it.

    A study that already runs on the reference is its own reference when ``allow_reference``
    (an exactness check); a correction of it would be meaningless and is refused.
    """
    from bayespinn.pipeline import _forward
    from surrogates import registry

    name = prep.model.name
    if name.endswith(":reference") and not allow_reference:
        raise UserError(
            f"{prep.study.path}: [surrogate] name: found {name!r}, which is already the reference"
        )
    ref = (
        prep.model if name.endswith(":reference") else registry.load(f"{name}:reference", prep.study.network)
    )
    exact_spec = dataclasses.replace(
        prep.spec, surrogate_sigma={k: 0.0 for k in prep.spec.observables}, surrogate_factor={}
    )
    return ref, exact_spec, build_model(_forward(ref, prep.study, prep.data), exact_spec)


def correct(prep, idata, method: str, reference: tuple, y: dict) -> tuple[dict, dict]:
    """Corrected posterior draws {site: (chains, draws)} and a record of what the correction did.

    ``reference`` is ``reference_of(prep)``; ``y`` the observed data as JAX arrays.
    """
    ref, spec, ref_model = reference
    pots = Potentials.of(prep.numpyro_model, ref_model, {"y": y}, seed=prep.study.inference.seed)
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    flat = pots.to_flat({k: idata.posterior[k].values.reshape(-1) for k in idata.posterior.data_vars})
    if not getattr(ref, "differentiable", True):  # no Laplace proposal without gradients
        pots = dataclasses.replace(pots, reference_scalar=None)
    if method == "importance":
        n = prep.study.inference.reference_draws or len(flat)
        thinned = flat[np.linspace(0, len(flat) - 1, min(n, len(flat))).round().astype(int)]
        log.info(
            "correction importance: solving %s at %d surrogate draws (twice as many if their weights fall "
            "short of %d effective draws)",
            ref.name,
            len(thinned),
            ESS_MIN,
        )
        result = importance(pots, thinned, min_ess=ESS_MIN, seed=prep.study.inference.seed)
        rng = np.random.default_rng(prep.study.inference.seed)
        # Systematic resampling keeps the weighted posterior's shape for plots and tables.
        u = (rng.uniform() + np.arange(len(flat))) / len(flat)
        index = np.minimum(np.searchsorted(np.cumsum(result["weights"]), u), len(thinned) - 1)
        picked = result["draws"][index]
        record = {k: v for k, v in result.items() if k not in ("draws", "weights")}
        record["proposal"] = (
            "the surrogate posterior"
            + (
                " with its correlated error model"
                if prep.study.inference.surrogate_error == "correlated"
                else ""
            )
            + (", refined once by a Student-t around the reweighted draws" if result["refined"] else "")
        )
        out = picked.reshape(chains, draws, -1)
    else:
        laplace = laplace_moments(pots, flat.mean(0))
        if laplace is not None:
            pots = _screen_at(prep, pots, ref, spec, y, laplace[0])
            laplace = (*laplace[:2], laplace[2] + 1)  # one more reference solve for the shift
        # Twice as many chains, each half as long: the reference runs in wider batches, and the
        # chains stay long enough for R-hat to mean something.
        chains, draws = 2 * chains, -(-draws // 2)
        result = delayed_acceptance(
            pots, flat, chains=chains, steps=draws, seed=prep.study.inference.seed, proposal=laplace
        )
        record = {k: v for k, v in result.items() if k != "draws"}
        out = result["draws"]
    samples = pots.from_flat(out.reshape(-1, out.shape[-1]))
    record["method"] = method
    log.info("correction %s: %s", method, {k: record[k] for k in record if k != "method"})
    return {k: v.reshape(chains, draws) for k, v in samples.items()}, record


def _screen_at(prep, pots: Potentials, ref, spec, y: dict, mode) -> Potentials:
    """Potentials whose stage-1 screen is the surrogate plus its error at the exact mode.

    Over a posterior a few tenths of a percent wide the surrogate's error hardly changes, so the
    shifted surrogate screens almost as the reference would. The shift is fixed before sampling,
    so the screen is just another fixed approximation and the chain stays exact.
    """
    from bayespinn.pipeline import _forward

    theta = {
        k: float(v[0]) for k, v in pots.from_flat(np.asarray(mode)[None]).items() if k in prep.study.priors
    }
    sur_out = prep.model.numpy_forward(prep.data.time_s, **prep.study.conditions, **theta)
    ref_out = ref.numpy_forward(prep.data.time_s, **prep.study.conditions, **theta)
    offset = {k: np.asarray(ref_out[k]) - np.asarray(sur_out[k]) for k in spec.observables}
    forward = _forward(prep.model, prep.study, prep.data)
    screen = build_model(lambda th: {k: v + offset[k] for k, v in forward(th).items() if k in offset}, spec)
    return pots.with_surrogate(screen, {"y": y})


def grid_parameters(prep) -> tuple[str, str]:
    """The two inferred parameters of a study the exact grid can check, or a UserError."""
    names = tuple(prep.study.priors)
    if len(names) != 2:
        raise UserError(
            f"{prep.study.path}: [parameters]: found {len(names)} parameters, expected 2 for check-exact"
        )
    return names


def exact_grid(prep, idata, n: int = 61):
    """The exact posterior on an adaptive ``n × n`` grid of reference solves, started from the
    run's posterior (``inference.exact.GridPosterior``)."""
    names = grid_parameters(prep)
    from bayespinn.engines import batch_forward

    ref, exact_spec, _ = reference_of(prep, allow_reference=True)
    forward = batch_forward(ref, prep.data.time_s, prep.study.conditions, exact_spec.observables)
    log_post = log_posterior_fn(forward, prep.data.values, exact_spec)
    draws = {k: idata.posterior[k].values.ravel() for k in names}
    bounds = np.array([[prep.study.priors[k].lower, prep.study.priors[k].upper] for k in names])
    center = np.array([draws[k].mean() for k in names])
    scale = np.array([draws[k].std() for k in names])
    return grid_posterior(log_post, names, center, scale, bounds, n=n), ref


def check_exact(prep, idata, n: int = 61) -> dict:
    """Grid posterior with the reference solver vs the run's posterior, per parameter, with a verdict."""
    names = grid_parameters(prep)
    grid, ref = exact_grid(prep, idata, n)
    draws = {k: idata.posterior[k].values.ravel() for k in names}
    rows = compare(grid.stats(), draws)
    return {
        "parameters": rows,
        "agree": all(r["agree"] for r in rows.values()),
        "criterion": "mean within 0.2 exact sd and sd within 20 %",
        "reference_solves": grid.evaluations,
        "grid": f"{n}×{n} nodes, {grid.rounds} rounds",
        "reference": ref.name,
    }


def check_reference(prep, idata, n_draws: int = 200) -> dict:
    """The posterior predictive re-run through the reference solver, and what the difference does.

    At ``n_draws`` posterior draws the surrogate and the reference are both solved at the data
    times. Per observable: the difference surrogate − reference (RMS, max, its 5/50/95 % band over
    time) against the sd of the likelihood. Per parameter: the shift of the posterior mean that
    the difference causes (``mean_shift_in_sd``; a posterior a few sds wide is linear to that
    order). A shift over ``SHIFT_FLAG_SD`` means the surrogate alone does not give the exact
    posterior; the correction or ``check-exact`` would.
    """
    import time

    from bayespinn.engines import batch_forward

    t0 = time.perf_counter()
    ref, _, _ = reference_of(prep)
    names = list(prep.study.priors)
    flat = np.stack([idata.posterior[k].values.reshape(-1) for k in names], -1)
    rng = np.random.default_rng(prep.study.inference.seed)
    theta = flat[rng.choice(len(flat), size=min(n_draws, len(flat)), replace=False)]
    values = {k: theta[:, i] for i, k in enumerate(names)}
    t_s, obs = prep.data.time_s, prep.spec.observables
    sur = batch_forward(prep.model, t_s, prep.study.conditions, obs)(values)
    exact = batch_forward(ref, t_s, prep.study.conditions, obs)(values)
    sigma = {o: likelihood_sd(prep, idata, o) for o in obs}
    shift = mean_shift_in_sd(flat, theta, sur, exact, sigma, prep.spec.surrogate_factor)
    rows = {}
    for o in obs:
        diff = sur[o] - exact[o]
        q05, q50, q95 = np.quantile(diff, [0.05, 0.5, 0.95], axis=0)
        rms = float(np.sqrt(np.mean(diff**2)))
        rows[o] = {
            "rms": rms,
            "max_abs": float(np.abs(diff).max()),
            "likelihood_sd": sigma[o],
            "rms_in_likelihood_sd": rms / sigma[o],
            "time_s": np.asarray(t_s).tolist(),
            "q05": q05.tolist(),
            "q50": q50.tolist(),
            "q95": q95.tolist(),
        }
    return {
        "reference": ref.name,
        "draws": len(theta),
        "reference_solves": len(theta),
        "observables": rows,
        "mean_shift_in_sd": dict(zip(names, shift.tolist())),
        "flag_above_sd": SHIFT_FLAG_SD,
        "wall_time_s": time.perf_counter() - t0,
    }


def mean_shift_in_sd(
    posterior: np.ndarray,
    theta: np.ndarray,
    surrogate: dict,
    exact: dict,
    sigma: dict,
    factor: dict | None = None,
):
    """First-order shift of the posterior mean caused by a surrogate's error, in posterior sds.

    ``posterior`` (n, p) are all draws, ``theta`` (k, p) those solved by both models, ``surrogate``
    and ``exact`` {observable: (k, T)} their outputs, ``sigma`` {observable: likelihood sd}. Data
    seen through f + e are data − e seen through f, so the mean moves by −Σ·Σ_obs Jᵀ C⁻¹ ē, with
    Σ the posterior covariance, ē the mean error, J = ∂f/∂θ regressed over the k draws and C the
    likelihood's covariance: σ²I, or σ²I + L Lᵀ with the correlated error model's ``factor`` L
    {observable: (T, r)}, which absorbs an error along the directions it expects.
    """
    cov = np.atleast_2d(np.cov(posterior, rowvar=False))
    centred = theta - theta.mean(0)
    pull = np.zeros(theta.shape[1])
    for o, out in surrogate.items():
        jac = np.linalg.lstsq(centred, out - out.mean(0), rcond=None)[0]  # (p, T)
        pull += jac @ precision_times(sigma[o], (factor or {}).get(o), (out - exact[o]).mean(0))
    return -(cov @ pull) / np.sqrt(np.diag(cov))


def precision_times(sigma: float, factor, v: np.ndarray) -> np.ndarray:
    """(σ²I + L Lᵀ)⁻¹ v (v (T,) or (T, m)) by Woodbury: (v − L (σ²I + LᵀL)⁻¹ Lᵀ v) / σ²; v / σ² without L."""
    if factor is None:
        return v / sigma**2
    factor = np.asarray(factor)
    inner = sigma**2 * np.eye(factor.shape[1]) + factor.T @ factor
    return (v - factor @ np.linalg.solve(inner, factor.T @ v)) / sigma**2


def reference_flags(check: dict) -> list[str]:
    """One line per parameter whose mean the surrogate's error moves by more than the bound."""
    return [
        f"{name}: the surrogate's error against {check['reference']} moves the posterior mean by an "
        f"estimated {shift:+.2f} posterior sd (over {check['draws']} draws); run correct = "
        '"delayed-acceptance" or bayespinn check-exact before relying on it'
        for name, shift in check["mean_shift_in_sd"].items()
        if abs(shift) > check["flag_above_sd"]
    ]


def likelihood_sd(prep, idata, observable: str) -> float:
    """The sd of the likelihood: the noise (given, or its posterior mean) with the surrogate's RMSE."""
    from inference.model import sigma_site

    noise = prep.spec.noise[observable].sigma
    if noise is None:
        noise = float(idata.posterior[sigma_site(observable)].mean())
    total = np.hypot(noise, prep.spec.surrogate_sigma.get(observable, 0.0))
    return float(np.sqrt(np.mean(np.square(total))))  # one number when σ varies per reading
