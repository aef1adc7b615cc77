"""The HTML report: self-contained, verdict first, honest band coverage, truth in the table."""

from __future__ import annotations

import html
import re

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bayespinn.report import _predictive_figure, _prior_posterior_figure, band_coverage, write_report

ANGLE = "Angle [rad]"
TIME_S = np.linspace(0.0, 10.0, 50)
TRUTH = {"m": 0.3217, "d": 0.1234}
CARD = {
    "domain": {"m": [0.1, 1.0], "d": [0.05, 0.5]},
    "validation": {
        "design": "64 Sobol points",
        "rmse": {ANGLE: {"median": 0.01478, "p95": 0.07798, "max": 0.1398, "overall": 0.03477}},
    },
    "training": {
        "hardware": "x86_64 CPU, 2 threads",
        "wall_time_s": 87.1,
        "mix": "physics + data",
        "reproduce": "bayespinn train power.smib",
        "provenance": "resumed from step 1,500",
    },
}
WARNINGS = [
    "R-hat 1.100 > 1.01: chains disagree; run more warmup or samples",
    "3 divergent transitions: raise target_accept or reparameterise",
]


def _predictive_draws() -> np.ndarray:
    rng = np.random.default_rng(1)
    mean = 0.1 * np.exp(-0.2 * TIME_S) * np.cos(2.0 * TIME_S)
    return mean + 0.01 * rng.standard_normal((2, 200, TIME_S.size))


def _idata(observed: np.ndarray | None = None) -> az.InferenceData:
    rng = np.random.default_rng(0)
    draws = _predictive_draws()
    if observed is None:
        observed = draws[0, 0]
    posterior = {"m": rng.normal(0.32, 0.02, (2, 200)), "d": rng.normal(0.12, 0.01, (2, 200))}
    idata = az.from_dict(
        posterior=posterior,
        sample_stats={"diverging": np.zeros((2, 200), dtype=bool)},
        observed_data={ANGLE: observed},
        posterior_predictive={ANGLE: draws},
        prior={"m": rng.uniform(0.1, 1.0, (1, 100)), "d": rng.uniform(0.05, 0.5, (1, 100))},
        coords={"time": TIME_S},
        dims={ANGLE: ["time"]},
    )
    idata.posterior.attrs.update(
        {
            "engine": "nuts",
            "chains": "2",
            "warmup": "100",
            "samples": "200",
            "seed": "7",
            "wall_time_s": "1.5",
        }
    )
    return idata


def _table(idata: az.InferenceData, truth: dict | None) -> pd.DataFrame:
    table = az.summary(idata, var_names=["m", "d"], hdi_prob=0.9, round_to="none")
    table = table[["mean", "sd", "hdi_5%", "hdi_95%", "mcse_mean", "r_hat", "ess_bulk", "ess_tail"]]
    if truth:
        table["truth"] = [truth[name] for name in table.index]
    table.index.name = "parameter"
    return table


def _diagnostics(warnings: list[str]) -> dict:
    return {
        "converged": not warnings,
        "max_rhat": 1.1 if warnings else 1.002,
        "min_ess_bulk": 380.0,
        "min_ess_tail": 410.0,
        "divergences": 3 if warnings else 0,
        "min_bfmi": 0.9,
        "warnings": warnings,
        "wall_time_s": 1.5,
    }


def _meta(truth: dict | None = None, card: dict | None = None) -> dict:
    return {
        "title": "smib test: power.smib",
        "surrogate": "power.smib",
        "card": card,
        "parameters": ["m", "d"],
        "observables": [ANGLE],
        "units": {"m": "p.u.·s²/rad", "d": "p.u.·s/rad"},
        "truth": truth,
        "conditions": {"B": 0.2, "P": 0.1},
        "study_path": "/studies/smib.toml",
        "versions": "bayespinn 0.1.0, numpyro 0.19.0",
    }


def _write(tmp_path, observed=None, truth=None, card=None, warnings=()) -> str:
    idata = _idata(observed)
    path = tmp_path / "report.html"
    returned = write_report(
        path, idata, _table(idata, truth), _diagnostics(list(warnings)), _meta(truth, card)
    )
    assert returned == path
    return path.read_text(encoding="utf-8")


