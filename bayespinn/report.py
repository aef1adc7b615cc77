"""One self-contained HTML report of a calibration: verdict, posterior, surrogate, figures, metadata.

Figures are PNGs embedded as base64 ``data:`` URIs and the styling is inline, so the file opens
offline and can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import os
import re
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import MatplotlibDeprecationWarning
from numpy.typing import ArrayLike

from bayespinn.welltest import pressure_change

__all__ = ["write_report"]

BAND_PROB = 0.9
_ENSEMBLES = ("eki", "esmda")
_BOURDET_L = 0.2  # Bourdet smoothing window in ln t
_COLUMNS = {
    "mean": "mean",
    "sd": "sd",
    "hdi_5%": "HDI 5 %",
    "hdi_95%": "HDI 95 %",
    "mcse_mean": "MCSE mean",
    "r_hat": "R-hat",
    "ess_bulk": "ESS bulk",
    "ess_tail": "ESS tail",
    "truth": "truth",
}
# R-hat is judged against 1.01 and ESS is a count, so they get fixed decimals, not significant digits.
_DECIMALS = {"r_hat": 3, "ess_bulk": 0, "ess_tail": 0}
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.verdict { border: 2px solid; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.verdict h2 { margin: 0.2em 0; }
.ok { background: #e6f4ea; border-color: #1e7e34; color: #14532d; }
.bad { background: #fdecea; border-color: #b71c1c; color: #7f1d1d; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
"""


def write_report(
    path: Path, idata: az.InferenceData, table: pd.DataFrame, diagnostics: dict, meta: dict
) -> Path:
    """Write the calibration report to ``path`` (atomically) and return ``path``.

    Parameters
    ----------
    path
        Destination ``.html`` file; its directory must exist.
    idata
        Groups ``posterior``, ``sample_stats``, ``observed_data``, ``posterior_predictive``; the
        observables carry a ``time`` coordinate in seconds; run settings in ``posterior.attrs``.
    table
        One row per parameter (index ``parameter``), columns as ``inference.diagnostics.summary``.
    diagnostics
        The verdict of ``inference.diagnostics.verdict`` plus ``wall_time_s``.
    meta
        ``title``, ``surrogate``, ``card``, ``parameters``, ``observables``, ``units``, ``truth``,
        ``conditions``, ``study_path`` (see ``bayespinn.pipeline``).
    """
    path = Path(path)
    open_before = set(plt.get_fignums())
    try:
        body = [
            _verdict_section(meta, diagnostics),
            _table_section(table, meta),
            _shape_section(idata, meta),
            _correction_section(diagnostics, meta),
            _reference_check_section(diagnostics, meta),
            _held_out_bias_section(diagnostics, meta),
            _surrogate_section(meta),
            _engine_section(idata, meta),
            _trace_section(idata, meta),
            _rank_section(idata, meta),
            _prior_posterior_section(idata, meta),
            _pair_section(idata, meta),
            _predictive_section(idata, meta),
            _bourdet_section(idata, meta),
            _metadata_section(idata, meta),
        ]
    finally:
        # A figure left open by a section that failed half-way would leak across calls.
        for number in set(plt.get_fignums()) - open_before:
            plt.close(number)
    _write_atomic(path, _page(str(meta.get("title", "bayespinn report")), body))
    return path


def band_coverage(observed: ArrayLike, predictive_draws: ArrayLike, prob: float = BAND_PROB) -> float:
    """Share of observed points inside the central ``prob`` posterior-predictive band.

    The band at each time is the ``(1 - prob)/2`` to ``(1 + prob)/2`` quantile (linear
    interpolation) over all draws; points on its edges count as inside.

    Parameters
    ----------
    observed
        Data, shape ``(n_time,)``.
    predictive_draws
        Posterior-predictive draws, shape ``(..., n_time)``: every leading axis (chain, draw) is a
        draw.
    """
    y = np.asarray(observed, dtype=float)
    lo, _, hi = _band(predictive_draws, y.shape[-1], prob)
    return float(np.mean((y >= lo) & (y <= hi)))


