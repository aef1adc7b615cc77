"""``bayespinn check-calibration``: does a study's whole chain give intervals that mean what they say?

Truths are drawn from the study's priors (σ too, when it is inferred), data are simulated with the
reference solver at the study's times and conditions with Gaussian noise, and each data set is
calibrated exactly as the study would be (same surrogate, engine, error model). Over the trials
the central 50/80/90/95 % intervals of each parameter must hold the truth at their nominal rates
(a binomial test per level) and the truth's rank among the posterior draws must be uniform
(simulation-based calibration, Talts et al. 2018).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from bayespinn.data import Measurements
from inference.calibration import rank_uniformity_pvalue, sbc_ranks

__all__ = ["LEVELS", "P_MIN", "check_calibration"]

LEVELS = (0.5, 0.8, 0.9, 0.95)
# A level or a rank histogram fails below this p-value: a calibrated chain fails a given check
# once in a hundred fresh runs.
P_MIN = 0.01
RANK_DRAWS, RANK_BINS = 99, 10
log = logging.getLogger("bayespinn")


def check_calibration(study, trials: int = 20, seed: int = 0, progress: bool = False) -> dict:
    """Coverage per level and parameter, rank histograms and a verdict over ``trials`` truths."""
    from bayespinn.pipeline import prepare, sample
    from bayespinn.reference import reference_of

    prep = prepare(study)
    ref = reference_of(prep, allow_reference=True)[0]
    rng = np.random.default_rng(seed)
    names = list(study.priors)
    truths, runs = [], []
    inside, ranks = {n: np.zeros(len(LEVELS), int) for n in names}, {n: [] for n in names}
    for trial in range(trials):
        truth, sigma = _draw(prep, rng)
        times = _record_times(prep, ref, truth)
        clean = ref.numpy_forward(times, **study.conditions, **truth)
        values = {k: clean[k] + sigma[k] * rng.standard_normal(len(clean[k])) for k in prep.data.values}
        idata, _, checks = sample(_on_data(prep, Measurements(prep.data.path, times, values)), progress=False)
        for name in names:
            draws = idata.posterior[name].values.ravel()
            inside[name] += [_inside(draws, truth[name], level) for level in LEVELS]
            ranks[name].append(sbc_ranks(np.array([truth[name]]), _thinned(draws)[None], seed=trial)[0])
        truths.append({**truth, **{f"sigma: {k}": v for k, v in sigma.items()}})
        runs.append(_cost(checks))
        if progress:
            log.info("trial %d/%d: %s", trial + 1, trials, {k: round(v, 6) for k, v in truth.items()})
    return {**_verdict(names, trials, inside, ranks, truths), "runs": runs}


def _record_times(prep, ref, truth: dict) -> np.ndarray:
    """The study's times, or, for a system whose record ends where the system says (a battery's
    at its cut-off), that truth's own record at the data's sampling interval: a cell that cuts off
    early has no voltage to record after it."""
    record = getattr(ref, "default_times", None)
    if record is None:
        return prep.data.time_s
    step = float(np.median(np.diff(prep.data.time_s)))
    return record(dt_s=step, **prep.study.conditions, **truth)


def _on_data(prep, data: Measurements):
    """The prepared study on another record: the forward map at its times, and the correlated
    error model's factors laid out on them."""
    from bayespinn.pipeline import _error_factors, _forward
    from inference.model import build_model

    spec = prep.spec
    if spec.surrogate_factor:
        spec = dataclasses.replace(spec, surrogate_factor=_error_factors(prep.model, prep.study, data))
    model = build_model(_forward(prep.model, prep.study, data), spec)
    return dataclasses.replace(prep, data=data, spec=spec, numpyro_model=model)


def _cost(checks: dict) -> dict:
    """What one trial's calibration cost and whether it converged."""
    correction = checks.get("correction", {})
    return {
        "converged": bool(checks["converged"]),
        "wall_time_s": float(checks["wall_time_s"]),
        "reference_solves": int(correction.get("reference_solves", 0)),
        # An importance correction's weights: whether to trust this trial's interval.
        **{k: correction[k] for k in ("k_hat", "ess", "refined") if k in correction},
    }


def _draw(prep, rng) -> tuple[dict, dict]:
    """Parameters from their priors; σ fixed, or from its HalfNormal prior when inferred."""
    import jax

    from inference.priors import distribution

    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    keys = jax.random.split(key, len(prep.study.priors))
    truth = {n: float(distribution(p).sample(k)) for (n, p), k in zip(prep.study.priors.items(), keys)}
    sigma = {}
    for obs, noise in prep.spec.noise.items():
        sigma[obs] = noise.sigma if noise.sigma is not None else abs(noise.scale * rng.standard_normal())
    return truth, sigma


def _inside(draws: np.ndarray, truth: float, level: float) -> bool:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return bool(lo <= truth <= hi)


def _thinned(draws: np.ndarray) -> np.ndarray:
    """RANK_DRAWS draws spread over the run, so that neighbouring MCMC draws do not repeat a rank."""
    return draws[np.linspace(0, len(draws) - 1, RANK_DRAWS).astype(int)]


def _verdict(names: list, trials: int, inside: dict, ranks: dict, truths: list) -> dict:
    from scipy import stats

    coverage, warnings = {}, []
    for name in names:
        rows = {}
        for level, count in zip(LEVELS, inside[name]):
            p = stats.binomtest(int(count), trials, level).pvalue
            rows[f"{level:.0%}"] = {"inside": int(count), "rate": count / trials, "p_value": p}
            if p < P_MIN:
                warnings.append(
                    f"{name}: {count} of {trials} truths inside the {level:.0%} intervals "
                    f"(binomial p = {p:.2g}): the intervals are {'too narrow' if count < level * trials else 'too wide'}"
                )
        counts = np.bincount(np.asarray(ranks[name]) * RANK_BINS // (RANK_DRAWS + 1), minlength=RANK_BINS)
        p_rank = rank_uniformity_pvalue(np.asarray(ranks[name]), n_draws=RANK_DRAWS, bins=RANK_BINS)
        if p_rank < P_MIN:
            warnings.append(
                f"{name}: rank histogram not uniform (χ² p = {p_rank:.2g}); the posterior is biased or mis-sized"
            )
        coverage[name] = {"levels": rows, "rank_histogram": counts.tolist(), "rank_p_value": p_rank}
    return {
        "trials": trials,
        "calibrated": not warnings,
        "criterion": f"each level's count binomial p ≥ {P_MIN} and the rank histogram's χ² p ≥ {P_MIN}",
        "parameters": coverage,
        "warnings": warnings,
        "truths": truths,
    }
