"""Power networks for ``power.multimachine``: the file, its checks, Kron reduction, steady states.

Every bus i of a lossless network at 1 pu voltage magnitudes obeys one of

    machine (m_i > 0):             m_i·δ_i'' + d_i·δ_i' + Σ_j B_ij·sin(δ_i − δ_j) = P_i
    inverter or load (m_i = 0):            d_i·δ_i' + Σ_j B_ij·sin(δ_i − δ_j) = P_i

and a bus with neither inertia nor damping (a substation, a junction) carries no power and no
dynamics: it is eliminated by Kron reduction when the file is read, so the equations above hold
between the remaining buses with the reduced susceptances.

A network file (TOML or JSON) holds::

    name = "four_bus"
    buses = ["G1", "G2", "L3", "L4"]
    inertia = [0.3, 0.2, 0.0, 0.0]          # m_i [s²/rad]; 0: first-order bus
    damping = [0.15, 0.3, 0.25, 0.2]        # d_i [s/rad]; 0 with m_i = 0: passive, reduced away
    power_before = [0.0, 0.0, 0.0, 0.0]     # P_i before the disturbance [pu]; default zeros
    power_after = [0.1, 0.2, -0.2, -0.1]    # P_i from t = 0 [pu]
    susceptance = [[0, 0, 0.5, 1.2], ...]   # B_ij [pu], symmetric; the diagonal is not used

The state at t = 0 is the steady state of ``power_before`` (computed, not typed): all
frequencies zero, angles solving Σ_j B_ij·sin(δ_i − δ_j) = P_i with δ of the first bus 0. It
exists only when the powers sum to zero (generation equals load in a lossless network) and the
network can carry them with every line below 90° (the stable operating point).

Reference: F. Dörfler, F. Bullo (2013), Kron reduction of graphs with applications to
electrical networks, IEEE Trans. Circuits Syst. I 60(1).
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Network", "NetworkError", "kron_reduce", "load_network", "steady_state"]

_KEYS = ("name", "buses", "inertia", "damping", "power_before", "power_after", "susceptance")
_SYMMETRY_RTOL = 1e-9
_POWER_BALANCE_ATOL = 1e-9  # pu
_STEADY_TOL = 1e-11  # pu: the mismatch a steady state must reach


class NetworkError(ValueError):
    """A network file or network that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Network:
    """Buses after Kron reduction; ``b`` (n, n) symmetric with a zero diagonal."""

    name: str
    buses: tuple[str, ...]
    m: np.ndarray  # nominal inertia per bus, 0 for first-order buses
    d: np.ndarray  # nominal damping per bus, > 0
    p_before: np.ndarray
    p_after: np.ndarray
    b: np.ndarray
    reduced: tuple[str, ...] = ()  # the passive buses Kron-reduced away

    @property
    def machines(self) -> np.ndarray:
        """Which buses carry inertia (second order)."""
        return self.m > 0


