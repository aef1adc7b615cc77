"""The shipped ``power.smib`` weights against the foundation issue's accuracy bar, re-measured here
on a held-out design the card did not use, and the exact B rescaling of the surrogate."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates.pinn.card import load_weights
from surrogates.power import smib
from surrogates.power.smib_models import SmibReference, SmibSurrogate
from surrogates.power.smib_pinn import WEIGHTS, validate_smib

ANGLE, FREQ = smib.OBSERVABLES
# The foundation issue's bar, per-trajectory RMSE over a held-out design, in the observable's
# unit (rad for the angle, rad/s for the frequency deviation): the same numbers for both.
BAR = {"median": 2e-3, "p95": 5e-3, "max": 1e-2}
TIME_S = np.linspace(0.0, 20.0, 201)


@pytest.fixture(scope="module")
def shipped():
    return load_weights(WEIGHTS)


@pytest.fixture(scope="module")
def remeasured(shipped):
    weights, card = shipped
    # Seed 777, not the card's 12345: the bar must hold on points nobody looked at while training.
    return validate_smib(weights, card["architecture"]["n_layers"], n_points=64, seed=777)


def _misses(rmse: dict) -> list[str]:
    return [
        f"{obs} {stat} {rmse[obs][stat]:.2e} > {limit:.0e}"
        for obs in (ANGLE, FREQ)
        for stat, limit in BAR.items()
        if not rmse[obs][stat] <= limit
    ]


def test_shipped_weights_meet_the_bar_on_a_fresh_design(remeasured):
    assert "seed 777" in remeasured["design"]
    assert not _misses(remeasured["rmse"]), "; ".join(_misses(remeasured["rmse"]))


def test_card_validation_is_reproduced_by_the_shipped_weights(shipped):
    # The card's own design (128 Sobol points, seed 12345) re-run here gives the card's numbers:
    # the weights are the ones the card measured, and the reference solver has not drifted.
    weights, card = shipped
    again = validate_smib(weights, card["architecture"]["n_layers"], n_points=128, seed=12345)
    for obs in (ANGLE, FREQ):
        for stat, value in card["validation"]["rmse"][obs].items():
            assert again["rmse"][obs][stat] == pytest.approx(value, rel=1e-9), (obs, stat)


def test_card_meets_the_bar(shipped):
    # The card's own design (128 Sobol points): every statistic of both observables within the bar.
    rmse = shipped[1]["validation"]["rmse"]
    assert not _misses(rmse), "; ".join(_misses(rmse))


def test_card_describes_the_shipped_network(shipped):
    weights, card = shipped
    arch = card["architecture"]
    assert card["name"] == "power.smib"
    assert card["weights_file"] == WEIGHTS.name  # the card belongs to this file, not a renamed one
    assert len(weights) == 2 * arch["n_layers"]
    assert [weights[f"layers.{i}.weight"].shape[0] for i in range(arch["n_layers"] - 1)] == arch["hidden"]
    assert all(v.dtype == np.float64 for v in weights.values())
    assert card["domain"] == {k: list(v) for k, v in smib.TRAINED_BOX.items()}
    assert card["B_trained"] == smib.B_TRAIN


@pytest.fixture(scope="module")
def surrogate():
    return SmibSurrogate()


POINTS = [
    {"m": 0.3217, "d": 0.1234, "P": 0.1, "delta0": 0.1, "omega0": 0.1},
    {"m": 0.8, "d": 0.3, "P": 0.07, "delta0": -0.15, "omega0": 0.2},
    {"m": 0.15, "d": 0.08, "P": 0.13, "delta0": 0.25, "omega0": -0.25},
]


@pytest.mark.parametrize("point", POINTS)
def test_b_rescaling_of_the_surrogate_is_exact(surrogate, point):
    conditions = {"delta0": point["delta0"], "omega0": point["omega0"]}
    at_02 = surrogate.numpy_forward(TIME_S, m=point["m"], d=point["d"], P=point["P"], B=0.2, **conditions)
    at_04 = surrogate.numpy_forward(
        TIME_S, m=2 * point["m"], d=2 * point["d"], P=2 * point["P"], B=0.4, **conditions
    )
    # The network sees (s, ζ, p, δ0, w0), identical in both calls up to one rounding in B/m and
    # m·B (0.4 = 2·0.2 exactly in binary): 1e-12 absolute is round-off with margin.
    for name in (ANGLE, FREQ):
        np.testing.assert_allclose(at_04[name], at_02[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("point", POINTS)
def test_surrogate_at_another_b_tracks_the_reference(surrogate, point):
    values = {
        "m": 2 * point["m"],
        "d": 2 * point["d"],
        "P": 2 * point["P"],
        "B": 0.4,
        "delta0": point["delta0"],
        "omega0": point["omega0"],
    }
    pred = surrogate.numpy_forward(TIME_S, **values)
    ref = SmibReference().numpy_forward(TIME_S, **values)
    # The bar's max per-trajectory RMSE (1e-2) used here pointwise at interior points of the box.
    for name in (ANGLE, FREQ):
        np.testing.assert_allclose(pred[name], ref[name], rtol=0, atol=1e-2)


def test_batch_forward_equals_its_members(surrogate):
    values = {k: np.array([p[k] for p in POINTS]) for k in ("m", "d", "P", "delta0", "omega0")}
    batch = surrogate.numpy_forward_batch(TIME_S, {"B": 0.2}, values)
    for i, point in enumerate(POINTS):
        one = surrogate.numpy_forward(TIME_S, B=0.2, **point)
        for name in (ANGLE, FREQ):
            assert batch[name].shape == (len(POINTS), TIME_S.size)
            np.testing.assert_allclose(batch[name][i], one[name], rtol=0, atol=1e-14)


def test_shipped_residuals_are_the_card_validation(shipped):
    # The residual curves next to the weights are the ones the card's RMSE was computed from:
    # their per-curve RMSE reproduces the card's median, p95 and max.
    _, card = shipped
    held_out = SmibSurrogate().validation_residuals({"B": 0.2})
    for obs in (ANGLE, FREQ):
        curves = held_out["residuals"][obs]
        assert curves.shape == (128, held_out["grid"].size)
        per_curve = np.sqrt(np.mean(curves**2, axis=1))
        for stat, value in (("median", np.median(per_curve)), ("max", per_curve.max())):
            assert card["validation"]["rmse"][obs][stat] == pytest.approx(value, rel=1e-9)


def test_residual_inputs_follow_the_b_rescaling():
    at_02 = SmibSurrogate().validation_residuals({"B": 0.2})
    at_04 = SmibSurrogate().validation_residuals({"B": 0.4})
    for name in ("m", "d", "P"):
        np.testing.assert_allclose(at_04["inputs"][name], 2 * at_02["inputs"][name], rtol=1e-15)
    for name in ("delta0", "omega0"):
        np.testing.assert_array_equal(at_04["inputs"][name], at_02["inputs"][name])
    np.testing.assert_array_equal(at_04["residuals"][ANGLE], at_02["residuals"][ANGLE])
