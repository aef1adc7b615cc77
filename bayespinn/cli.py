"""The ``bayespinn`` command. Exit 0 on success, 2 on bad input (one line on stderr), 1 on a bug."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from bayespinn.errors import UserError

__all__ = ["main"]


def _jax_setup(chains: int = 4) -> None:
    """Float64, one XLA host device per chain, and computations run inline rather than
    dispatched to XLA's CPU thread pool; must run before JAX computes anything."""
    import jax
    import numpyro

    numpyro.set_host_device_count(max(chains, os.cpu_count() or 1))
    numpyro.enable_x64()
    # Asynchronous CPU dispatch deadlocks now and then (jax-ml/jax#25861): a batched potential
    # with a host callback (a network surrogate's steady state) never became ready, twice in
    # 40 minutes of importance weights; inline, the same runs finish.
    jax.config.update("jax_cpu_enable_async_dispatch", False)


def _print_table(run) -> None:
    from bayespinn.summary_text import format_run

    print(format_run(run))


def cmd_calibrate(args) -> int:
    import dataclasses

    from bayespinn.pipeline import calibrate
    from bayespinn.study import load_study

    study = load_study(args.study)
    overrides = {
        k: getattr(args, k) for k in ("chains", "warmup", "samples", "seed") if getattr(args, k) is not None
    }
    if overrides:
        study = dataclasses.replace(study, inference=dataclasses.replace(study.inference, **overrides))
    if args.out:
        study = dataclasses.replace(study, output_dir=Path(args.out))
    _jax_setup(study.inference.chains)
    _print_table(calibrate(study, progress=not args.quiet, check_reference=args.check_reference))
    return 0


def cmd_demo(args) -> int:
    from bayespinn.demo import run_demo

    _jax_setup(4)
    run, seconds = run_demo(Path(args.out), progress=not args.quiet)
    _print_table(run)
    print(f"demo finished in {seconds:.1f} s")
    return 0


def cmd_simulate(args) -> int:
    from bayespinn.simulate import parse_assignments, simulate_csv

    values = parse_assignments(args.values)
    path = simulate_csv(
        args.system,
        values,
        Path(args.out),
        t_end_s=args.t_end,
        points=args.points,
        noise=args.noise,
        seed=args.seed,
        noise_sd=args.noise_sd,
    )
    print(f"wrote {path}")
    return 0


def _with_network(args, table: dict, network_table: dict, command: str):
    """The trainer or validator of ``args.surrogate``, bound to ``--network`` where it takes one."""
    from functools import partial

    if args.surrogate in network_table:
        if args.network is None:
            raise UserError(
                f"{command} {args.surrogate}: --network missing, expected a bundled network or a file"
            )
        from surrogates.power.network import NetworkError
        from surrogates.power.network_models import bundled

        try:
            bundled(args.network)  # a bad file: one line naming its key, before any work
        except NetworkError as exc:
            raise UserError(f"{command} --network: {exc}") from None
        return partial(network_table[args.surrogate], args.network)
    if args.surrogate not in table:
        raise UserError(
            f"{command}: found {args.surrogate!r}, expected one of {', '.join([*table, *network_table])}"
        )
    if args.network is not None:
        raise UserError(f"{command} {args.surrogate}: takes no --network, found {args.network!r}")
    return table[args.surrogate]


def _default_out(args) -> Path:
    """``./<name>.safetensors``; a network file's surrogate beside the file, where studies look."""
    if args.network is None:
        return Path(f"{args.surrogate}.safetensors")
    from surrogates.power.network_models import NETWORKS

    if (NETWORKS / f"{args.network}.toml").exists():
        return Path(f"multimachine_{args.network}.safetensors")
    return Path(args.network).with_suffix(".safetensors")


def cmd_train(args) -> int:
    from surrogates.pinn.trainer import resolve_device
    from surrogates.registry import NETWORK_TRAINERS, PHYSICS_ONLY_REFUSED, TRAINERS

    trainer = _with_network(args, TRAINERS, NETWORK_TRAINERS, "train")
    if args.physics_only and args.surrogate in PHYSICS_ONLY_REFUSED:
        why = PHYSICS_ONLY_REFUSED[args.surrogate]
        raise UserError(f"train {args.surrogate}: --physics-only is not offered, {why}")
    try:
        device = str(resolve_device(args.device))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out) if args.out else _default_out(args)
    checkpoint = Path(args.checkpoint or out.with_suffix(".ckpt.safetensors"))
    print(
        f"training {args.surrogate} on {device}; checkpoint {checkpoint} (rerun to resume)", file=sys.stderr
    )
    card = trainer(device, out, args.physics_only, args.quick, checkpoint, not args.quiet)
    print(json.dumps({k: v for k, v in card["validation"].items() if k != "points"}, indent=2))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def cmd_validate(args) -> int:
    from surrogates.pinn.card import read_card, save_residuals, write_json_atomic
    from surrogates.registry import NETWORK_VALIDATORS, VALIDATORS

    validator = _with_network(args, VALIDATORS, NETWORK_VALIDATORS, "validate")
    result, path = validator(args.weights and Path(args.weights), args.points)
    arrays = result.pop("arrays", None)
    result = {k: v for k, v in result.items() if k != "per_point_rmse"}
    print(json.dumps({k: v for k, v in result.items() if k != "points"}, indent=2))
    if args.write:  # the card's numbers and the residual curves the correlated error model reads
        card = read_card(path)
        write_json_atomic(Path(path).with_suffix(".json"), {**card, "validation": result})
        if arrays is not None:
            save_residuals(path, arrays)
    return 0


