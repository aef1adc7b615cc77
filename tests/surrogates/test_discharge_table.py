"""``battery.p2d:tabulated``: its table against the network it tabulates (at points it was not
built or checked on, cut-off times by SciPy's root finder), against PyBaMM's DFN, its gradients,
its tangent past the cut-off, and the network where a table misses its bar."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import brentq

from surrogates.battery import chen2020, discharge_table, p2d_reference
from surrogates.battery.spm_models import P2dTabulated

C_RATE = 1.0
# fresh points, log10 of both scales: spread over the box, three in the corner where the
# positive particles' saturation takes over the cut-off (the table's halved panels)
FRESH = [
    (-0.9, 0.7),
    (-0.6, -0.8),
    (-0.42, 0.1),
    (-0.385, -0.5),
    (-0.36, 0.9),
    (0.1, 0.3),
    (0.6, -0.95),
    (0.97, 0.5),
]
# at 2C the corner runs along the exchange current too (panels halved in it), and the slowest
# cells' curves end in 490 s
FRESH_2C = [(-0.98, 0.95), (-0.3, -0.6), (-0.19, 0.05), (-0.16, 0.7), (0.4, -0.3)]


@pytest.fixture(scope="module")
def model():
    return P2dTabulated()


@pytest.fixture(scope="module")
def table(model):
    return model.table(C_RATE)


def _network(model, c_rate: float):
    """The network itself at ``c_rate``, ``network(t, pd, j0)``: one program per shape of ``t``."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def voltage(t, pd, j0):
        return model._predict(jnp, model._weights, model._n_layers, t, pd, j0, c_rate)["Voltage [V]"]

    return lambda t, pd, j0: np.asarray(voltage(t, pd, j0))


@pytest.fixture(scope="module")
def network(model):
    return _network(model, C_RATE)


def _network_cutoff(network, pd, j0, c_rate: float = C_RATE) -> float:
    """The network's first crossing of the cut-off: a grid of 2,001 times, then brentq to 1e-9 s."""
    grid = np.linspace(0.0, 1.5 * 3600.0 / c_rate, 2001)
    below = np.flatnonzero(network(grid, pd, j0) <= chen2020.CUTOFF_V)[0]

    def crossing(t):
        return float(network(np.array([t]), pd, j0)[0]) - chen2020.CUTOFF_V

    return brentq(crossing, grid[below - 1], grid[below], xtol=1e-9)


def _tiles_the_box(table) -> bool:
    """The panels lie in the box, and their areas add up to its: they tile it."""
    lo, hi = table.panels[:, 0::2], table.panels[:, 1::2]
    box = np.array([discharge_table.LOG_PD, discharge_table.LOG_J0])
    inside = (lo >= box[:, 0] - 1e-12).all() and (hi <= box[:, 1] + 1e-12).all()
    return inside and np.isclose(np.prod(hi - lo, axis=1).sum(), np.prod(np.diff(box, axis=1)))


def test_every_panel_met_its_check_and_the_corner_was_split(table):
    assert table.usable
    assert (table.check_max_v <= discharge_table.TOLERANCE_V).all()
    widths = table.panels[:, 1] - table.panels[:, 0]
    assert widths.min() < discharge_table.PANEL_DECADES / 2  # the corner's panels were halved
    assert _tiles_the_box(table)


def _assert_matches_the_network(network, table, pd, j0, c_rate=C_RATE):
    t_cut = _network_cutoff(network, pd, j0, c_rate)
    tabled_cut = np.exp(discharge_table._log_cutoff(np, table, pd, j0)[0])
    assert abs(tabled_cut / t_cut - 1.0) < 2e-5, (tabled_cut, t_cut)
    # 2,000 times up to the cut-off, and 60 more over its last 0.5 % (the cliff)
    cliff = t_cut * (1.0 - np.geomspace(5e-3, 1e-6, 60))
    t = np.concatenate([np.linspace(0.0, t_cut, 2000, endpoint=False), cliff])
    gap = np.abs(discharge_table.voltage_in_table(np, table, t, pd, j0) - network(t, pd, j0))
    assert gap.max() < 1.5 * discharge_table.TOLERANCE_V, (gap.max(), t[gap.argmax()] / t_cut)