def _band(predictive_draws: ArrayLike, n_time: int, prob: float) -> np.ndarray:
    """Lower quantile, median and upper quantile over draws, shape ``(3, n_time)``."""
    draws = np.asarray(predictive_draws, dtype=float)
    if draws.shape[-1] != n_time:
        raise ValueError(f"predictive draws end in {draws.shape[-1]} times, the data has {n_time}")
    draws = draws.reshape(-1, n_time)
    return np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)


# --- sections -------------------------------------------------------------------------------


def _verdict_section(meta: dict, d: dict) -> str:
    ok = bool(d.get("converged"))
    head = "Converged — results can be trusted" if ok else "NOT converged — do not trust these results"
    if ok and d.get("flags"):
        head = "Converged — but the results can be trusted only after the checks below"
    items = "".join(f"<li>{_e(w)}</li>" for w in d.get("warnings") or [])
    numbers = [
        ("max R-hat", _fmt(d.get("max_rhat"), 3)),
        ("min ESS bulk", _fmt(d.get("min_ess_bulk"), 0)),
        ("min ESS tail", _fmt(d.get("min_ess_tail"), 0)),
        ("divergences", _fmt(d.get("divergences"), 0)),
        ("min E-BFMI", _fmt(d.get("min_bfmi"))),
        ("sampling wall time", _seconds(d.get("wall_time_s"))),
    ]
    flags = "".join(f"<li>{_e(f)}</li>" for f in d.get("flags") or [])
    note = d.get("approximation")
    return (
        f"<h1>{_e(meta.get('title', 'bayespinn report'))}</h1>"
        f'<div class="verdict {"ok" if ok else "bad"}"><h2>{_e(head)}</h2>'
        f"{f'<ul>{items}</ul>' if items else ''}</div>"
        + (f'<p class="approximation"><b>Approximate engine.</b> {_e(note)}.</p>' if note else "")
        + (f'<div class="verdict bad"><h3>Check before use</h3><ul>{flags}</ul></div>' if flags else "")
        + _key_values(numbers)
    )


def _table_section(table: pd.DataFrame, meta: dict) -> str:
    units = meta.get("units") or {}
    columns = [c for c in _COLUMNS if c in table.columns] + [c for c in table.columns if c not in _COLUMNS]
    head = "".join(f"<th>{_e(_COLUMNS.get(c, c))}</th>" for c in columns)
    rows = "".join(
        f"<tr><td>{_e(_with_unit(name, units.get(name)))}</td>"
        + "".join(f"<td>{_e(_fmt(row[c], _DECIMALS.get(c)))}</td>" for c in columns)
        + "</tr>"
        for name, row in table.iterrows()
    )
    return (
        "<h2>Posterior</h2><p>Mean, sd and 90 % highest-density interval of each parameter.</p>"
        f'<table class="posterior"><tr><th>parameter</th>{head}</tr>{rows}</table>'
    )


def _shape_section(idata: az.InferenceData, meta: dict) -> str:
    """How much the data taught (prior sd → posterior sd) and how the parameters trade off."""
    names = _parameters(idata, meta)
    post = {n: idata.posterior[n].values.ravel() for n in names}
    learn = "".join(
        f"<tr><td>{_e(n)}</td><td>{_e(_fmt(a))}</td><td>{_e(_fmt(b))}</td><td>{_e(_fmt(c, 4))}</td></tr>"
        for n, (a, b, c) in ((n, _shrinkage(idata, n)) for n in names)
    )
    corr = np.corrcoef(np.stack([post[n] for n in names])) if len(names) > 1 else np.ones((1, 1))
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    cells = "".join(
        f"<tr><td>{_e(a)}</td>" + "".join(f"<td>{corr[i, j]:+.2f}</td>" for j in range(len(names))) + "</tr>"
        for i, a in enumerate(names)
    )
    return (
        "<h2>What the data taught</h2><p>Shrinkage is 1 − posterior variance / prior variance: "
        "near 1 the data decide, near 0 the prior does.</p>"
        f'<table class="posterior"><tr><th>parameter</th><th>prior sd</th><th>posterior sd</th>'
        f"<th>shrinkage</th></tr>{learn}</table>"
        f'<h3>Posterior correlations</h3><table class="posterior"><tr><th></th>{head}</tr>{cells}</table>'
    )