def _coverage_percent(text: str) -> float:
    match = re.search(
        r'class="coverage">' + re.escape(html.escape(ANGLE)) + r": \d+ of 50 data points "
        r"\(([\d.]+) %\)",
        text,
    )
    assert match, "no coverage sentence for the observable"
    return float(match.group(1))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    return _write(tmp_path_factory.mktemp("report"), truth=TRUTH, card=CARD)


def test_report_is_self_contained_with_verdict_and_figures(report):
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", report)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "http://" not in report and "https://" not in report
    assert "<script" not in report and "<link" not in report
    assert report.count("data:image/png;base64,") >= 4
    assert "Converged — results can be trusted" in report
    assert "NOT converged" not in report
    for name in ("m", "d", ANGLE):
        assert f"{html.escape(name)} " in report or f"{html.escape(name)}<" in report


def test_verdict_comes_before_the_posterior_table(report):
    assert report.index("Converged — results can be trusted") < report.index('class="posterior"')


def test_posterior_table_shows_units_and_truth(report):
    table = re.search(r'<table class="posterior">.*?</table>', report, re.DOTALL).group(0)
    assert "m [p.u.·s²/rad]" in table and "d [p.u.·s/rad]" in table
    assert "<th>truth</th>" in table
    for value in TRUTH.values():
        assert f"<td>{value:.4g}</td>" in table


def test_surrogate_card_numbers_are_reported(report):
    for value in ("0.01478", "0.07798", "0.1398", "x86_64 CPU, 2 threads", "87.1 s", "[0.05, 0.5]"):
        assert value in report
    assert "<td>reproduce</td><td>bayespinn train power.smib</td>" in report
    assert "<td>provenance</td><td>resumed from step 1,500</td>" in report


def test_run_metadata_is_reported(report):
    for key, value in (
        ("engine", "nuts"),
        ("chains", "2"),
        ("warmup", "100"),
        ("samples", "200"),
        ("seed", "7"),
        ("study", "/studies/smib.toml"),
        ("B", "0.2"),
        ("versions", "bayespinn 0.1.0, numpyro 0.19.0"),
    ):
        assert f"<td>{key}</td><td>{value}</td>" in report


def test_not_converged_report_lists_every_warning(tmp_path):
    text = _write(tmp_path, warnings=WARNINGS)
    assert "NOT converged — do not trust these results" in text
    assert "Converged — results can be trusted" not in text
    for warning in WARNINGS:
        assert f"<li>{html.escape(warning)}</li>" in text
    assert "reference solver (no surrogate error)" in text
    assert "<th>truth</th>" not in text


def test_report_leaves_no_figure_open_and_no_temporary_file(tmp_path):
    _write(tmp_path)
    assert plt.get_fignums() == []
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_data_equal_to_predictive_median_is_fully_covered(tmp_path):
    median = np.median(_predictive_draws().reshape(-1, TIME_S.size), axis=0)
    assert _coverage_percent(_write(tmp_path, observed=median)) == 100.0


def test_data_far_outside_the_band_is_not_covered(tmp_path):
    median = np.median(_predictive_draws().reshape(-1, TIME_S.size), axis=0)
    assert _coverage_percent(_write(tmp_path, observed=median + 1.0)) == 0.0


def test_band_coverage_matches_a_hand_count():
    # 11 draws 0..10 at each of 4 times: the 90 % band is [0.5, 9.5] (linear quantiles), edges inside.
    draws = np.broadcast_to(np.arange(11.0)[:, None], (11, 4)).reshape(1, 11, 4)
    assert band_coverage([0.4, 0.5, 9.5, 9.6], draws) == 0.5
    assert band_coverage([0.4, 1.0, 5.0, 9.0], draws, prob=0.8) == 0.75  # band [1, 9]
    assert band_coverage([5.0, 5.0, 5.0, 5.0], draws) == 1.0


def test_band_coverage_rejects_mismatched_times():
    with pytest.raises(ValueError, match="5 times"):
        band_coverage(np.zeros(4), np.zeros((10, 5)))


def test_predictive_figure_is_labelled():
    draws = _predictive_draws()
    fig = _predictive_figure(TIME_S, draws[0, 0], draws, ANGLE)
    try:
        top, bottom = fig.axes
        assert top.get_ylabel() == ANGLE
        assert bottom.get_xlabel() == "Time [s]"
        assert bottom.get_ylabel() == "Residual [rad]"
    finally:
        plt.close(fig)


