"""Flags for studies at the edge of the surrogate's trained domain, and the SMIB near its saddle."""

import numpy as np
import pytest

from bayespinn.domain_flags import condition_flags
from surrogates.pinn.card import load_weights
from surrogates.power import smib, smib_reference
from surrogates.power.smib_models import SmibSurrogate
from surrogates.power.smib_pinn import WEIGHTS, error_by_saddle_margin

DOMAIN = smib.domain_for(0.2)
TIMES_S = np.linspace(0.0, 20.0, 201)


def test_conditions_at_a_domain_face_are_flagged_and_inside_ones_are_not():
    flags = condition_flags({"P": 0.149, "delta0": 0.1, "omega0": -0.3}, DOMAIN, "power.smib")
    assert len(flags) == 2
    assert flags[0].startswith("P = 0.149 lies within 2 % of the upper bound 0.15")
    assert flags[1].startswith("omega0 = -0.3 lies within 2 % of the lower bound -0.3")
    assert condition_flags({"P": 0.1, "delta0": 0.1, "omega0": 0.1}, DOMAIN, "power.smib") == []


def test_saddle_margin_matches_its_definition():
    # A trajectory that swings up to 1.0 rad with P/B = 0.5: the saddle is at π − π/6.
    angle = np.array([0.2, 1.0, 0.5])
    assert smib.saddle_margin(angle, 0.1, 0.2) == pytest.approx(np.pi - np.pi / 6 - 1.0, abs=1e-15)


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        ({"m": 0.4, "d": 0.15, "P": 0.1, "delta0": 0.1, "omega0": 0.1}, False),  # the demo: far from it
        ({"m": 0.9, "d": 0.06, "P": 0.145, "delta0": 0.0, "omega0": 0.27}, True),  # swings close to it
    ],
)
def test_smib_trust_flag_follows_the_reference_saddle_margin(values, flagged):
    conditions = {"B": 0.2, "P": values["P"], "delta0": values["delta0"], "omega0": values["omega0"]}
    ref = smib_reference.solve(TIMES_S, B=0.2, **{k: values[k] for k in ("m", "d", "P", "delta0", "omega0")})
    margin = smib.saddle_margin(ref[smib.OBSERVABLES[0]], values["P"], 0.2)
    assert (margin < 0.9) == flagged  # the reference decides which case this is
    draws = {"m": np.full(5, values["m"]), "d": np.full(5, values["d"])}
    flags = SmibSurrogate().trust_flags(TIMES_S, conditions, draws)
    assert bool(flags) == flagged
    if flagged:
        assert "unstable equilibrium" in flags[0] and "--check-reference" in flags[0]


def test_error_by_saddle_margin_reproduces_the_card():
    # A fresh 2,048-draw sample against the card's 20,480: far from the saddle the median RMSE agrees
    # within 15 %, and within 0.9 rad of it the surrogate is measurably worse, as the card says.
    weights, card = load_weights(WEIGHTS)
    fresh = error_by_saddle_margin(weights, card["architecture"]["n_layers"], n=2048, seed=11)
    shipped = card["validation"]["by_saddle_margin"]["bins"]
    assert fresh["bins"][-1]["median"] == pytest.approx(shipped[-1]["median"], rel=0.15)
    near = [b for b in shipped if b["margin_rad"][1] is not None and b["margin_rad"][1] <= 0.9]
    assert all(b["p95"] > 2 * shipped[-1]["p95"] for b in near)
    close = [b for b in fresh["bins"][:3] if b["trajectories"] >= 5]
    assert close and all(b["median"] > 2 * fresh["bins"][-1]["median"] for b in close)