def _correction_section(d: dict, meta: dict) -> str:
    """What the reference correction did and cost, and how far the surrogate alone was off."""
    c = d.get("correction")
    if not c:
        return ""
    units = meta.get("units") or {}
    if c["method"] == "importance":
        what = "Importance reweighting of the surrogate posterior by the reference likelihood (PSIS)."
        numbers = [("Pareto k̂", _fmt(c.get("k_hat"), 2)), ("effective sample size", _fmt(c.get("ess"), 0))]
    else:
        what = (
            "Delayed-acceptance Metropolis–Hastings: proposals screened by the surrogate, accepted by the "
            "reference solver; the chain targets the exact posterior."
        )
        numbers = [
            ("proposal", str(c.get("proposal", "—"))),
            ("stage-1 acceptance (surrogate)", _fmt(c.get("stage1_acceptance"), 3)),
            ("stage-2 acceptance (reference)", _fmt(c.get("stage2_acceptance"), 3)),
        ]
    numbers += [
        ("reference solves", _fmt(c.get("reference_solves"), 0)),
        ("wall time", _seconds(c.get("wall_time_s"))),
    ]
    rows = "".join(
        f"<tr><td>{_e(_with_unit(name, units.get(name)))}</td><td>{_e(_fmt(v['mean']))}</td>"
        f"<td>{_e(_fmt(v['sd']))}</td><td>{_e(_fmt(v['shift_in_corrected_sd'], 2))}</td></tr>"
        for name, v in (c.get("surrogate_posterior") or {}).items()
    )
    return (
        f"<h2>Reference correction</h2><p>{_e(what)}</p>"
        + _key_values(numbers)
        + "<p>The surrogate's posterior before the correction:</p>"
        + "<table><tr><th>parameter</th><th>mean</th><th>sd</th><th>shift in corrected sd</th></tr>"
        + rows
        + "</table>"
    )


def _reference_check_section(d: dict, meta: dict) -> str:
    """``--check-reference``: surrogate − reference over posterior draws, and the mean shift it causes."""
    c = d.get("reference_check")
    if not c:
        return ""
    units = meta.get("units") or {}
    rows = "".join(
        f"<tr><td>{_e(obs)}</td><td>{_e(_fmt(r['rms']))}</td><td>{_e(_fmt(r['max_abs']))}</td>"
        f"<td>{_e(_fmt(r['likelihood_sd']))}</td><td>{_e(_fmt(r['rms_in_likelihood_sd'], 3))}</td></tr>"
        for obs, r in c["observables"].items()
    )
    shifts = "".join(
        f"<tr><td>{_e(_with_unit(name, units.get(name)))}</td><td>{shift:+.2f}</td></tr>"
        for name, shift in c["mean_shift_in_sd"].items()
    )
    figures = "".join(
        _figure(
            _difference_figure(obs, r),
            f"{obs}: surrogate − reference over {c['draws']} posterior draws "
            "(median and 5–95 % band), with ± the likelihood sd.",
        )
        for obs, r in c["observables"].items()
    )
    return (
        f"<h2>Surrogate against the reference over the posterior</h2><p>{c['draws']} posterior draws "
        f"solved again with <code>{_e(c['reference'])}</code> at the data times "
        f"({_seconds(c.get('wall_time_s'))}).</p>"
        "<table><tr><th>observable</th><th>RMS difference</th><th>max |difference|</th>"
        f"<th>likelihood sd</th><th>RMS / sd</th></tr>{rows}</table>"
        "<p>Estimated shift of each posterior mean caused by the difference, in posterior sds (first "
        f"order; above {c['flag_above_sd']:g} the run is flagged):</p>"
        f"<table><tr><th>parameter</th><th>shift [sd]</th></tr>{shifts}</table>{figures}"
    )