def kron_reduce(b: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The susceptances between the ``keep`` buses once the others are eliminated.

    With the nodal matrix Y = L (the Laplacian of the susceptances: Y_ii = Σ_j B_ij,
    Y_ij = −B_ij), injections only at kept buses give Y_red = Y_kk − Y_ke·Y_ee⁻¹·Y_ek (the Schur
    complement), again a Laplacian; its off-diagonal entries, negated, are the reduced B.
    """
    b = np.asarray(b, float)
    keep = np.asarray(keep, bool)
    y = np.diag(b.sum(axis=1)) - b
    k, e = keep, ~keep
    y_red = y[np.ix_(k, k)] - y[np.ix_(k, e)] @ np.linalg.solve(y[np.ix_(e, e)], y[np.ix_(e, k)])
    reduced = -y_red
    np.fill_diagonal(reduced, 0.0)
    return 0.5 * (reduced + reduced.T)  # symmetric to round-off, exactly


def steady_state(b: np.ndarray, p: np.ndarray, where: str = "network") -> np.ndarray:
    """Angles δ (δ_0 = 0) with Σ_j B_ij·sin(δ_i − δ_j) = P_i and every line below 90°.

    Newton's method from the DC power flow (sin x ≈ x): the Jacobian is the Laplacian of the
    weights B_ij·cos(δ_i − δ_j), invertible with δ_0 fixed while every line is below 90°.
    Raises NetworkError when the powers do not balance or no such operating point exists."""
    b, p = np.asarray(b, float), np.asarray(p, float)
    if abs(p.sum()) > _POWER_BALANCE_ATOL:
        raise NetworkError(
            f"{where}: powers sum to {p.sum():.6g} pu, expected 0 (a lossless network has a steady "
            "state only when generation equals load)"
        )
    laplacian = np.diag(b.sum(axis=1)) - b
    delta = np.zeros(len(p))
    delta[1:] = np.linalg.solve(laplacian[1:, 1:], p[1:])
    mismatch = np.full(len(p), np.inf)
    for _ in range(50):
        diff = delta[:, None] - delta[None, :]
        mismatch = p - (b * np.sin(diff)).sum(axis=1)
        if np.max(np.abs(mismatch)) < _STEADY_TOL:
            break
        weights = b * np.cos(diff)
        jacobian = np.diag(weights.sum(axis=1)) - weights
        try:
            delta[1:] += np.linalg.solve(jacobian[1:, 1:], mismatch[1:])
        except np.linalg.LinAlgError:  # a line at exactly 90°: no stable point here
            break
    lines = b > 0
    widest = float(np.max(np.abs(delta[:, None] - delta[None, :])[lines])) if lines.any() else 0.0
    if not (np.max(np.abs(mismatch)) < _STEADY_TOL and widest < math.pi / 2):
        raise NetworkError(
            f"{where}: powers {np.round(p, 6).tolist()} admit no stable steady state (Newton's "
            f"mismatch {np.max(np.abs(mismatch)):.2g} pu, widest line angle {math.degrees(widest):.0f}°; "
            "expected every line below 90°): lower the powers or strengthen the lines"
        )
    return delta


def load_network(path: str | Path) -> Network:
    """Read, check and reduce a network file; raises NetworkError with one line naming the key."""
    path = Path(path)
    raw = _read(path)
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise NetworkError(f"{path}: {unknown[0]}: unknown key, expected one of {', '.join(_KEYS)}")
    for key in ("buses", "inertia", "damping", "power_after", "susceptance"):
        if key not in raw:
            raise NetworkError(f"{path}: {key}: missing, expected it (see surrogates/power/network.py)")
    buses = raw["buses"]
    if not (isinstance(buses, list) and len(buses) >= 2 and all(isinstance(x, str) for x in buses)):
        raise NetworkError(f"{path}: buses: found {buses!r}, expected a list of at least 2 names")
    if len(set(buses)) != len(buses):
        raise NetworkError(f"{path}: buses: found a repeated name in {buses!r}, expected distinct names")
    n = len(buses)
    vectors = {
        key: _vector(path, key, raw.get(key, [0.0] * n), n)
        for key in ("inertia", "damping", "power_before", "power_after")
    }
    b = _susceptance(path, raw["susceptance"], buses)
    m, d = vectors["inertia"], vectors["damping"]
    for key, values in (("inertia", m), ("damping", d)):
        if np.any(values < 0):
            raise NetworkError(f"{path}: {key}: found {values.tolist()}, expected values ≥ 0")
    passive = (m == 0) & (d == 0)
    for key in ("power_before", "power_after"):
        injecting = passive & (vectors[key] != 0)
        if injecting.any():
            bus = buses[int(np.argmax(injecting))]
            raise NetworkError(
                f"{path}: {key}: passive bus {bus!r} (no inertia, no damping) injects "
                f"{vectors[key][np.argmax(injecting)]:g} pu, expected 0"
            )
    if passive.all() or (~passive).sum() < 2:
        raise NetworkError(f"{path}: inertia, damping: fewer than 2 buses with dynamics, expected ≥ 2")
    keep = ~passive
    reduced_b = kron_reduce(b, keep) if passive.any() else b
    network = Network(
        name=str(raw.get("name", path.stem)),
        buses=tuple(x for x, k in zip(buses, keep, strict=True) if k),
        m=m[keep],
        d=d[keep],
        p_before=vectors["power_before"][keep],
        p_after=vectors["power_after"][keep],
        b=reduced_b,
        reduced=tuple(x for x, k in zip(buses, keep, strict=True) if not k),
    )
    steady_state(network.b, network.p_before, f"{path}: power_before")
    steady_state(network.b, network.p_after, f"{path}: power_after")
    return network


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise NetworkError(f"{path}: cannot read the network file ({exc.strerror})") from None
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise NetworkError(f"{path}: malformed {kind}: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise NetworkError(f"{path}: found {type(raw).__name__}, expected a table of keys")
    return raw


def _vector(path: Path, key: str, value, n: int) -> np.ndarray:
    ok = isinstance(value, list) and len(value) == n and all(_is_number(v) for v in value)
    if not ok:
        raise NetworkError(f"{path}: {key}: found {value!r}, expected {n} numbers (one per bus)")
    return np.asarray(value, float)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _susceptance(path: Path, value, buses: list[str]) -> np.ndarray:
    n = len(buses)
    ok = isinstance(value, list) and len(value) == n
    ok = ok and all(isinstance(row, list) and len(row) == n and all(map(_is_number, row)) for row in value)
    if not ok:
        raise NetworkError(f"{path}: susceptance: expected a {n}×{n} table of numbers, one row per bus")
    b = np.asarray(value, float)
    np.fill_diagonal(b, 0.0)
    if np.any(b < 0):
        i, j = np.argwhere(b < 0)[0]
        raise NetworkError(
            f"{path}: susceptance: B[{buses[i]}][{buses[j]}] = {b[i, j]:g}, expected ≥ 0 (a line's susceptance)"
        )
    asymmetric = np.abs(b - b.T) > _SYMMETRY_RTOL * max(np.max(np.abs(b)), 1e-300)
    if asymmetric.any():
        i, j = np.argwhere(asymmetric)[0]
        raise NetworkError(
            f"{path}: susceptance: B[{buses[i]}][{buses[j]}] = {b[i, j]:g} but "
            f"B[{buses[j]}][{buses[i]}] = {b[j, i]:g}, expected a symmetric table"
        )
    isolated = ~(b > 0).any(axis=1)
    if isolated.any():
        bus = buses[int(np.argmax(isolated))]
        raise NetworkError(f"{path}: susceptance: bus {bus!r} has no line, expected every bus connected")
    if not _connected(b):
        raise NetworkError(f"{path}: susceptance: the network falls apart in islands, expected one network")
    return b


def _connected(b: np.ndarray) -> bool:
    seen, frontier = {0}, [0]
    while frontier:
        i = frontier.pop()
        for j in np.flatnonzero(b[i] > 0):
            if j not in seen:
                seen.add(int(j))
                frontier.append(int(j))
    return len(seen) == len(b)
