"""Wall time and effective samples per second of every engine on one study, as ratios to NUTS.

Runs each ``[engines]`` variant of ``case_studies/engines/engines.toml`` on that case study's
SMIB study (5 % noise, σ known) in this one run, through the public pipeline, and prints one JSON
object: per engine its wall time (sampling or fitting, compilation included), bulk ESS (MCMC;
SVI's draws are independent, so their ESS is their number), ESS/s, and both as ratios to NUTS
measured here. Ensemble Kalman methods have no ESS: their row gives forward-model calls instead.
The runs land in ``case_studies/engines/runs/engines`` (the case study's tables read them).

    python benchmarks/engines.py [--only NAME ...] > engines.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "inference").is_dir():
    sys.path.insert(0, str(_ROOT))


def _case_study():
    path = _ROOT / "case_studies" / "engines" / "compare.py"
    spec = importlib.util.spec_from_file_location("engines_case_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="engine variants besides NUTS (default: all)")
    args = parser.parse_args(argv)
    case = _case_study()
    variants = case.variants()["engines"]
    names = ["nuts"] + [n for n in variants if n != "nuts" and (not args.only or n in args.only)]
    rows = {n: case.run("engines", n, variants[n], reuse=False) for n in names}
    nuts = rows["nuts"]
    out = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1min_at_start": os.getloadavg()[0],
        },
        "study": str(case.BASES["engines"].relative_to(_ROOT)),
        "engines": {},
    }
    for name, row in rows.items():
        variant = variants[name]
        entry = {
            "settings": variant,
            "wall_time_s": row["wall_time_s"],
            "wall_time_ratio_vs_nuts": row["wall_time_s"] / nuts["wall_time_s"],
            "min_ess_bulk": row["min_ess_bulk"],
            "ess_per_s": row["ess_per_s"],
            "ess_per_s_ratio_vs_nuts": None
            if row["ess_per_s"] is None
            else row["ess_per_s"] / nuts["ess_per_s"],
            "forward_calls": row["forward_calls"],
            "posterior_mean": row["mean"],
            "posterior_sd": row["sd"],
        }
        out["engines"][name] = entry
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