def test_shrinkage_and_correlations_are_reported(report):
    # Prior U(0.1, 1) (sd ≈ 0.26) → posterior N(0.32, 0.02²): shrinkage 1 − 0.02²/0.26² ≈ 0.994.
    section = report[report.index("What the data taught") :]
    assert "shrinkage" in section and "Posterior correlations" in section
    assert re.search(r"<td>0\.99\d*</td>", section), section[:600]


def test_flags_appear_in_the_verdict_box(tmp_path):
    idata = _idata()
    diagnostics = {
        **_diagnostics([]),
        "flags": ["m: 40% of the posterior lies within 1% of the upper bound 1"],
    }
    path = write_report(tmp_path / "r.html", idata, _table(idata, None), diagnostics, _meta())
    text = path.read_text(encoding="utf-8")
    assert "Check before use" in text and "upper bound 1" in text
    assert text.index("Check before use") < text.index("<h2>Posterior</h2>")
    # A converged run with flags does not open with an unqualified "can be trusted".
    assert "Converged — results can be trusted" not in text
    assert "only after the checks below" in text


def _section(text: str, anchor: str) -> str:
    """The report from ``<h2 id="anchor">`` up to the next ``<h2``."""
    start = text.index(f'<h2 id="{anchor}">')
    end = text.find("<h2", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _write_idata(tmp_path, idata: az.InferenceData, truth: dict | None = None) -> str:
    path = write_report(tmp_path / "r.html", idata, _table(idata, truth), _diagnostics([]), _meta(truth))
    return path.read_text(encoding="utf-8")


def test_mcmc_report_has_one_rank_plot_per_parameter(report):
    section = _section(report, "rank-plots")
    assert section.count("data:image/png;base64,") == 2
    for label in ("m [p.u.·s²/rad]", "d [p.u.·s/rad]"):
        assert f"<figcaption>Rank plot of {html.escape(label)}:" in section
    assert report.index("<h2>Trace plots</h2>") < report.index('<h2 id="rank-plots">')


@pytest.mark.parametrize("engine", ["eki", "svi"])
def test_ensemble_and_svi_reports_have_no_rank_plots(tmp_path, engine):
    idata = _idata()
    idata.posterior.attrs["engine"] = engine
    text = _write_idata(tmp_path, idata)
    assert "Rank plot" not in text
    assert '<h2 id="prior-posterior">' in text


def test_prior_posterior_shows_each_parameter_with_the_table_shrinkage(report):
    learned = report[report.index("What the data taught") : report.index("Posterior correlations")]
    section = _section(report, "prior-posterior")
    assert section.count("data:image/png;base64,") == 2
    for name, label in (("m", "m [p.u.·s²/rad]"), ("d", "d [p.u.·s/rad]")):
        shrink = re.search(rf"<tr><td>{name}</td>(?:<td>[^<]*</td>){{2}}<td>([^<]*)</td></tr>", learned)
        assert shrink and shrink.group(1).startswith("0.9"), learned
        caption = f"of {html.escape(label)}; shrinkage {shrink.group(1)}; truth dashed.</figcaption>"
        assert caption in section, section[-800:]


def test_prior_posterior_without_prior_draws_says_so(tmp_path):
    full = _idata()
    idata = az.InferenceData(**{g: full[g] for g in full.groups() if g != "prior"})
    section = _section(_write_idata(tmp_path, idata), "prior-posterior")
    assert "data:image/png" not in section
    assert "m: no prior draws in the run" in section and "d: no prior draws in the run" in section


@pytest.mark.parametrize(
    ("prior", "scale"), [(np.exp(np.linspace(-7.0, 2.0, 500)), "log"), (np.linspace(0.1, 1.0, 500), "linear")]
)
def test_prior_posterior_figure_uses_log_x_for_priors_over_decades(prior, scale):
    post = np.random.default_rng(3).normal(0.5, 0.01, 400)
    fig = _prior_posterior_figure(prior, post, truth=0.5)
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == scale
        assert any(line.get_linestyle() == "--" for line in ax.lines)
    finally:
        plt.close(fig)