@pytest.mark.parametrize(("log_pd", "log_j0"), FRESH)
def test_fresh_points_match_the_network_to_its_cutoff(network, table, log_pd, log_j0):
    _assert_matches_the_network(network, table, 10.0**log_pd, 10.0**log_j0)


def test_at_2c_panels_halved_in_the_exchange_current_meet_the_bar(model):
    # At 2C the corner runs along the exchange current: halved only in the diffusivity, panels
    # 1/256 of a decade wide missed by up to 1 mV, and the table ran the network (a 130 s NUTS)
    table, network = model.table(2.0), _network(model, 2.0)
    assert table.usable and _tiles_the_box(table)
    assert (table.panels[:, 3] - table.panels[:, 2]).min() < np.diff(discharge_table.LOG_J0)[0]
    for log_pd, log_j0 in FRESH_2C:
        _assert_matches_the_network(network, table, 10.0**log_pd, 10.0**log_j0, 2.0)


def test_model_meets_the_accuracy_bar_against_pybamm_dfn(model):
    # Two held-out points against the DFN itself, through the model's JAX path along a record.
    import jax.numpy as jnp

    for log_pd, log_j0 in [(-0.2, 0.6), (0.45, -0.7)]:
        values = {
            "positive_diffusivity_scale": 10.0**log_pd,
            "negative_j0_scale": 10.0**log_j0,
            "c_rate": C_RATE,
        }
        times, volts, _ = p2d_reference.window(**values)
        tabled = np.asarray(model.jax_forward(jnp.asarray(times), **values)["Voltage [V]"])
        assert np.sqrt(np.mean((tabled - volts) ** 2)) < 5e-3 and np.abs(tabled - volts).max() < 2e-2


def test_pieces_equal_the_interpolant_through_the_time_nodes(table):
    # in time a curve is evaluated as polynomial pieces; against SciPy's barycentric
    # interpolant through the same nodal values, less the slope at the cut-off it takes out
    from scipy.interpolate import BarycentricInterpolator

    x = np.linspace(-1.0, 1.0, 4001)
    for pd, j0 in [(2.0, 0.5), (0.15, 3.0), (0.41, 1.0), (9.0, 0.11)]:
        log_cut, index, ta, tb = discharge_table._log_cutoff(np, table, pd, j0)
        curve = BarycentricInterpolator(
            discharge_table.lobatto(discharge_table.TIME_NODES),
            np.einsum("a,b,abk->k", ta, tb, table.volts[index]),
        )
        expected = curve(x) - curve.derivative(1.0) * (x - 1.0) * ((1.0 + x) / 2.0) ** 2
        t = np.exp(log_cut) * discharge_table.tau_of_u((x + 1.0) / 2.0)
        np.testing.assert_allclose(
            discharge_table.voltage_in_table(np, table, t, pd, j0), expected, rtol=0, atol=2e-6
        )


def test_gradients_are_finite_and_match_central_differences(table):
    import jax
    import jax.numpy as jnp

    t = np.linspace(0.0, 3600.0, 361)  # from t = 0 (on a node) to past most cut-offs

    def total(pd, j0):
        return jnp.sum(discharge_table.voltage_in_table(jnp, table, t, pd, j0) ** 2)

    grad = jax.jit(jax.grad(total, argnums=(0, 1)))
    for pd, j0 in [(2.0, 0.5), (0.15, 3.0), (0.41, 1.0)]:
        g = np.array(grad(pd, j0))
        assert np.isfinite(g).all()
        # the time pieces meet to within 1 µV, not exactly: a step that carries a sample across
        # a piece's end jumps by up to that, which a step of 1e-6 turned into 1.2e-5 of the
        # gradient at (0.41, 1.0); 1e-5 keeps it under 5e-6 (and the quotients' own error ~1e-10)
        h = 1e-5
        fd = [
            (total(pd * (1 + h), j0) - total(pd * (1 - h), j0)) / (2 * h * pd),
            (total(pd, j0 * (1 + h)) - total(pd, j0 * (1 - h))) / (2 * h * j0),
        ]
        # the times past the cut-off make one derivative hundreds of times the other; the
        # difference quotients' error is relative to the larger
        np.testing.assert_allclose(g, np.array(fd), rtol=1e-5, atol=1e-6 * np.abs(g).max())