def _held_out_bias_section(d: dict, meta: dict) -> str:
    """What the surrogate's error at its held-out cells would do to a record like this one."""
    b = d.get("held_out_bias")
    if not b:
        return ""
    units = meta.get("units") or {}
    rows = "".join(
        f"<tr><td>{_e(_with_unit(name, units.get(name)))}</td><td>{v['median_abs_sd']:.2f}</td>"
        f"<td>{v['p90_abs_sd']:.2f}</td><td>{100 * v['share_above_flag']:.0f} %</td></tr>"
        for name, v in b["parameters"].items()
    )
    return (
        "<h2>What the surrogate's measured error could do here</h2>"
        f"<p>At each of the card's {b['curves']} held-out cells the surrogate's error against the "
        "reference is known. Were the truth that cell, a record like this one (its times laid onto "
        "the cell, its noise) would put a posterior that trusts the surrogate off by a first-order "
        "shift; the table gives its size in that posterior's sds, the cells near this study's "
        f"conditions and posterior mean weighing more. A median above {b['flag_above_sd']:g} sd is "
        "flagged: the record is long or quiet enough for the surrogate's error to matter, and the "
        'reference correction (<code>correct = "importance"</code>) or <code>--check-reference</code> '
        "tells how much at this record.</p>"
        "<table><tr><th>parameter</th><th>median |shift| [sd]</th><th>90 % of cells within [sd]</th>"
        f"<th>cells above {b['flag_above_sd']:g} sd</th></tr>{rows}</table>"
    )


def _difference_figure(obs: str, r: dict):
    time = np.asarray(r["time_s"])
    fig, ax = plt.subplots(figsize=(8, 2.8), layout="constrained")
    ax.fill_between(time, r["q05"], r["q95"], color="tab:orange", alpha=0.3, label="5–95 % of draws")
    ax.plot(time, r["q50"], color="tab:orange", label="median")
    for sign in (-1, 1):
        ax.axhline(sign * r["likelihood_sd"], color="k", ls="--", lw=0.8)
    ax.set_xlabel("Time [s]")
    ax.set_ylabel(_label_in_unit_of("Surrogate − reference", obs))
    ax.legend(loc="best", fontsize="small")
    return fig


def _surrogate_section(meta: dict) -> str:
    card = meta.get("card")
    name = f"<p>Model: <code>{_e(meta.get('surrogate', ''))}</code></p>"
    if card is None:
        return f"<h2>Surrogate</h2>{name}<p>reference solver (no surrogate error)</p>"
    units = {**(card.get("units") or {}), **(meta.get("units") or {})}
    domain = [
        (_with_unit(k, units.get(k)), f"[{_fmt(lo)}, {_fmt(hi)}]")
        for k, (lo, hi) in (card.get("domain") or {}).items()
    ]
    training = card.get("training") or {}
    trained = [
        ("hardware", str(training.get("hardware", "—"))),
        ("wall time", _seconds(training.get("wall_time_s"))),
        ("training data", str(training.get("mix", "—"))),
        ("reproduce", str(training.get("reproduce", "—"))),
    ]
    trained += [("provenance", str(training["provenance"]))] if training.get("provenance") else []
    return (
        f"<h2>Surrogate</h2>{name}<h3>Trained domain</h3>{_key_values(domain)}"
        f"{_validation(card.get('validation') or {})}<h3>Training</h3>{_key_values(trained)}"
    )


def _validation(validation: dict) -> str:
    stats = ("median", "p95", "max")
    # Per-observable RMSEs, and relative errors where the card states them (a well's pressure drop).
    rows_by_name = {obs: v for obs, v in (validation.get("rmse") or {}).items()}
    rows_by_name.update(
        {
            k.replace("_", " "): v
            for k, v in validation.items()
            if k.startswith("relative") and isinstance(v, dict)
        }
    )
    if not rows_by_name:
        return "<h3>Validation</h3><p>No validation error in the card.</p>"
    rows = "".join(
        f"<tr><td>{_e(obs)}</td>" + "".join(f"<td>{_e(_fmt(v.get(s)))}</td>" for s in stats) + "</tr>"
        for obs, v in rows_by_name.items()
    )
    cutoff = validation.get("cutoff_time")
    cutoff_line = (
        f"<p>Cut-off time: within 0.2 % of the reference for {100 * cutoff['share_within_0.2%']:.0f} % "
        f"of the points; largest error {100 * cutoff['max_abs_rel_error']:.3f} %.</p>"
        if cutoff
        else ""
    )
    return (
        "<h3>Validation against the reference solver</h3>"
        f"<p>Error per record on the held-out design: {_e(validation.get('design', '—'))}</p>"
        f"<table><tr><th>observable</th>{''.join(f'<th>{s}</th>' for s in stats)}</tr>{rows}</table>"
        f"{cutoff_line}"
    )


