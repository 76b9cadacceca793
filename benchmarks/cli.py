"""Command line: ``run`` a suite, ``compare`` two result files, ``overhead`` (the CPU check)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.cases import SUITES, Case, shard, suite_cases
from benchmarks.envinfo import default_out_dir, environment, gpu_state
from benchmarks.plots import plot_heatmaps, plot_speedups
from benchmarks.report import (
    SCHEMA,
    attach_floors,
    compare_docs,
    fill_best_baselines,
    format_comparison,
    load_doc,
    markdown,
    merge_docs,
    write_csv,
    write_json,
)
from benchmarks.runner import RunSettings, run_cases
from benchmarks.timing import TimingSettings

__all__ = ["main"]

#: ``(warmup_ms, rep_ms, min_reps)`` per device; the smoke suite only checks the pipeline.
# (warm-up ms, measuring ms, fewest timed calls) per measurement: on a GPU at least 30 calls
# and 1 s each, whichever is longer
_TIMING = {"cuda": (100.0, 1000.0, 30), "cpu": (50.0, 300.0, 10), "smoke": (1.0, 3.0, 3)}
_MAX_REPS = {"cuda": 200_000}  # 1 s of 5 µs calls
#: Seconds between partial writes of the result file during a run.
_CHECKPOINT_S = 20.0


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a suite and write JSON, CSV, Markdown and PNG results")
    suites = "; ".join(f"{name}: {s.description}" for name, s in SUITES.items())
    run.add_argument("--suite", default="quick", choices=sorted(SUITES), help=suites)
    run.add_argument("--providers", help="comma list (default: the suite's); torch is always added")
    run.add_argument("--cells", help="comma list of cells to keep (lstm, gru, rnn)")
    run.add_argument("--modes", help="comma list of modes to keep (inference, forward, fwd_bwd)")
    run.add_argument("--dtypes", help="comma list of dtypes to keep")
    run.add_argument("--limit", type=int, help="run only the first N cases")
    run.add_argument("--shard", metavar="I/N", help="run shard I of N (1-based; balanced by "
                     "estimated cost); results go to SUITE-shard-I-of-N.json")
    run.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    run.add_argument(
        "--out", type=Path, help="output folder (default: benchmarks/results/<device>)"
    )
    run.add_argument("--compare", type=Path, metavar="OLD.json", help="also compare with a run")
    run.add_argument("--warmup-ms", type=float, help="warm-up budget per measurement")
    run.add_argument("--rep-ms", type=float, help="measuring budget per measurement")
    run.add_argument("--min-reps", type=int, help="fewest timed calls on the CPU")
    run.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--rounds", type=int, help="interleaved timing rounds per case (default 3)")
    run.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--list", action="store_true", help="print the cases and exit")
    run.add_argument(
        "--interpret", action="store_true", help="run Triton kernels in the interpreter (CPU)"
    )
    rep = sub.add_parser("report", help="rewrite a result file's CSV, Markdown and plots; "
                         "several files (shards, reruns on one GPU model) are merged first")
    rep.add_argument("result", type=Path, metavar="RESULT.json", nargs="+")
    rep.add_argument("--out", type=Path, metavar="MERGED.json",
                     help="where a merge is written (default: SUITE-merged.json beside the "
                     "first file)")
    rep.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    readme = sub.add_parser("readme", help="rewrite README.md's performance section from "
                            "result files (merged)")
    readme.add_argument("result", type=Path, metavar="RESULT.json", nargs="+")
    readme.add_argument("--readme", type=Path, default=Path(__file__).parent.parent / "README.md")
    cmp = sub.add_parser("compare", help="per-configuration ratios of two result files")
    cmp.add_argument("new", type=Path, metavar="NEW.json")
    cmp.add_argument("old", type=Path, metavar="OLD.json")
    sub.add_parser("overhead", help="the CPU overhead check; options: overhead --help")
    return parser


def _select(args: argparse.Namespace) -> list[Case]:
    cases = suite_cases(args.suite)
    for attr, values in (("cell", args.cells), ("mode", args.modes), ("dtype", args.dtypes)):
        keep = _csv(values)
        if keep:
            cases = [c for c in cases if getattr(c, attr) in keep]
    if args.shard:
        index, count = _shard_spec(args.shard)
        cases = shard(cases, index, count)
    return cases[: args.limit] if args.limit is not None else cases


def _shard_spec(text: str) -> tuple[int, int]:
    try:
        index, count = (int(t) for t in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard takes I/N, e.g. 3/40, got {text!r}") from None
    if not 1 <= index <= count:
        raise SystemExit(f"--shard I/N needs 1 <= I <= N, got {text!r}")
    return index, count


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _write_outputs(doc: dict, json_path: Path, plot: bool) -> None:
    """CSV, Markdown and plots beside ``json_path``; prints the table."""
    stem, out_dir = json_path.stem, json_path.parent
    fill_best_baselines(doc["results"])
    floors = out_dir / "floors.json"
    if floors.is_file():  # benchmarks.floors ran on this machine: each row against its floor
        doc["floors"] = json.loads(floors.read_text())
        attach_floors(doc["results"], doc["floors"])
    write_csv(doc["results"], out_dir / f"{stem}.csv")
    table = markdown(doc)
    (out_dir / f"{stem}.md").write_text(table)
    plots = ([*plot_speedups(doc["results"], out_dir, stem),
              *plot_heatmaps(doc["results"], out_dir, stem)] if plot else [])
    print(table)
    partial = "" if doc.get("complete") else " (incomplete run)"
    print(f"results{partial}: {json_path} (+ .csv, .md, {len(plots)} plots)")


def _run(args: argparse.Namespace) -> int:
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before fastrnn or triton is imported
    cases = _select(args)
    if args.list:
        print("\n".join(c.key + (f"  ({c.label})" if c.label else "") for c in cases))
        return 0
    suite = SUITES[args.suite]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if suite.needs_cuda and device.type != "cuda" and args.device is None:
        print(
            f"the {args.suite} suite is sized for a GPU and none is visible; use --suite cpu, "
            "or --device cpu to run it on the CPU anyway",
            file=sys.stderr,
        )
        return 2
    warmup, rep, min_reps = _TIMING["smoke" if args.suite == "smoke" else device.type]
    timing = TimingSettings(
        warmup_ms=args.warmup_ms if args.warmup_ms is not None else warmup,
        rep_ms=args.rep_ms if args.rep_ms is not None else rep,
        min_reps=args.min_reps if args.min_reps is not None else min_reps,
        max_reps=_MAX_REPS.get(device.type, TimingSettings.max_reps),
    )
    env = environment(device)
    out_dir = args.out or default_out_dir(env)
    out_dir.mkdir(parents=True, exist_ok=True)
    providers = _csv(args.providers) or list(suite.providers)
    doc = {
        "schema": SCHEMA,
        "suite": args.suite,
        "complete": False,
        "env": env,
        "settings": {**timing.__dict__, "seed": args.seed, "providers": providers},
        "results": [],
    }
    stem = args.suite
    if args.shard:
        index, count = _shard_spec(args.shard)
        stem = f"{args.suite}-shard-{index:02d}-of-{count:02d}"
        doc["shard"] = [index, count]
    json_path = out_dir / f"{stem}.json"

    finished: list[dict] = []
    last_save = time.monotonic()

    def checkpoint(records: list[dict]) -> None:
        """Keep the finished cases; write them out now and then, for a run killed outright."""
        nonlocal finished, last_save
        finished = records
        if time.monotonic() - last_save > _CHECKPOINT_S:
            write_json({**doc, "results": records}, json_path)
            last_save = time.monotonic()

    rounds = args.rounds or 3
    settings = RunSettings(device=device, timing=timing, seed=args.seed, rounds=rounds)
    signal.signal(signal.SIGTERM, _interrupt)  # a time cap's SIGTERM ends the run like Ctrl-C
    try:
        doc["results"] = run_cases(cases, providers, settings, not args.quiet, on_case=checkpoint)
        doc["complete"] = True
    except KeyboardInterrupt:
        print("interrupted: writing the cases finished so far", file=sys.stderr)
        doc["results"] = finished
    if device.type == "cuda":
        doc["env"]["gpu_state_after"] = gpu_state()
    fill_best_baselines(doc["results"])
    write_json(doc, json_path)
    _write_outputs(doc, json_path, plot=not args.no_plot)
    if args.compare:
        print(format_comparison(compare_docs(doc, load_doc(args.compare))))
    return 0 if doc["complete"] else 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["overhead"]:
        from benchmarks.cpu_overhead import main as overhead

        return overhead(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "report":
        if len(args.result) == 1 and args.out is None:
            _write_outputs(load_doc(args.result[0]), args.result[0], plot=not args.no_plot)
            return 0
        doc = merge_docs([load_doc(p) for p in args.result])
        path = args.out or args.result[0].parent / f"{doc['suite']}-merged.json"
        fill_best_baselines(doc["results"])
        write_json(doc, path)
        _write_outputs(doc, path, plot=not args.no_plot)
    elif args.command == "readme":
        from benchmarks.readme import main as readme_main

        return readme_main(args.result, args.readme)
    elif args.command == "compare":
        print(format_comparison(compare_docs(load_doc(args.new), load_doc(args.old))), end="")
    return 0
