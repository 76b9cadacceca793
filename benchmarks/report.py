"""Result files: JSON (everything), CSV (one row per measurement), Markdown tables, comparisons."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from benchmarks.cases import BASELINE, MODES
from benchmarks.workloads import label

__all__ = [
    "BASELINES",
    "SCHEMA",
    "FLOOR_POINT",
    "attach_floors",
    "compare_docs",
    "floor_us",
    "fill_best_baselines",
    "format_comparison",
    "geomean",
    "load_doc",
    "markdown",
    "merge_docs",
    "speedup_summary",
    "write_csv",
    "write_json",
]

SCHEMA = 1
#: Providers that are baselines (torch.nn eager, CUDA-graphed, and with its bfloat16 weights in
#: one cuDNN buffer; FlashRNN's backends): every other provider's ``vs_best`` is against the
#: fastest of them at its shape and mode (half precision: either half dtype; float32: the same
#: TF32 setting).
BASELINES = (BASELINE, BASELINE + "+graph", BASELINE + "-flat", BASELINE + "-flat+graph",
             *(f"flashrnn-{b}" for b in ("vanilla", "triton", "cuda", "cuda_fused")))
_HALF = ("bfloat16", "float16")
#: The point whose barrier step (``benchmarks.floors``) is the floor every row is compared with:
#: the FlashRNN point.
FLOOR_POINT = ("lstm", 16, 768, "bfloat16")
CSV_COLUMNS = (
    "key", "config", "cell", "T", "B", "I", "H", "dtype", "layers", "bidirectional", "packed",
    "mode", "label", "provider", "backend", "status", "median_ms", "p10_ms", "p20_ms", "p80_ms",
    "p90_ms", "reps", "us_per_step", "floor_ratio", "speedup", "best_baseline", "best_ms",
    "vs_best", "rounds", "spread", "noisy", "peak_mem_mib", "max_abs_err", "err_ratio",
    "oracle", "kernels", "message",
)  # fmt: skip


def geomean(values: Iterable[float]) -> float | None:
    """Geometric mean of positive numbers; None for none."""
    vals = list(values)
    if any(v <= 0 or math.isnan(v) for v in vals):
        raise ValueError(f"geometric mean needs positive numbers, got {vals}")
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else None


def _finite(value: object) -> object:
    """JSON has no infinities or NaN: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(doc: dict, path: Path) -> None:
    """The whole run document as strict JSON (non-finite numbers become strings)."""
    path.write_text(json.dumps(_finite(doc), indent=1, default=str, allow_nan=False) + "\n")


def load_doc(path: str | Path) -> dict:
    """Read a run document written by :func:`write_json`."""
    doc = json.loads(Path(path).read_text())
    if doc.get("schema") != SCHEMA or "results" not in doc:
        raise ValueError(f"{path} is not a benchmark result file (schema {SCHEMA})")
    return doc


