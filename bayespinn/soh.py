"""``bayespinn soh STUDY.toml``: calibrate every (cell, cycle), trend the parameters, report health.

A run reads the cycles (``soh_data``), splits them into fixed batches, has an executor run
``soh_fit.calibrate_batch`` on each (local processes, or a Dask cluster), and stores each
(cell, cycle)'s result as its own JSON file as soon as its batch finishes, written atomically. A
run that is killed and started again keeps those files, runs only the batches that still miss
one, and ends with the same report: the batches are cut from the whole plan, not from what is
left, and each record's random key comes from the seed and its (cell, cycle).

Then ``soh_summary`` turns the draws into the indicators: each parameter and the discharge
capacity at reference conditions with 90 % bands, SOH against the cell's first cycle, the
probability that SOH is below the threshold, and trend-break alarms. Outputs in the run folder:
``soh.csv``, ``soh_report.html``, ``soh_diagnostics.json``, a copy of the study, ``cycles/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayespinn.errors import UserError
from bayespinn.report import _write_atomic
from bayespinn.soh_data import CycleRecord, Skipped, load_cycles, soh_settings
from bayespinn.soh_fit import OBS, SohJob, calibrate_batch, failed_result, record_key
from bayespinn.study import Study, load_study

__all__ = ["EXECUTORS", "SohRun", "run_soh"]

EXECUTORS = ("local", "dask")
_BATCHED_GUIDES = ("laplace", "mvn")
# NUTS's target acceptance when the study does not set one. At NumPyro's 0.8 the chains of 6 of
# 8 case-study cycles diverged (1–45 times in 4,000 draws; PyBaMM's OCP barrier is clipped, so
# the potential has kinks near the cut-off) and mixed slowly; smaller steps avoid the kinks.
NUTS_TARGET_ACCEPT = 0.95


@dataclass(frozen=True)
class SohRun:
    dir: Path
    results: list[dict]  # one per calibrated (cell, cycle), in (cell, cycle) order
    skipped: list[Skipped]
    wall_time_s: float


def run_soh(
    study_path: str | Path,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> SohRun:
    """Calibrate what is not done yet, then write the report; returns what the report holds."""
    from bayespinn.soh_summary import write_outputs

    t0 = time.perf_counter()
    study = load_study(study_path)
    if out is not None:
        study = dataclasses.replace(study, output_dir=Path(out))
    settings = soh_settings(study)
    job, records, skipped = _plan(study, settings)
    run_dir = study.output_dir
    (run_dir / "cycles").mkdir(parents=True, exist_ok=True)
    done = {k: v for k, v in _stored(run_dir, job, records).items() if v["status"] == "ok"}
    batches = [records[i : i + settings.batch_size] for i in range(0, len(records), settings.batch_size)]
    pending = [b for b in batches if any(record_key(r.cell, r.cycle) not in done for r in b)]
    bar = _Progress(len(records), len(records) - sum(len(b) for b in pending), progress)
    for result in _execute(executor, scheduler, workers, job, pending, bar):
        key = record_key(result["cell"], result["cycle"])
        if key not in done:
            _write_json(_result_path(run_dir, result["cell"], result["cycle"]), result)
            if result["status"] == "ok":
                done[key] = result
    bar.close()
    results = list(_stored(run_dir, job, records).values())
    wall = time.perf_counter() - t0
    meta = {"executor": executor, "batches": len(batches), "batches_run": len(pending), "wall_time_s": wall}
    write_outputs(run_dir, study, settings, job, results, skipped, meta)
    return SohRun(run_dir, results, skipped, wall)


def _plan(study: Study, settings) -> tuple[SohJob, list[CycleRecord], list[Skipped]]:
    """The job every batch shares, the usable records and the skipped ones; raises UserError
    before anything is written."""
    from bayespinn import checks
    from bayespinn.data import Measurements
    from bayespinn.engines import mcmc_settings
    from inference.svi import SVISettings
    from surrogates.battery import chen2020
    from surrogates.battery.spm_models import KNEE_V
    from surrogates.battery.spm_pinn import DOMAIN, T_MAX_NOMINAL

    model = checks.load_model(study)
    if model.name != "battery.spm":
        raise UserError(
            f"{study.path}: [surrogate] name: found {model.name!r}, expected 'battery.spm' for a soh study"
        )
    wanted = list(model.parameters)
    if sorted(study.priors) != sorted(wanted):
        raise UserError(
            f"{study.path}: [parameters]: found {', '.join(study.priors)}, expected exactly "
            f"{', '.join(wanted)} (the C-rate of each cycle comes from its current)"
        )
    inf = study.inference
    batched = inf.engine == "nuts" or (inf.engine == "svi" and inf.guide in _BATCHED_GUIDES)
    if not batched or inf.backend != "numpyro":
        raise UserError(
            f"{study.path}: [inference] engine: found {inf.engine!r} (guide {inf.guide!r}, backend "
            f"{inf.backend!r}), expected 'nuts', or 'svi' with guide 'laplace' or 'mvn', on numpyro "
            "for a soh study (batched over cycles)"
        )
    records, skipped = load_cycles(
        study.data_path,
        settings,
        capacity_ah=chen2020.CAPACITY_AH,
        c_rate_range=DOMAIN["c_rate"],
        t_max_nominal_h=T_MAX_NOMINAL,
        end_voltage_v=KNEE_V,
    )
    voltages = np.concatenate([r.voltage_v for r in records])
    noise = checks.resolve_noise(
        study, Measurements(study.data_path, np.arange(len(voltages)), {OBS: voltages})
    )
    held_out = model.validation_residuals({})
    sd = np.sqrt(np.mean(held_out["residuals"][OBS] ** 2, axis=0))
    if inf.surrogate_error == "off":
        sd = np.zeros_like(sd)
    svi = mcmc = None
    if inf.engine == "nuts":
        given = "target_accept" in tomllib.loads(study.text).get("inference", {})
        mcmc = dataclasses.replace(
            mcmc_settings(inf), target_accept=inf.target_accept if given else NUTS_TARGET_ACCEPT
        )
    else:
        svi = SVISettings(
            guide=inf.guide,
            steps=inf.svi_steps,
            learning_rate=inf.learning_rate,
            draws=inf.samples,
            seed=inf.seed,
        )
    job = SohJob(
        surrogate=model.name,
        priors=dict(study.priors),
        noise=noise[OBS],
        surrogate_sd_grid=tuple(map(float, held_out["grid"])),
        surrogate_sd_v=tuple(map(float, sd)),
        svi=svi,
        mcmc=mcmc,
        reference_c_rate=settings.reference_c_rate,
        seed=inf.seed,
        batch_size=min(settings.batch_size, len(records)),
    )
    return job, records, skipped


# --- the store: one JSON file per (cell, cycle) -------------------------------------------------


def _fingerprint(job: SohJob, record: CycleRecord) -> str:
    """What a stored result was computed from: the job and the record's own readings."""
    h = hashlib.sha256(repr(job).encode())
    for array in (record.time_s, record.voltage_v):
        h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    h.update(repr((record.c_rate, record.c_rate_se)).encode())
    return h.hexdigest()