def test_likelihood_gradient_matches_the_networks(model, table):
    # NUTS follows the table's gradient and accepts by the table's own potential, so a gradient
    # error costs only efficiency; it must still point where the network's does: within 6 %
    # (3.9 % measured) at a point 9 sd from the record's truth in each scale.
    import jax
    import jax.numpy as jnp

    times, y, _ = p2d_reference.window(positive_diffusivity_scale=1.0, negative_j0_scale=1.0, c_rate=C_RATE)

    def loglik(voltage):
        return lambda pd, j0: -jnp.sum((voltage(pd, j0) - y) ** 2) / (2 * 0.005**2)

    tabled = loglik(lambda pd, j0: discharge_table.voltage_in_table(jnp, table, times, pd, j0))
    net = loglik(
        lambda pd, j0: model._predict(jnp, model._weights, model._n_layers, times, pd, j0, C_RATE)[
            "Voltage [V]"
        ]
    )
    g_table = np.array(jax.jit(jax.grad(tabled, argnums=(0, 1)))(1.12, 0.83))
    g_net = np.array(jax.jit(jax.grad(net, argnums=(0, 1)))(1.12, 0.83))
    np.testing.assert_allclose(g_table, g_net, rtol=0.06)


def test_past_the_cutoff_the_tangent(network, table):
    pd, j0 = 0.7, 2.0
    t_cut = np.exp(discharge_table._log_cutoff(np, table, pd, j0)[0])
    tau = np.array([1.0 - 2e-4, 1.0, 1.0 + 1e-4, 1.0 + 1e-3])
    v = discharge_table.voltage_in_table(np, table, tau * t_cut, pd, j0)
    assert abs(v[1] - chen2020.CUTOFF_V) < 1e-4
    assert v[2] < v[1] and v[3] < v[2]  # still falling, and linearly in τ
    np.testing.assert_allclose((v[3] - v[1]) / 1e-3, (v[2] - v[1]) / 1e-4, rtol=1e-9)
    # as steep as the network's own cliff just before the cut-off: the table's interpolant's end
    # slope, which the network's last 2e-4 of τ approach as a secant (−16.3 against −17.2 V per
    # unit τ, 5.7 % apart)
    edge = network(tau[:2] * t_cut, pd, j0)
    before = (edge[1] - edge[0]) / 2e-4
    np.testing.assert_allclose((v[3] - v[1]) / 1e-3, before, rtol=0.08)


def test_a_table_that_misses_its_bar_runs_the_network(model, table):
    import jax.numpy as jnp

    t = np.linspace(0.0, 3000.0, 301)
    values = {"positive_diffusivity_scale": 1.3, "negative_j0_scale": 0.7, "c_rate": C_RATE}
    network = model.numpy_forward(t, **values)["Voltage [V]"]
    tabled = np.asarray(model.jax_forward(jnp.asarray(t), **values)["Voltage [V]"])
    assert 0.0 < np.abs(tabled - network).max() < discharge_table.TOLERANCE_V
    missing = P2dTabulated()
    worse = dataclasses.replace(table, check_max_v=table.check_max_v + np.eye(len(table.check_max_v))[0])
    missing.table = lambda c_rate: worse
    with pytest.warns(UserWarning, match="running the network instead"):
        fallback = np.asarray(missing.jax_forward(jnp.asarray(t), **values)["Voltage [V]"])
    np.testing.assert_allclose(fallback, network, rtol=0, atol=1e-9)


def test_the_table_is_cached_on_disk_and_rebuilt_when_unreadable(table, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = []

    def build(voltage, c_rate):  # stands in for the 12 s build: this table, counted
        built.append(c_rate)
        return table

    monkeypatch.setattr(discharge_table, "build", build)
    first = P2dTabulated().table(C_RATE)
    path = P2dTabulated()._table_path(C_RATE)
    assert built == [C_RATE] and path.exists()
    again = P2dTabulated().table(C_RATE)  # a new process, as it were: read back, not built
    assert built == [C_RATE]
    for field in dataclasses.fields(table):
        np.testing.assert_array_equal(getattr(again, field.name), getattr(table, field.name))
        np.testing.assert_array_equal(getattr(first, field.name), getattr(table, field.name))
    assert P2dTabulated()._table_path(1.5) != path  # another C-rate, another table
    path.write_bytes(b"not a table")
    P2dTabulated().table(C_RATE)
    assert built == [C_RATE, C_RATE]  # unreadable: built again, and cached again
    discharge_table.load(path)