def cmd_check_exact(args) -> int:
    import arviz as az

    from bayespinn.pipeline import calibrate, prepare
    from bayespinn.reference import check_exact, grid_parameters
    from bayespinn.study import load_study
    from surrogates.pinn.card import write_json_atomic

    study = load_study(args.study)
    _jax_setup(study.inference.chains)
    prep = prepare(study)
    grid_parameters(prep)  # before any run is written
    posterior = study.output_dir / "posterior.nc"
    # A run of this very study is reused; anything else is calibrated afresh.
    copy = study.output_dir / "study.toml"
    if not (posterior.exists() and copy.exists() and copy.read_text() == study.text):
        calibrate(study, progress=not args.quiet)
    result = check_exact(prep, az.from_netcdf(str(posterior)), n=args.grid)
    result["run"] = str(study.output_dir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        write_json_atomic(Path(args.out), result)
    verdict = "agrees with" if result["agree"] else "does NOT agree with"
    print(f"the run's posterior {verdict} the exact posterior ({result['criterion']})", file=sys.stderr)
    return 0


def cmd_check_calibration(args) -> int:
    from bayespinn.check_calibration import check_calibration
    from bayespinn.study import load_study
    from surrogates.pinn.card import write_json_atomic

    if args.trials < 2:
        raise UserError(f"check-calibration: --trials: found {args.trials}, expected at least 2")
    study = load_study(args.study)
    _jax_setup(study.inference.chains)
    result = check_calibration(study, trials=args.trials, seed=args.seed, progress=not args.quiet)
    print(json.dumps(result, indent=2))
    if args.out:
        write_json_atomic(Path(args.out), result)
    verdict = "calibrated" if result["calibrated"] else "NOT calibrated"
    print(
        f"over {args.trials} truths from the prior the intervals are {verdict} ({result['criterion']})",
        file=sys.stderr,
    )
    return 0


def cmd_report(args) -> int:
    from bayespinn.compare_report import compare_runs

    print(f"wrote {compare_runs([Path(r) for r in args.runs], Path(args.out))}")
    return 0


def cmd_soh(args) -> int:
    from bayespinn.soh import run_soh

    _jax_setup(1)
    try:
        run = run_soh(
            args.study,
            executor=args.executor,
            scheduler=args.scheduler,
            workers=args.workers,
            out=Path(args.out) if args.out else None,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(
            "bayespinn: interrupted; finished cycles are kept, and the same command continues",
            file=sys.stderr,
        )
        return 130
    ok = sum(r["status"] == "ok" for r in run.results)
    print(
        f"{ok} cycles calibrated, {len(run.results) - ok} failed, {len(run.skipped)} skipped "
        f"in {run.wall_time_s:.1f} s; wrote {run.dir / 'soh_report.html'} and {run.dir / 'soh.csv'}"
    )
    return 0


def cmd_surrogates(args) -> int:
    from surrogates.registry import NETWORK_LOADERS, load, names

    for name in names():
        network = "four_bus" if name in NETWORK_LOADERS else None
        model = load(name, network)
        print(name + (" (shown for the bundled four_bus; any network file)" if network else ""))
        print(f"  parameters: {', '.join(model.parameters)}; conditions: {', '.join(model.conditions)}")
        print(f"  observables: {', '.join(model.observables)}")
        if model.card:
            box = ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in model.card["domain"].items())
            print(f"  trained domain: {box}")
            validation = model.card["validation"]
            errors = dict(validation.get("rmse") or {})
            errors.update(
                {k: v for k, v in validation.items() if k.startswith("relative") and isinstance(v, dict)}
            )
            for what, s in errors.items():
                kind = what if what.startswith("relative") else f"{what} RMSE"
                print(
                    f"  {kind} vs reference: median {s['median']:.2e}, p95 {s['p95']:.2e}, max {s['max']:.2e}"
                )
        else:
            print("  reference solver: exact up to solver tolerance")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bayespinn", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="calibrate m and d on the bundled SMIB data set")
    demo.add_argument("--out", default="bayespinn-demo", help="run directory (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)

    cal = sub.add_parser("calibrate", help="calibrate a study file")
    cal.add_argument("study")
    cal.add_argument("--out", help="run directory (default: the study's [output] dir)")
    for flag in ("chains", "warmup", "samples", "seed"):
        cal.add_argument(f"--{flag}", type=int)
    cal.add_argument(
        "--check-reference",
        action="store_true",
        help="re-run 200 posterior draws through the reference solver; report the difference and the "
        "shift of each posterior mean it causes",
    )
    cal.add_argument("--quiet", action="store_true")
    cal.set_defaults(func=cmd_calibrate)

    sim = sub.add_parser("simulate", help="reference solver → synthetic CSV")
    sim.add_argument("system", help="e.g. power.smib")
    sim.add_argument("values", nargs="*", metavar="NAME=VALUE", help="parameters and conditions")
    sim.add_argument("--out", "-o", required=True)
    sim.add_argument(
        "--t-end",
        type=float,
        help="last time [s] (default: the system's record: 20 s, or a battery's cut-off)",
    )
    sim.add_argument("--points", type=int, help="number of times (default: 201, or every 10 s for a battery)")
    sim.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="noise sd as a fraction of each observable's range (0.01 = 1 %%)",
    )
    sim.add_argument(
        "--noise-sd", type=float, help="noise sd in the observable's unit (e.g. 0.005 V); overrides --noise"
    )
    sim.add_argument("--seed", type=int, default=0)
    sim.set_defaults(func=cmd_simulate)

    tr = sub.add_parser("train", help="train a surrogate and write its weights and card")
    tr.add_argument("surrogate")
    tr.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    tr.add_argument("--out", help="weights path (default: ./<name>.safetensors; the card goes beside it)")
    tr.add_argument("--checkpoint", help="checkpoint file, resumed when it exists (default: <out>.ckpt)")
    tr.add_argument("--physics-only", action="store_true", help="no reference data in the loss")
    tr.add_argument("--quick", action="store_true", help="smoke-sized run")
    tr.add_argument("--quiet", action="store_true")
    tr.add_argument("--network", help="power.multimachine: a bundled network or a network file")
    tr.set_defaults(func=cmd_train)

    val = sub.add_parser("validate", help="error of a surrogate against its reference solver")
    val.add_argument("surrogate")
    val.add_argument("--weights", help="weights file (default: the shipped one)")
    val.add_argument("--points", type=int, default=128, help="held-out Sobol points")
    val.add_argument("--write", action="store_true", help="write the result into the card")
    val.add_argument("--network", help="power.multimachine: a bundled network or a network file")
    val.set_defaults(func=cmd_validate)

    ex = sub.add_parser("check-exact", help="compare a two-parameter run with the exact grid posterior")
    ex.add_argument("study")
    ex.add_argument("--grid", type=int, default=61, help="grid nodes per parameter (default: %(default)s)")
    ex.add_argument("--out", help="also write the comparison to this JSON file")
    ex.add_argument("--quiet", action="store_true")
    ex.set_defaults(func=cmd_check_exact)

    cal = sub.add_parser(
        "check-calibration", help="coverage of the study's intervals over truths drawn from its prior"
    )
    cal.add_argument("study")
    cal.add_argument("--trials", type=int, default=20, help="synthetic data sets (default: %(default)s)")
    cal.add_argument("--seed", type=int, default=0, help="seed of the truths and the noise")
    cal.add_argument("--out", help="also write the result to this JSON file")
    cal.add_argument("--quiet", action="store_true")
    cal.set_defaults(func=cmd_check_calibration)

    rep = sub.add_parser(
        "report",
        help="overlay and tabulate the posteriors of several runs in one HTML page",
        description="Compare run directories written by `calibrate`: a table of the runs, the marginal "
        "posteriors overlaid, and mean, sd, 90 % interval, shift in baseline sds and sd ratio per "
        "parameter against the first run (the baseline). With one RUN the page shows that run alone; "
        "its full report is RUN/report.html.",
    )
    rep.add_argument("runs", nargs="*", metavar="RUN", help="run directories; the first is the baseline")
    rep.add_argument("--out", default="comparison.html", help="HTML file to write (default: %(default)s)")
    rep.set_defaults(func=cmd_report)

    soh = sub.add_parser("soh", help="calibrate every (cell, cycle) of a study; state-of-health report")
    soh.add_argument("study")
    soh.add_argument("--executor", default="local", help="local (processes here, the default) or dask")
    soh.add_argument("--scheduler", help="address of a running Dask scheduler (default: a LocalCluster)")
    soh.add_argument("--workers", type=int, help="processes (local) or LocalCluster workers (default: cores)")
    soh.add_argument("--out", help="run directory (default: the study's [output] dir)")
    soh.add_argument("--quiet", action="store_true")
    soh.set_defaults(func=cmd_soh)

    sur = sub.add_parser("surrogates", help="list surrogates with domains and errors")
    sur.set_defaults(func=cmd_surrogates)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    args = _parser().parse_args(argv)
    # Our progress lines only: the root logger stays quiet, so libraries' INFO chatter does not show.
    # A fresh handler each call writes to the current stderr (tests swap it between calls).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("bayespinn")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        return args.func(args)
    except UserError as exc:
        print(f"bayespinn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayespinn: interrupted; nothing was written for the unfinished run", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