def _trace_section(idata: az.InferenceData, meta: dict) -> str:
    if idata.posterior.attrs.get("engine") in _ENSEMBLES:
        return "<h2>Trace plots</h2><p>An ensemble's members are not a chain: no trace to show.</p>"
    units = meta.get("units") or {}
    figures = []
    for name in _parameters(idata, meta):
        with _arviz_quiet():
            axes = az.plot_trace(idata, var_names=[name], compact=False)
        label = _with_unit(name, units.get(name))
        for ax in np.ravel(axes):
            ax.set_title(label)
        np.ravel(axes)[-1].set_xlabel("Draw")
        figures.append(
            _figure(
                np.ravel(axes)[0].figure, f"Trace of {label}: density per chain (left) and draws (right)."
            )
        )
    return "<h2>Trace plots</h2>" + "".join(figures)


def _rank_section(idata: az.InferenceData, meta: dict) -> str:
    """Rank plots: chains that sample the same distribution give flat, overlapping rank histograms."""
    if idata.posterior.attrs.get("engine") in (*_ENSEMBLES, "svi"):
        return ""  # ensemble members and SVI draws are independent: no chains to compare
    units = meta.get("units") or {}
    figures = []
    for name in _parameters(idata, meta):
        with _arviz_quiet():
            ax = np.ravel(az.plot_rank(idata, var_names=[name], figsize=(7, 3)))[0]
        label = _with_unit(name, units.get(name))
        ax.set_title(label)
        ax.set_xlabel(f"Rank of {label} over all chains")
        figures.append(_figure(ax.figure, f"Rank plot of {label}: one histogram per chain; flat if mixed."))
    return '<h2 id="rank-plots">Rank plots</h2>' + "".join(figures)


def _prior_posterior_section(idata: az.InferenceData, meta: dict) -> str:
    prior = idata.get("prior")
    parts = ['<h2 id="prior-posterior">Prior and posterior</h2>']
    for name in _parameters(idata, meta):
        if prior is None or name not in prior:
            parts.append(f"<p>{_e(name)}: no prior draws in the run, nothing to compare.</p>")
            continue
        label = _with_unit(name, (meta.get("units") or {}).get(name))
        truth = (meta.get("truth") or {}).get(name)
        truth = float(truth) if _is_number(truth) and np.isfinite(truth) else None
        shrink = _fmt(_shrinkage(idata, name)[2], 4)
        fig = _prior_posterior_figure(prior[name].values.ravel(), idata.posterior[name].values.ravel(), truth)
        fig.axes[0].set_xlabel(label)
        fig.axes[0].set_title(f"{name}: shrinkage {shrink}")
        caption = f"Prior draws (grey) and posterior density (blue) of {label}; shrinkage {shrink}" + (
            "; truth dashed." if truth is not None else "."
        )
        parts.append(_figure(fig, caption))
    return "".join(parts)


def _prior_posterior_figure(prior: np.ndarray, post: np.ndarray, truth: float | None = None):
    """Prior histogram and posterior KDE; log x when the prior spans more than two decades."""
    log = bool(np.all(prior > 0) and np.quantile(prior, 0.99) > 100 * np.quantile(prior, 0.01))
    fig, ax = plt.subplots(figsize=(7, 3))
    bins = np.geomspace(prior.min(), prior.max(), 40) if log else 40
    ax.hist(prior, bins=bins, density=True, color="grey", alpha=0.4, label="prior")
    if np.ptp(post) > 0:
        ax.plot(*az.kde(post), color="tab:blue", label="posterior")
    else:
        ax.axvline(post[0], color="tab:blue", label="posterior")
    if truth is not None:
        ax.axvline(truth, color="tab:red", ls="--", label="truth")
    ax.set_xscale("log" if log else "linear")
    ax.set_ylabel("Density")
    ax.legend(loc="best", fontsize="small")
    return fig


