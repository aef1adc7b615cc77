"""Transfer learning for ``power.multimachine``: a network at a changed operating point, trained
from scratch and warm-started from the shipped four-bus surrogate, side by side in one run.

    python benchmarks/network_transfer.py [--quick] > network_transfer.json

The target (``benchmarks/networks/four_bus_loaded.toml``) is the four-bus grid of the shipped
surrogate, preloaded with its published step and then stepped by half as much again: other
steady states, so another linear part and another nonlinear remainder for the network to learn.
Both runs use the shipped training configuration. The time to the same accuracy is read off the
loss histories: the training time each run needs to reach the from-scratch run's final loss
(× 1.1); both final networks are validated against DOP853 on the same held-out design.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_timing import sig

from surrogates.pinn.card import load_weights
from surrogates.pinn.trainer import hardware_description
from surrogates.power.network_models import bundled, weights_for
from surrogates.power.network_pinn import NETWORK_CONFIG, Ansatz, fit_network, validate_network

TARGET = HERE / "networks" / "four_bus_loaded.toml"


def time_to_loss(history: list[dict], loss: float) -> dict | None:
    """Training seconds, phase and step at which the recorded loss first reaches ``loss``
    (None: never). The step does not depend on the machine's load; the seconds do."""
    hit = next((h for h in history if h.get("loss", float("inf")) <= loss), None)
    return (
        None
        if hit is None
        else {"seconds": sig(hit["elapsed_s"]), "phase": hit["phase"], "step": hit["step"]}
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="300 Adam + 20 L-BFGS steps, 100 trajectories, 16 validation points",
    )
    args = p.parse_args(argv)
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    config = NETWORK_CONFIG
    points = 128
    if args.quick:
        config, points = dataclasses.replace(config, adam_steps=300, lbfgs_steps=20, n_trajectories=100), 16
    target = bundled(str(TARGET))
    source, _ = load_weights(weights_for("four_bus"))
    revision = Ansatz.for_weights(bundled("four_bus"), source).revision  # both runs: the source's ansatz
    runs = {}
    for name, warm in (("scratch", None), ("warm_start", source)):
        t0 = time.perf_counter()
        weights, n_layers, record = fit_network(
            target, config, progress=False, warm_start=warm, revision=revision
        )
        wall = time.perf_counter() - t0
        validation = validate_network(target, weights, n_layers, points)
        runs[name] = {
            "wall_time_s": sig(wall),
            "final_loss": next(h["loss"] for h in reversed(record["history"]) if "loss" in h),
            "history": record["history"],
            "angle_rmse_rad": validation["rmse"]["Angle [rad]"],
            "linear_part_alone_rad": validation["linear_part_alone"]["Angle [rad]"],
        }
        print(f"{name}: {wall:.0f} s, loss {runs[name]['final_loss']:.3g}", file=sys.stderr)
    goal = 1.1 * runs["scratch"]["final_loss"]
    reached = {name: time_to_loss(run.pop("history"), goal) for name, run in runs.items()}
    result = {
        "benchmark": "network_transfer",
        "target_network": str(TARGET.relative_to(HERE.parent)),
        "source_weights": str(weights_for("four_bus").relative_to(HERE.parent)),
        "config": config.to_dict(),
        "hardware": hardware_description("cpu"),
        "goal_loss": goal,
        "to_goal": reached,
        "time_ratio_warm_over_scratch": (
            None
            if None in reached.values()
            else sig(reached["warm_start"]["seconds"] / reached["scratch"]["seconds"])
        ),
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
