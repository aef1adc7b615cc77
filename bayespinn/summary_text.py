"""The posterior table and verdict as plain text for the terminal."""

from __future__ import annotations

__all__ = ["format_run"]


def format_run(run) -> str:
    d = run.diagnostics
    state = "converged" if d["converged"] else "NOT converged: do not trust these numbers"
    lines = [
        run.table.to_string(float_format=lambda x: f"{x:.4g}"),
        "",
        (
            f"verdict: {state} (max R-hat {d['max_rhat']:.3f}, min ESS {d['min_ess_bulk']:.0f}, "
            f"{d['divergences']} divergences, sampling {d['wall_time_s']:.1f} s)"
        ),
    ]
    lines += [f"  warning: {w}" for w in d["warnings"]]
    lines += [f"  check before use: {f}" for f in d.get("flags") or []]
    lines.append(f"report: {(run.dir / 'report.html').resolve()}")
    return "\n".join(lines)