def _engine_section(idata: az.InferenceData, meta: dict) -> str:
    """How an optimisation-based engine got there: the ELBO of SVI, the spread of an ensemble."""
    stats = idata.get("sample_stats")
    if stats is not None and "elbo" in stats:
        fig, ax = plt.subplots(figsize=(7, 3))
        elbo = stats["elbo"].values
        ax.plot(np.arange(1, elbo.size + 1), elbo, lw=0.6)
        ax.set_xlabel("SVI step")
        ax.set_ylabel("ELBO [nat]")
        low = np.quantile(elbo[elbo.size // 10 :], 0.01)  # the first steps would flatten the rest
        ax.set_ylim(low, elbo.max() + 0.05 * (elbo.max() - low))
        return "<h2>Variational fit</h2>" + _figure(
            fig, "ELBO per step (higher is better); it should end flat."
        )
    if stats is not None and "spread" in stats:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
        spread = stats["spread"].values
        for j, name in enumerate(stats["parameter"].values):
            left.semilogy(np.arange(spread.shape[0]), spread[:, j], marker="o", label=str(name))
        left.set_xlabel("Assimilation step (0 = prior)")
        left.set_ylabel("Ensemble sd (unconstrained)")
        left.legend()
        right.semilogy(np.arange(1, stats["misfit"].size + 1), stats["misfit"].values, marker="o")
        right.axhline(1.0, color="grey", lw=0.8)
        right.set_xlabel("Assimilation step")
        right.set_ylabel("Mean normalised misfit")
        caption = (
            f"Ensemble spread and data misfit per step (α schedule {idata.posterior.attrs.get('schedule', '?')}); "
            "a misfit near 1 means the members fit the data to the noise."
        )
        return "<h2>Ensemble updates</h2>" + _figure(fig, caption)
    return ""


def _pair_section(idata: az.InferenceData, meta: dict) -> str:
    names = _parameters(idata, meta)
    if len(names) < 2:
        return "<h2>Pair plot</h2><p>Only one parameter: see its trace plot.</p>"
    with _arviz_quiet():
        axes = az.plot_pair(
            idata, var_names=names, kind="scatter", marginals=True, scatter_kwargs={"alpha": 0.3, "s": 12}
        )
    truth = {k: float(v) for k, v in (meta.get("truth") or {}).items() if k in names and np.isfinite(v)}
    _mark_truth(axes, names, truth)
    _label_units(axes, meta.get("units") or {})
    fig = axes[-1, 0].figure
    caption = "Joint and marginal posterior draws" + ("; truth as red lines." if truth else ".")
    return "<h2>Pair plot</h2>" + _figure(fig, caption)


def _mark_truth(axes: np.ndarray, names: list[str], truth: dict) -> None:
    # arviz rotates the last marginal only when there are exactly two variables.
    style = {"color": "tab:red", "lw": 1.2}
    for i, y_name in enumerate(names):
        for j, x_name in enumerate(names[: i + 1]):
            ax = axes[i, j]
            if i == j:
                line = ax.axhline if (len(names) == 2 and i == 1) else ax.axvline
                if x_name in truth:
                    line(truth[x_name], **style)
                continue
            if x_name in truth:
                ax.axvline(truth[x_name], **style)
            if y_name in truth:
                ax.axhline(truth[y_name], **style)


def _label_units(axes: np.ndarray, units: dict) -> None:
    for ax in (a for a in np.ravel(axes) if a is not None):
        ax.set_xlabel(_with_unit(ax.get_xlabel(), units.get(ax.get_xlabel())))
        ax.set_ylabel(_with_unit(ax.get_ylabel(), units.get(ax.get_ylabel())))


def _predictive_section(idata: az.InferenceData, meta: dict) -> str:
    parts = ["<h2>Posterior predictive</h2>"]
    for obs in meta.get("observables") or list(idata.posterior_predictive.data_vars):
        if obs not in idata.observed_data or obs not in idata.posterior_predictive:
            parts.append(f"<p>{_e(obs)}: no observed data or posterior predictive in the run.</p>")
            continue
        parts.append(_predictive_observable(idata, obs))
    return "".join(parts)


def _predictive_observable(idata: az.InferenceData, obs: str) -> str:
    data = idata.observed_data[obs]
    time = np.asarray(data[data.dims[-1]].values, dtype=float)
    observed = np.asarray(data.values, dtype=float)
    draws = idata.posterior_predictive[obs].transpose("chain", "draw", ...).values
    share = band_coverage(observed, draws, BAND_PROB)
    inside = round(share * observed.size)
    text = (
        f'<p class="coverage">{_e(obs)}: {inside} of {observed.size} data points '
        f"({100 * share:.1f} %) lie inside the {100 * BAND_PROB:.0f} % posterior-predictive band.</p>"
    )
    caption = f"{obs}: data, posterior-predictive median and 5–95 % band (top); data minus median (bottom)."
    return _figure(_predictive_figure(time, observed, draws, obs), caption) + text


def _predictive_figure(time: np.ndarray, observed: np.ndarray, draws: np.ndarray, obs: str):
    lo, med, hi = _band(draws, observed.size, BAND_PROB)
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(8, 5), layout="constrained", gridspec_kw={"height_ratios": [3, 1]}
    )
    top.fill_between(time, lo, hi, color="tab:blue", alpha=0.25, label="5–95 % band")
    top.plot(time, med, color="tab:blue", label="median")
    top.plot(time, observed, "o", color="k", ms=3, label="data")
    top.set_ylabel(obs)
    top.legend(loc="best", fontsize="small")
    bottom.fill_between(time, lo - med, hi - med, color="tab:blue", alpha=0.25)
    bottom.axhline(0.0, color="tab:blue", lw=1)
    bottom.plot(time, observed - med, "o", color="k", ms=3)
    bottom.set_ylabel(_label_in_unit_of("Residual", obs))
    bottom.set_xlabel("Time [s]")
    return fig


def _bourdet_section(idata: az.InferenceData, meta: dict) -> str:
    """Well tests: Δp and its Bourdet derivative on log-log axes, data against the posterior predictive."""
    obs, conditions = "Pressure [psi]", meta.get("conditions") or {}
    pp, od = idata.get("posterior_predictive"), idata.get("observed_data")
    if pp is None or od is None or obs not in pp or obs not in od or "initial_pressure" not in conditions:
        return ""
    t_p = float(conditions.get("production_time") or 0.0)
    data = od[obs]
    t_h = np.asarray(data[data.dims[-1]].values, dtype=float) / 3600.0
    keep = t_h > 0
    draws = pp[obs].transpose("chain", "draw", ...).values.reshape(-1, t_h.size)
    draws = draws[np.unique(np.linspace(0, len(draws) - 1, min(len(draws), 400)).astype(int))][:, keep]
    t_h, p_i = t_h[keep], float(conditions["initial_pressure"])
    dp, deriv = pressure_change(t_h, np.asarray(data.values, dtype=float)[keep], p_i, t_p, _BOURDET_L)
    bands = [
        np.quantile(v, [0.05, 0.5, 0.95], axis=0) for v in pressure_change(t_h, draws, p_i, t_p, _BOURDET_L)
    ]
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for (lo, med, hi), color, name in zip(bands, ("tab:blue", "tab:red"), ("Δp", "derivative"), strict=True):
        ax.fill_between(
            t_h, lo, hi, where=(lo > 0) & (hi > 0), color=color, alpha=0.2, label=f"{name} 5–95 %"
        )
        ax.plot(t_h, np.where(med > 0, med, np.nan), color=color, label=f"{name} median")
    ax.plot(t_h, np.where(dp > 0, dp, np.nan), "o", color="k", ms=4, label="Δp data")
    ax.plot(
        t_h, np.where(deriv > 0, deriv, np.nan), "^", mfc="none", color="k", ms=5, label="derivative data"
    )
    ax.set(xscale="log", yscale="log", ylabel="Δp and d(Δp)/d(ln t) [psi]")
    ax.set_xlabel("Shut-in time Δt [h]" if t_p > 0 else "Time [h]")
    what = f"Buildup after {t_p:g} h of production" if t_p > 0 else "Drawdown"
    ax.set_title(f"{what}: Bourdet derivative (L = {_BOURDET_L:g} in ln t)")
    ax.legend(loc="best", fontsize="small", ncols=2)
    reference = (
        "Δp = p(Δt) − p at the first shut-in point, derivative in Agarwal's equivalent time"
        if t_p > 0
        else f"Δp = {p_i:g} psi − p"
    )
    caption = (
        f"{what}: {reference}; data (markers) and posterior-predictive median and 5–95 % band (lines). "
        "A flat derivative is infinite-acting radial flow; its level gives k·h = 70.6·q·B·μ / level. "
        "A doubling of the flat level is a sealing fault, and the later the rise, the farther the fault. "
        "Points with Δp or derivative ≤ 0 are left out."
    )
    return '<h2 id="bourdet">Pressure derivative (Bourdet)</h2>' + _figure(fig, caption)


def _metadata_section(idata: az.InferenceData, meta: dict) -> str:
    attrs = idata.posterior.attrs
    run = [(k, str(attrs.get(k, "—"))) for k in ("engine", "chains", "warmup", "samples", "seed")]
    settings = ("backend", "guide", "svi_steps", "learning_rate", "ensemble_size", "schedule", "inversion")
    run += [(k, str(attrs[k])) for k in (*settings, "forward_calls", "surrogate_error") if k in attrs]
    run += [(k, str(meta[k])) for k in ("machine", "versions") if meta.get(k)]
    run.append(("study", str(meta.get("study_path", "—"))))
    units = meta.get("units") or {}
    conditions = [
        (_with_unit(k, units.get(k)), _fmt(v) if _is_number(v) else str(v))
        for k, v in (meta.get("conditions") or {}).items()
    ]
    return (
        "<h2>Run</h2>"
        + _key_values(run)
        + "<h3>Conditions</h3>"
        + (_key_values(conditions) if conditions else "<p>none</p>")
    )


# --- helpers --------------------------------------------------------------------------------


def _shrinkage(idata: az.InferenceData, name: str) -> tuple[float, float, float]:
    """Prior sd, posterior sd and shrinkage 1 − posterior var / prior var (NaN without prior draws)."""
    post = idata.posterior[name].values.ravel()
    prior = idata.get("prior")
    prior_sd = float(np.std(prior[name].values)) if prior is not None and name in prior else np.nan
    shrink = 1 - np.var(post) / prior_sd**2 if np.isfinite(prior_sd) and prior_sd > 0 else np.nan
    return prior_sd, float(np.std(post)), shrink


def _parameters(idata: az.InferenceData, meta: dict) -> list[str]:
    return [p for p in meta.get("parameters") or [] if p in idata.posterior] or list(
        idata.posterior.data_vars
    )


@contextlib.contextmanager
def _arviz_quiet():
    """arviz 0.23 passes dicts to ``matplotlib.cbook.normalize_kwargs``, deprecated in matplotlib 3.11;
    nothing for us to change, so that one warning is silenced around arviz calls only."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Passing a dict or None as alias_mapping", category=MatplotlibDeprecationWarning
        )
        yield


def _figure(fig, caption: str) -> str:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _key_values(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _with_unit(name: str, unit: str | None) -> str:
    return f"{name} [{unit}]" if unit else str(name)


def _label_in_unit_of(label: str, observable: str) -> str:
    """``label`` with the unit in brackets that ends the observable's name, if it has one."""
    unit = re.search(r"\[([^\]]*)\]\s*$", observable)
    return f"{label} [{unit.group(1)}]" if unit else label


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _fmt(value, decimals: int | None = None) -> str:
    """4 significant digits, or a fixed number of decimals; ``—`` for missing or NaN."""
    if value is None or not _is_number(value) or not np.isfinite(value):
        return "—" if value is None or _is_number(value) else str(value)
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:.4g}"


def _seconds(value) -> str:
    return f"{float(value):.1f} s" if _is_number(value) and np.isfinite(value) else "—"


def _e(text) -> str:
    return html.escape(str(text))