def merge_docs(docs: Sequence[dict]) -> dict:
    """One result document from runs on one GPU model (shards of a suite, reruns): every
    (case, provider) once, from the newest run that has it; ``sources`` lists the runs (suite,
    shard, time, commit and diff hash); ``complete`` only when every run was and, for shards,
    every shard of its count is there. Runs on different GPU models (or a GPU and a CPU) are
    refused: their times do not mix."""
    if not docs:
        raise ValueError("nothing to merge")
    devices = {d["env"].get("gpu") or f"cpu {d['env'].get('cpu')}" for d in docs}
    if len(devices) > 1:
        raise ValueError(f"results from different machines do not merge: {sorted(devices)}")
    ordered = sorted(docs, key=lambda d: d["env"].get("timestamp", ""))
    merged: dict[tuple[str, str], dict] = {}
    for doc in ordered:
        for rec in doc["results"]:
            merged.pop((rec["key"], rec["provider"]), None)
            merged[(rec["key"], rec["provider"])] = rec
    suites = {d["suite"] for d in docs}
    newest = ordered[-1]
    shards: dict[int, set[int]] = defaultdict(set)
    for d in docs:
        if d.get("shard"):
            shards[d["shard"][1]].add(d["shard"][0])
    all_shards = all(found == set(range(1, n + 1)) for n, found in shards.items())
    floors = next((d["floors"] for d in reversed(ordered) if d.get("floors")), None)
    return {
        **{k: v for k, v in newest.items() if k not in ("results", "shard", "floors")},
        **({"floors": floors} if floors else {}),
        "suite": suites.pop() if len(suites) == 1 else "merged",
        "complete": all(d.get("complete") for d in docs) and all_shards,
        "sources": [{"suite": d["suite"], "shard": d.get("shard"),
                     "timestamp": d["env"].get("timestamp"),
                     "git_commit": d["env"].get("git_commit"),
                     "git_diff_sha256": d["env"].get("git_diff_sha256"),
                     "records": len(d["results"])} for d in ordered],
        "results": list(merged.values()),
    }


def write_csv(records: Sequence[dict], path: Path) -> None:
    """One row per (case, provider) with the columns of :data:`CSV_COLUMNS`."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


def _label(provider: str) -> str:
    return label(provider)


def _cell(rec: dict | None) -> str:
    if rec is None:
        return "-"
    if rec["status"] != "ok":
        err = rec.get("max_abs_err")
        return f"{rec['status']} (err {err:.2g})" if rec["status"] == "mismatch" else rec["status"]
    notes = [f"{rec['speedup']:.2f}x"] if rec.get("speedup") is not None else []
    if rec.get("noisy"):  # rounds disagreed by more than NOISY_SPREAD: no ratio
        notes.append(f"noisy: spread {rec['spread']:.0%}")
    elif rec.get("spread") is not None and rec["provider"] != BASELINE:
        notes.append(f"±{rec['spread'] / 2:.0%}")
    if rec.get("backend") and rec["backend"] != rec["provider"] and rec["provider"] != BASELINE:
        notes.append(rec["backend"])  # what auto picked
    return f"{rec['median_ms']:.3f}" + (f" ({', '.join(notes)})" if notes else "")


def _shape_group(rec: dict) -> tuple:
    """What a record is compared within: its configuration and mode but the dtype, half
    precisions together."""
    dtype = "half" if rec.get("dtype") in _HALF else rec.get("dtype")
    return (*(rec.get(k) for k in ("cell", "T", "B", "I", "H", "layers", "bidirectional",
                                   "packed", "mode")), rec.get("proj") or 0, dtype,
            rec.get("tf32"), rec.get("heads") or 1)


def fill_best_baselines(records: Sequence[dict]) -> None:
    """Set ``best_baseline`` (provider and dtype of the fastest baseline at the record's shape,
    see :data:`BASELINES`), ``best_ms`` and ``vs_best`` (its time over the record's) on every
    timed record; None where no baseline was timed. Noisy rows get no ratio."""
    best: dict[tuple, dict] = {}
    for rec in records:
        if rec["provider"] in BASELINES and rec["status"] == "ok":
            group = _shape_group(rec)
            if group not in best or rec["median_ms"] < best[group]["median_ms"]:
                best[group] = rec
    for rec in records:
        base = best.get(_shape_group(rec)) if rec["status"] == "ok" else None
        rec["best_baseline"] = f"{base['provider']} {base.get('dtype')}" if base else None
        rec["best_ms"] = base["median_ms"] if base else None
        rec["vs_best"] = (base["median_ms"] / rec["median_ms"]
                          if base and not rec.get("noisy") and not base.get("noisy") else None)


def floor_us(floors: dict) -> float | None:
    """The barrier step of :data:`FLOOR_POINT` in a ``floors.json`` document, in µs."""
    entry = floors.get("barrier_step_us", {}).get(" ".join(map(str, FLOOR_POINT)))
    return entry["us"] if entry else None


def attach_floors(records: Sequence[dict], floors: dict) -> None:
    """Set every timed record's ``floor_ratio``: its µs per step over :func:`floor_us`."""
    floor = floor_us(floors)
    for rec in records:
        step = rec.get("us_per_step")
        rec["floor_ratio"] = step / floor if floor and step else None


def speedup_summary(records: Sequence[dict]) -> dict[str, dict[str, tuple[float | None, int]]]:
    """``provider -> mode -> (geometric mean speedup over the baseline, count)``, plus "all"."""
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec["provider"] != BASELINE and rec.get("speedup") is not None:
            groups[rec["provider"]][rec["mode"]].append(rec["speedup"])
            groups[rec["provider"]]["all"].append(rec["speedup"])
    return {p: {m: (geomean(v), len(v)) for m, v in modes.items()} for p, modes in groups.items()}


def _providers(records: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r["provider"] for r in records))