def _result_path(run_dir: Path, cell: str, cycle: int) -> Path:
    return run_dir / "cycles" / f"{urllib.parse.quote(cell, safe='')}__{cycle}.json"


def _stored(run_dir: Path, job: SohJob, records: list[CycleRecord]) -> dict[str, dict]:
    """Results on disk that belong to this job and these readings, by record key, in plan order.

    A file from another study or other data (its fingerprint differs), or one cut short, is not
    a result: its record is calibrated again and the file replaced."""
    found = {}
    for record in records:
        path = _result_path(run_dir, record.cell, record.cycle)
        try:
            result = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        if result.get("fingerprint") == _fingerprint(job, record):
            found[record_key(record.cell, record.cycle)] = result
    return found


def _write_json(path: Path, value: dict) -> None:
    _write_atomic(path, json.dumps(value))


# --- executors -----------------------------------------------------------------------------------


def _execute(executor: str, scheduler: str | None, workers: int | None, job: SohJob, batches: list, bar):
    """Yield each record's result (with its fingerprint) as its batch finishes."""
    if executor not in EXECUTORS:
        raise UserError(f"--executor: found {executor!r}, expected one of {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise UserError(
            f"--scheduler: found {scheduler!r} with --executor {executor}, expected --executor dask"
        )
    fingerprints = {record_key(r.cell, r.cycle): _fingerprint(job, r) for b in batches for r in b}
    run = _dask if executor == "dask" else _local
    for batch, results in run(job, batches, workers, scheduler):
        for result in results:
            result["fingerprint"] = fingerprints[record_key(result["cell"], result["cycle"])]
            yield result
        bar.update(results)


def _failed_batch(batch: list, error: BaseException) -> list[dict]:
    """A batch whose worker died (not an error inside it: calibrate_batch records those)."""
    return [failed_result(r, f"{type(error).__name__}: {error}") for r in batch]


def _local(job: SohJob, batches: list, workers: int | None, _scheduler):
    """Batches in this process (one worker) or in a pool of fresh processes (spawned: JAX is not
    safe to fork once it has started)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(workers or os.cpu_count() or 1, len(batches))
    if workers <= 1:
        for batch in batches:
            yield batch, calibrate_batch(job, batch)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(calibrate_batch, job, batch): batch for batch in batches}
        for future in as_completed(futures):
            batch = futures[future]
            try:
                yield batch, future.result()
            except Exception as error:  # noqa: BLE001 - a dead worker fails its batch, not the run
                yield batch, _failed_batch(batch, error)
    finally:
        # Interrupted: batches not yet started are dropped; what finished is already on disk.
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(job: SohJob, batches: list, workers: int | None, scheduler: str | None):
    """Batches as tasks on a Dask cluster: the one at ``scheduler``, or a LocalCluster of
    ``workers`` single-threaded processes started for this run."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = {
            client.submit(calibrate_batch, job, batch, pure=False): i for i, batch in enumerate(batches)
        }
        for future in as_completed(futures):
            batch = batches[futures[future]]
            try:
                yield batch, future.result()
            except Exception as error:  # noqa: BLE001 - a lost worker fails its batch, not the run
                yield batch, _failed_batch(batch, error)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _Progress:
    """Cycles done, failed and remaining, on a tqdm bar (stderr)."""

    def __init__(self, total: int, already: int, show: bool):
        from tqdm.auto import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, initial=already, desc="cycles", unit="cycle", disable=not show)
        self.bar.set_postfix(failed=0, remaining=total - already)

    def update(self, results: list[dict]) -> None:
        self.failed += sum(r["status"] != "ok" for r in results)
        self.bar.update(len(results))
        self.bar.set_postfix(failed=self.failed, remaining=self.bar.total - self.bar.n)

    def close(self) -> None:
        self.bar.close()
