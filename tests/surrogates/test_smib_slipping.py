"""Pole slipping: the small corner of the trained box where no smooth surrogate can follow."""

import math

import numpy as np

from surrogates.power import smib, smib_reference
from surrogates.power.smib_pinn import SmibProblem

T = np.linspace(0.0, 20.0, 401)


def test_slipping_corner_is_detected_and_a_damped_swing_is_not():
    # m = 0.84, d = 0.063, P = 0.149 with a forward kick passes π − arcsin(P/B) and keeps turning.
    slipping = smib_reference.solve(T, 0.8428, 0.0631, 0.149, 0.2, -0.114, 0.2936)["Angle [rad]"]
    assert slipping.max() > 2 * math.pi
    assert smib.slips(slipping, 0.149, 0.2)
    swing = smib_reference.solve(T, 0.4, 0.15, 0.1, 0.2, 0.1, 0.1)["Angle [rad]"]
    assert swing.max() < math.pi - math.asin(0.5) and not smib.slips(swing, 0.1, 0.2)


def test_training_data_leave_out_slipping_and_near_saddle_trajectories(monkeypatch):
    import torch

    from surrogates.power import smib_pinn

    # The slipping corner above, a swing that stays 0.3 rad short of the saddle, and the demo swing
    # (t column is ignored).
    near = [0.0, 0.8428, 0.0631, 0.149, -0.114, 0.0]
    rows = torch.tensor([[0.0, 0.8428, 0.0631, 0.149, -0.114, 0.2936], near, [0.0, 0.4, 0.15, 0.1, 0.1, 0.1]])
    margin = smib.saddle_margin(
        smib_reference.solve(T, *near[1:4], 0.2, *near[4:])["Angle [rad]"], 0.149, 0.2
    )
    assert 0.0 < margin < smib_pinn.DATA_MIN_SADDLE_MARGIN_RAD
    monkeypatch.setattr(smib_pinn, "_uniform_box", lambda n, gen: rows[:n])
    problem = SmibProblem(n_trajectories=3, seed=0)
    assert problem.n_left_out == 2
    assert len(problem.data_x) == problem.times_per_trajectory
    np.testing.assert_allclose(problem.data_x[:, 1].numpy(), 0.4)  # only the swing is kept