def _header(doc: dict) -> list[str]:
    env = doc["env"]
    threads = env["cpu_threads"]
    device = env.get("gpu") or f"CPU {env['cpu']} ({threads} thread{'s' if threads != 1 else ''})"
    parts = [device]
    for key in ("driver", "cuda", "cudnn", "torch", "triton"):
        if env.get(key):
            parts.append(f"{key} {env[key]}")
    commit = env.get("git_commit")
    dirty = "+dirty" if env.get("git_dirty") else ""
    parts.append(f"fastrnn {commit[:10]}{dirty}" if commit else "fastrnn (no git commit)")
    if env.get("triton_interpret"):
        parts.append("TRITON_INTERPRET=1")
    return [
        f"# fastrnn benchmarks: {doc['suite']} suite",
        "",
        " · ".join(parts) + f" · {env['timestamp']}",
        "",
        f"Median time of one call in ms; in parentheses the speedup over {_label(BASELINE)} "
        "(higher is faster). Each provider's outputs (and input gradient) are checked against "
        "an oracle before it is timed; one that disagrees is reported as a mismatch and not "
        "timed. With timing rounds (the CPU's default), the median over interleaved rounds, "
        "± half its range over rounds, and the speedup as the median of the per-round ratios; "
        "a row whose rounds spread by more than 25% (or whose baseline's does) is marked noisy "
        "and given no ratio.",
        *(
            ["", "**Incomplete run**: only the cases finished before it stopped."]
            if doc.get("complete") is False
            else []
        ),
    ]


def markdown(doc: dict) -> str:
    """The per-configuration table and the geometric means of speedups, as Markdown."""
    records = doc["results"]
    lines = _header(doc) + [""]
    lines += _results_table(records) if records else ["No case finished."]
    lines += ["", f"## Geometric mean of speedups over {_label(BASELINE)}", ""]
    lines += _geomean_table(records)
    lines += _best_table(records)
    lines += _floor_table(doc)
    lines += _memory_table(records)
    lines += _kernels(records)
    lines += _failures(records)
    return "\n".join(lines) + "\n"


def _results_table(records: Sequence[dict]) -> list[str]:
    providers = _providers(records)
    lines = ["| config | mode | " + " | ".join(map(_label, providers)) + " |"]
    lines.append("|---|---|" + "---:|" * len(providers))
    by_key: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in records:
        by_key[rec["key"]][rec["provider"]] = rec
    for recs in by_key.values():
        first = next(iter(recs.values()))
        config = first["config"] + (f" ({first['label']})" if first["label"] else "")
        cells = [_cell(recs.get(p)) for p in providers]
        lines.append(f"| {config} | {first['mode']} | " + " | ".join(cells) + " |")
    return lines


