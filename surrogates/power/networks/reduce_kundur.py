"""Write ``kundur_two_area.toml`` from ANDES's Kundur two-area case (classical machines).

    pip install andes==2.0.0 && python surrogates/power/networks/reduce_kundur.py

Exactly what is done (Kundur, *Power System Stability and Control*, example 12.6, as ANDES 2.0.0
ships it: ``kundur/kundur.raw`` with ``kundur/kundur_gencls.dyr``; 100 MVA base, 60 Hz):

1. ANDES solves the power flow (Newton–Raphson): bus voltages V_i, generator powers P_g + jQ_g.
2. Each GENCLS machine is an internal node behind its transient reactance x'_d (system base):
   E = V + j·x'_d·I with I = conj((P_g + jQ_g)/V); inertia m = M/ω_s with M ANDES's GENCLS.M,
   2H on the system base (234 and 222.3 pu·s here), and ω_s = 2π·60 rad/s.
3. The network is made lossless and voltage magnitudes are frozen at the power flow's (the
   structure-preserving classical model of Bergen and Hill): every line and transformer becomes
   B_ij = |V_i|·|V_j|/x_ij (parallel circuits add; r and line charging are dropped), and each
   internal node connects to its terminal with |E|·|V|/x'_d.
4. The two loads are first-order buses: constant power P_L with frequency damping d = D_L·P_L/ω_s,
   D_L = 1.5 (a load that changes 1.5 % per 1 % of frequency; an assumption: the case has none).
   The machines get d = D·(S_n/S_base)/ω_s with D = 2 pu (the case's GENCLS D is 0).
5. The lossless network cannot carry the power flow's losses (0.93 pu): every generator's power is
   scaled by the same factor so that generation equals load.
6. Every other bus (generator terminals, the tie-line buses) has no inertia, no damping and no
   injection: ``load_network`` Kron-reduces them when it reads the file, leaving four machines
   and two load buses.
7. The disturbance: 1 pu (100 MW) of load moves from area 1 (bus 3) to area 2 (bus 13), which
   raises the transfer over the tie lines and excites the inter-area mode.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("kundur_two_area.toml")
LOAD_DAMPING = 1.5  # % load per % frequency
MACHINE_DAMPING_PU = 2.0
STEP_PU = 1.0


def main() -> None:
    import andes

    andes.config_logger(stream_level=40)
    ss = andes.run(
        andes.get_case("kundur/kundur.raw"),
        addfile=andes.get_case("kundur/kundur_gencls.dyr"),
        no_output=True,
        default_config=True,
    )
    omega_s = 2 * math.pi * ss.config.freq
    bus_index = {idx: i for i, idx in enumerate(ss.Bus.idx.v)}
    v = np.asarray(ss.Bus.v.v) * np.exp(1j * np.asarray(ss.Bus.a.v))
    n_bus, k = len(v), ss.GENCLS.n

    # Generator powers at each machine's bus (PV and slack), from the solved power flow.
    s_gen = dict(zip(ss.PV.bus.v, np.asarray(ss.PV.p.v) + 1j * np.asarray(ss.PV.q.v), strict=True))
    s_gen |= dict(zip(ss.Slack.bus.v, np.asarray(ss.Slack.p.v) + 1j * np.asarray(ss.Slack.q.v), strict=True))
    load_bus = [bus_index[b] for b in ss.PQ.bus.v]
    p_load = np.asarray(ss.PQ.p0.v)

    b = np.zeros((k + n_bus, k + n_bus))
    for i, j, x in zip(ss.Line.bus1.v, ss.Line.bus2.v, ss.Line.x.v, strict=True):
        a, c = k + bus_index[i], k + bus_index[j]
        weight = abs(v[a - k]) * abs(v[c - k]) / x
        b[a, c] += weight
        b[c, a] += weight
    p_gen, emf = np.zeros(k), np.zeros(k, complex)
    for g, (bus, xd1) in enumerate(zip(ss.GENCLS.bus.v, ss.GENCLS.xd1.v, strict=True)):
        t = bus_index[bus]
        current = np.conj(s_gen[bus] / v[t])
        emf[g] = v[t] + 1j * xd1 * current
        p_gen[g] = s_gen[bus].real
        b[g, k + t] = b[k + t, g] = abs(emf[g]) * abs(v[t]) / xd1
    p_gen *= p_load.sum() / p_gen.sum()  # lossless: generation equals load

    sn = np.asarray(ss.GENCLS.Sn.v) / ss.config.mva
    inertia = np.concatenate([np.asarray(ss.GENCLS.M.v) / omega_s, np.zeros(n_bus)])
    damping = np.concatenate([MACHINE_DAMPING_PU * sn / omega_s, np.zeros(n_bus)])
    p_before = np.concatenate([p_gen, np.zeros(n_bus)])
    for bus, p in zip(load_bus, p_load, strict=True):
        damping[k + bus] = LOAD_DAMPING * p / omega_s
        p_before[k + bus] = -p
    p_after = p_before.copy()
    p_after[k + load_bus[0]] += STEP_PU  # area 1 sheds 100 MW ...
    p_after[k + load_bus[1]] -= STEP_PU  # ... that area 2 draws

    bus_name = dict(zip(ss.Bus.idx.v, ss.Bus.name.v, strict=True))
    names = [f"G{bus_name[bus]}" for bus in ss.GENCLS.bus.v] + [
        (f"L{name}" if i in load_bus else f"bus{name}") for i, name in enumerate(ss.Bus.name.v)
    ]
    OUT.write_text(_toml(names, inertia, damping, p_before, p_after, b))
    print(f"wrote {OUT}")


def _vector(values) -> str:
    return "[" + ", ".join(f"{float(x):.12g}" for x in values) + "]"


def _toml(names, inertia, damping, p_before, p_after, b) -> str:
    rows = ",\n".join(f"    {_vector(row)}" for row in b)
    return (
        "# Kundur's two-area system (ANDES 2.0.0 kundur.raw + kundur_gencls.dyr), written by\n"
        "# reduce_kundur.py, whose docstring says exactly how: classical machines behind x'd,\n"
        "# lossless lines at the power flow's voltage magnitudes, loads as first-order buses\n"
        "# (damping 1.5 % per %), machine damping 2 pu, generation scaled to the load; the passive\n"
        "# buses are Kron-reduced when the file is read. Disturbance: 1 pu of load moves from\n"
        "# area 1 (bus 3) to area 2 (bus 13).\n"
        'name = "kundur_two_area"\n'
        f"buses = [{', '.join(repr(str(n)).replace(chr(39), chr(34)) for n in names)}]\n"
        f"inertia = {_vector(inertia)}\n"
        f"damping = {_vector(damping)}\n"
        f"power_before = {_vector(p_before)}\n"
        f"power_after = {_vector(p_after)}\n"
        f"susceptance = [\n{rows},\n]\n"
    )


if __name__ == "__main__":
    main()
