"""The diagnostics adapter: one verdict from R-hat, ESS, divergences and E-BFMI; the summary table."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from inference.diagnostics import bound_flags, summary, verdict

CHAINS, DRAWS = 4, 1000
COLUMNS = ["mean", "sd", "hdi_5%", "hdi_95%", "mcse_mean", "r_hat", "ess_bulk", "ess_tail"]


def _idata(shift_chain: float = 0.0, divergent: int = 0, energy=None, a=None) -> az.InferenceData:
    """iid N(0, 1) draws for ``a`` and N(2, 0.5²) for ``b``; options spoil one thing at a time."""
    rng = np.random.default_rng(42)
    if a is None:
        a = rng.standard_normal((CHAINS, DRAWS))
    b = rng.normal(2.0, 0.5, (CHAINS, DRAWS))
    a = a.copy()
    a[0] += shift_chain
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging.flat[rng.choice(CHAINS * DRAWS, divergent, replace=False)] = True
    if energy is None:
        energy = rng.standard_normal((CHAINS, DRAWS))  # iid energy: E-BFMI ≈ 2
    return az.from_dict(posterior={"a": a, "b": b}, sample_stats={"diverging": diverging, "energy": energy})


def _verdict(idata):
    return verdict(idata, summary(idata, ["a", "b"]))


def test_well_mixed_chains_converge():
    result = _verdict(_idata())
    assert result["converged"] is True
    assert result["warnings"] == []
    # iid chains: rank R-hat within ~1e-3 of 1, ESS near 4000; the thresholds are 1.01 and 400.
    assert result["max_rhat"] < 1.005
    assert result["min_ess_bulk"] > 2000 and result["min_ess_tail"] > 2000
    assert result["divergences"] == 0
    assert result["min_bfmi"] > 1.0


def test_shifted_chain_is_not_converged_and_blames_rhat():
    result = _verdict(_idata(shift_chain=3.0))
    assert result["converged"] is False
    # One chain 3 sd off: R-hat ≈ 1.5, far beyond 1.01, not a borderline case.
    assert result["max_rhat"] > 1.2
    assert any("R-hat" in w for w in result["warnings"])


def test_divergences_are_counted_and_spoil_the_verdict():
    result = _verdict(_idata(divergent=7))
    assert result["divergences"] == 7
    assert result["converged"] is False
    assert [w for w in result["warnings"] if "7 divergent" in w]
    assert not any("R-hat" in w for w in result["warnings"])


def test_sticky_chains_fail_on_ess():
    # AR(1) with φ = 0.99: ESS ≈ N·(1−φ)/(1+φ) ≈ 20 of 4000 draws, far below 400.
    rng = np.random.default_rng(5)
    a = np.zeros((CHAINS, DRAWS))
    a[:, 0] = rng.standard_normal(CHAINS)
    for i in range(1, DRAWS):
        a[:, i] = 0.99 * a[:, i - 1] + np.sqrt(1 - 0.99**2) * rng.standard_normal(CHAINS)
    result = _verdict(_idata(a=a))
    assert result["converged"] is False
    assert result["min_ess_bulk"] < 400
    assert any(w.startswith("ESS") for w in result["warnings"])


def test_random_walk_energy_fails_on_bfmi():
    # Energy as a random walk: Σ(ΔE)² ≈ N but Σ(E − Ē)² ≈ N²/6, so E-BFMI ≈ 6/N ≈ 0.006 ≪ 0.3.
    energy = np.cumsum(np.random.default_rng(6).standard_normal((CHAINS, DRAWS)), axis=1)
    result = _verdict(_idata(energy=energy))
    assert result["converged"] is False
    assert result["min_bfmi"] < 0.3
    assert any("E-BFMI" in w for w in result["warnings"])


def test_summary_columns_and_mean():
    idata = _idata()
    table = summary(idata, ["a", "b"])
    assert list(table.columns) == COLUMNS
    assert list(table.index) == ["a", "b"]
    assert table.index.name == "parameter"
    for name in ("a", "b"):
        draws = idata.posterior[name].values
        # Unrounded (round_to="none"): the mean is numpy's up to summation order, ~1e-16.
        assert table.loc[name, "mean"] == pytest.approx(draws.mean(), abs=1e-12)
        assert table.loc[name, "sd"] == pytest.approx(draws.std(ddof=1), rel=1e-6)
        # The 90 % HDI holds 90 % of the draws (to one draw in 4000) and is no wider than the
        # central 5–95 % interval, being the shortest such interval.
        lo, hi = table.loc[name, "hdi_5%"], table.loc[name, "hdi_95%"]
        inside = np.mean((draws >= lo) & (draws <= hi))
        assert inside == pytest.approx(0.9, abs=1e-3)
        q5, q95 = np.quantile(draws, [0.05, 0.95])
        assert hi - lo <= (q95 - q5) * (1 + 1e-9)


def test_summary_with_truth_adds_a_column():
    table = summary(_idata(), ["a", "b"], truth={"a": 0.1})
    assert list(table.columns) == [*COLUMNS, "truth"]
    assert table.loc["a", "truth"] == 0.1
    assert np.isnan(table.loc["b", "truth"])


def test_bound_flags_name_a_posterior_piled_at_a_bound():
    rng = np.random.default_rng(1)
    piled = np.minimum(rng.normal(0.98, 0.03, (2, 500)), 1.0)  # half the mass at the upper bound 1
    centred = rng.normal(0.5, 0.05, (2, 500))
    idata = az.from_dict(posterior={"a": piled, "b": centred})
    flags = bound_flags(idata, {"a": (0.0, 1.0), "b": (0.0, 1.0), "c": (0.0, np.inf)})
    assert len(flags) == 1 and flags[0].startswith("a:") and "upper bound 1" in flags[0]


def test_bound_flags_measure_a_log_uniform_prior_in_log_scale():
    """0.159 ± 0.003 on LogUniform(0.1, 10) sits 10 % of the log width above the bound, not at it
    (within 1 % of the linear width 9.9: a false alarm); 0.1005 ± 0.0003 is within 1 % either way."""
    rng = np.random.default_rng(2)
    idata = az.from_dict(
        posterior={"j": rng.normal(0.159, 0.003, (2, 500)), "k": rng.normal(0.1005, 3e-4, (2, 500))}
    )
    bounds = {"j": (0.1, 10.0), "k": (0.1, 10.0)}
    assert [f[:2] for f in bound_flags(idata, bounds)] == ["j:", "k:"]
    flags = bound_flags(idata, bounds, log_scale={"j", "k"})
    assert len(flags) == 1 and flags[0].startswith("k:") and "(in log scale)" in flags[0]