def _geomean_table(records: Sequence[dict]) -> list[str]:
    summary = speedup_summary(records)
    if not summary:
        return ["No provider was timed next to the baseline."]
    extra_modes = sorted({r["mode"] for r in records} - set(MODES))
    modes = [m for m in (*MODES, *extra_modes, "all") if any(m in s for s in summary.values())]
    lines = ["| provider | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    for p in _providers(records):
        if p != BASELINE:
            row = [summary.get(p, {}).get(m) for m in modes]
            cells = [f"{g:.2f}x (n={n})" if g else "-" for g, n in (r or (None, 0) for r in row)]
            lines.append(f"| {_label(p)} | " + " | ".join(cells) + " |")
    return lines


def _best_table(records: Sequence[dict]) -> list[str]:
    """Every provider against the fastest baseline at its shape (:func:`fill_best_baselines`):
    which baseline won, its time, each provider's ratio, and their geometric means."""
    fill_best_baselines(records)
    rows = [r for r in records if r["provider"] not in BASELINES and r.get("best_ms")]
    if not rows:
        return []
    providers = _providers(rows)
    lines = [
        "", "## Against the best baseline", "",
        "The fastest of " + ", ".join(_label(b) for b in BASELINES) + " at each shape and mode "
        "(half precision: bfloat16 or float16, whichever is faster); ratios above 1 are wins.",
        "", "| config | mode | best baseline | ms | " + " | ".join(map(_label, providers)) + " |",
        "|---|---|---|---:|" + "---:|" * len(providers),
    ]
    by_key: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in rows:
        by_key[rec["key"]][rec["provider"]] = rec
    ratios: dict[str, list[float]] = defaultdict(list)
    for recs in by_key.values():
        first = next(iter(recs.values()))
        cells = []
        for p in providers:
            v = recs.get(p, {}).get("vs_best")
            cells.append("-" if v is None else f"{v:.2f}x")
            if v is not None:
                ratios[p].append(v)
        provider, dtype = first["best_baseline"].split()
        lines.append(f"| {first['config']} | {first['mode']} | {_label(provider)} {dtype} | "
                     f"{first['best_ms']:.3f} | " + " | ".join(cells) + " |")
    lines.append("| geometric mean | | | | " + " | ".join(
        f"{geomean(ratios[p]):.2f}x (n={len(ratios[p])})" if ratios[p] else "-"
        for p in providers) + " |")
    return lines


def _memory_table(records: Sequence[dict]) -> list[str]:
    """Peak device memory of one training call (fwd_bwd) per provider, with its ratio to the
    baseline's; nothing where no memory was measured (CPU runs)."""
    train = [r for r in records if r["mode"] == "fwd_bwd" and r["status"] == "ok"
             and r.get("peak_mem_mib") is not None]
    if not train:
        return []
    providers = _providers(train)
    by_key: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in train:
        by_key[rec["key"]][rec["provider"]] = rec
    lines = [
        "", "## Peak memory of one forward and backward", "",
        "MiB that one call allocates above what was allocated before it; in parentheses the "
        f"ratio to {_label(BASELINE)}'s (lower uses less).", "",
        "| config | " + " | ".join(map(_label, providers)) + " |",
        "|---|" + "---:|" * len(providers),
    ]
    for recs in by_key.values():
        base = recs.get(BASELINE, {}).get("peak_mem_mib")
        cells = []
        for p in providers:
            mem = recs.get(p, {}).get("peak_mem_mib")
            ratio = f" ({mem / base:.2f}x)" if mem is not None and base and p != BASELINE else ""
            cells.append("-" if mem is None else f"{mem:.1f}{ratio}")
        lines.append(f"| {next(iter(recs.values()))['config']} | " + " | ".join(cells) + " |")
    return lines


def _floor_table(doc: dict) -> list[str]:
    """µs per time step of every timed row and its ratio to the measured barrier-step floor
    (``benchmarks.floors``), with the launch floors, when the run has them."""
    floors = doc.get("floors")
    floor = floor_us(floors) if floors else None
    if not floor:
        return []
    attach_floors(doc["results"], floors)
    launch = floors.get("launch_us", {})
    lines = ["", "## Per time step, against the floor", "",
             f"Floors measured on this GPU (`benchmarks.floors`): a grid-barrier step of the "
             f"LSTM's grid at {' '.join(map(str, FLOOR_POINT))} {floor:.2f} µs; an empty "
             f"launch {launch.get('eager', float('nan')):.2f} µs eager, "
             f"{launch.get('graphed', float('nan')):.2f} µs graphed. The ratio is µs per step "
             "over the barrier step (1.0 would be the floor).", "",
             "| config | mode | provider | µs/step | × floor |", "|---|---|---|---:|---:|"]
    for rec in doc["results"]:
        if rec.get("floor_ratio"):
            lines.append(f"| {rec['config']} | {rec['mode']} | {_label(rec['provider'])} | "
                         f"{rec['us_per_step']:.2f} | {rec['floor_ratio']:.1f} |")
    return lines


def _kernels(records: Sequence[dict]) -> list[str]:
    """The GPU kernels torch.nn's call launched per configuration (which cuDNN algorithm)."""
    rows = [r for r in records if r["provider"] == BASELINE and r.get("kernels")]
    if not rows:
        return []
    lines = ["", f"## Kernels {_label(BASELINE)} ran", "",
             "The profiler's GPU kernels of one call, most device time first.", ""]
    lines += [f"- {r['config']} {r['mode']}: {r['kernels']}" for r in rows]
    return lines


def _failures(records: Sequence[dict]) -> list[str]:
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for rec in records:
        if rec["status"] != "ok":
            counts[(rec["provider"], rec["status"], rec["message"])] += 1
    if not counts:
        return []
    lines = ["", "## Not timed", ""]
    for (provider, status, message), n in sorted(counts.items()):
        lines.append(f"- {_label(provider)}, {status} in {n} runs: {message}")
    return lines


def compare_docs(new: dict, old: dict) -> list[dict]:
    """Per (config, mode, provider) in both runs: old and new medians, ``ratio = old / new``."""
    old_by = {(r["key"], r["provider"]): r for r in old["results"]}
    rows = []
    for rec in new["results"]:
        prev = old_by.get((rec["key"], rec["provider"]))
        if prev is None:
            continue
        both = rec["status"] == prev["status"] == "ok"
        rows.append(
            {
                "key": rec["key"],
                "provider": rec["provider"],
                "old_ms": prev["median_ms"],
                "new_ms": rec["median_ms"],
                "old_status": prev["status"],
                "new_status": rec["status"],
                "ratio": prev["median_ms"] / rec["median_ms"] if both else None,
            }
        )
    return rows


def format_comparison(rows: Sequence[dict]) -> str:
    """A text table of :func:`compare_docs` rows and the geometric mean ratio per provider."""
    if not rows:
        return "No configuration appears in both runs.\n"
    width = max(len(r["key"]) for r in rows)
    lines = [f"{'config':<{width}}  {'provider':<18} {'old ms':>10} {'new ms':>10}  old/new"]
    for r in rows:
        if r["ratio"] is None:
            tail = f"{r['old_status']} -> {r['new_status']}"
            lines.append(f"{r['key']:<{width}}  {_label(r['provider']):<18} {tail:>31}")
        else:
            lines.append(
                f"{r['key']:<{width}}  {_label(r['provider']):<18} {r['old_ms']:>10.4f} "
                f"{r['new_ms']:>10.4f}  {r['ratio']:.3f}"
            )
    lines.append("")
    for provider in _providers(rows):
        ratios = [r["ratio"] for r in rows if r["provider"] == provider and r["ratio"]]
        if ratios:
            lines.append(
                f"geometric mean old/new, {_label(provider)}: {geomean(ratios):.3f} "
                f"over {len(ratios)} (> 1: the new run is faster)"
            )
    return "\n".join(lines) + "\n"
