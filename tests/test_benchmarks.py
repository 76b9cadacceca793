"""The benchmark suite's pipeline on the CPU at tiny sizes: files, tables, statistics, failures.

No timing assertions: only that the numbers are produced, well-formed and computed right.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # plain `pytest` does not put the repository root on the path
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import cpu_overhead, envinfo, report, runner, workloads  # noqa: E402
from benchmarks.cases import BASELINE, SUITES, Case, suite_cases  # noqa: E402
from benchmarks.cli import main  # noqa: E402
from benchmarks.timing import TimingSettings  # noqa: E402

TINY = TimingSettings(warmup_ms=0.0, rep_ms=1.0, min_reps=2, max_reps=5)
STATUSES = {"ok", "mismatch", "unavailable", "error", "oom"}


@pytest.fixture(autouse=True)
def _one_thread():
    """One CPU thread: tiny ops on a busy machine stall on thread hand-offs, not on work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Register a provider with wrong weights and one that is unavailable; log their calls."""
    log: list[str] = []

    def wrong(case: Case, base: torch.nn.Module) -> torch.nn.Module:
        module = copy.deepcopy(base)
        with torch.no_grad():
            module.weight_hh_l0.mul_(1.5)
        module.register_forward_hook(lambda *_: log.append(case.key))
        return module

    def missing(case: Case, base: torch.nn.Module) -> torch.nn.Module:
        raise workloads.ProviderUnavailable("no kernel for this case")

    monkeypatch.setitem(workloads.PROVIDERS, "wrong", wrong)
    monkeypatch.setitem(workloads.PROVIDERS, "missing", missing)
    return log


def test_geomean_known_values():
    assert report.geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert report.geomean([2.0, 8.0, 4.0]) == pytest.approx(4.0)
    assert report.geomean([0.5, 2.0]) == pytest.approx(1.0)
    assert report.geomean([3.0]) == pytest.approx(3.0)
    assert report.geomean([]) is None
    with pytest.raises(ValueError):
        report.geomean([1.0, 0.0])


def test_speedup_summary_is_geometric_mean_per_mode():
    rows = [{"provider": "triton", "mode": "fwd_bwd", "speedup": s} for s in (2.0, 0.5, 4.0)] + [
        {"provider": "triton", "mode": "inference", "speedup": 9.0},
        {"provider": "reference", "mode": "inference", "speedup": None},
        {"provider": BASELINE, "mode": "inference", "speedup": 1.0},
    ]
    summary = report.speedup_summary(rows)
    assert summary["triton"]["fwd_bwd"] == (pytest.approx(2 ** (2 / 3)), 3)
    assert summary["triton"]["inference"] == (pytest.approx(9.0), 1)
    assert summary["triton"]["all"] == (pytest.approx((2 * 0.5 * 4 * 9) ** 0.25), 4)
    assert "reference" not in summary and BASELINE not in summary


def test_compare_outputs_tolerance():
    ref = {"y": torch.linspace(-1, 1, 50, dtype=torch.float64)}
    assert runner.compare_outputs({"y": ref["y"].float()}, ref, "float32")[0]
    passed, ratio, errors = runner.compare_outputs({"y": ref["y"] + 0.1}, ref, "float32")
    assert not passed and ratio > 1 and errors["y"] == pytest.approx(0.1)
    nan = ref["y"].clone()
    nan[3] = float("nan")
    assert not runner.compare_outputs({"y": nan}, ref, "float32")[0]
    assert not runner.compare_outputs({}, ref, "float32")[0]
    assert not runner.compare_outputs({"y": ref["y"][:10]}, ref, "float32")[0]
    # what fails in float32 passes in bfloat16's looser tolerance
    assert runner.compare_outputs({"y": ref["y"] + 0.01}, ref, "bfloat16")[0]


def test_suites_hold_the_published_points_and_grid():
    quick = {c.key for c in suite_cases("quick")}
    assert "lstm T=100 B=64 I=512 H=512 float32 L=1 fwd_bwd" in quick
    assert "lstm T=1024 B=16 I=768 H=768 bfloat16 L=1 inference" in quick
    assert "lstm T=100 B=1 I=1024 H=1024 float32 L=1 inference" in quick
    assert "lstm T=1024 B=16 I=512 H=512 bfloat16 L=1 bidir fwd_bwd" in quick
    for h in (256, 512, 768):  # the forward+backward targets in bfloat16
        assert f"lstm T=1024 B=16 I={h} H={h} bfloat16 L=1 fwd_bwd" in quick
    for cell in ("gru", "rnn"):
        for h in (256, 512, 768):
            assert f"{cell} T=1024 B=16 I={h} H={h} bfloat16 L=1 fwd_bwd" in quick
        assert f"{cell} T=100 B=64 I=512 H=512 float32 L=1 fwd_bwd" in quick
    latency = {c.key for c in suite_cases("latency")}
    assert {c.B for c in suite_cases("latency")} == {1} and len(latency) == 8
    assert "lstm T=100 B=1 I=1024 H=1024 float32 L=1 inference" in latency
    assert {c.cell for c in suite_cases("quick")} == {"lstm", "gru", "rnn"}
    cpu = suite_cases("cpu")
    assert all(c.T <= 100 and c.B <= 32 and c.H <= 128 for c in cpu)
    assert "triton" not in SUITES["cpu"].providers
    assert SUITES["quick"].providers == ("triton", "torch")
    full = suite_cases("full")
    assert len({c.key for c in full}) == len(full)
    assert {(c.B, c.H, c.T) for c in full} >= {
        (b, h, t) for b in (1, 16, 64, 256) for h in (128, 256, 512, 1024) for t in (100, 1000)
    }
    assert {c.dtype for c in full} == {"float32", "bfloat16", "float16"}
    assert any(c.packed for c in full) and any(c.bidirectional for c in full)
    assert any(c.layers == 2 for c in full)


def test_tiles_suite_is_beyond_the_sms():
    """Every case of the tiles suite has more split tiles than an H100's 132 SMs, each cell in
    both headline modes."""
    cases = suite_cases("tiles")
    assert all(-(-c.B // 16) * -(-c.H // 16) > 132 for c in cases)
    assert {(c.cell, c.mode) for c in cases} == {(cell, mode) for cell in ("lstm", "gru", "rnn")
                                                  for mode in ("inference", "fwd_bwd")}
    assert "torch+graph" in SUITES["tiles"].providers


def test_pipeline_writes_wellformed_results(tmp_path: Path, calls: list[str], capsys):
    out = tmp_path / "res"
    args = ["run", "--suite", "smoke", "--out", str(out), "--quiet", "--cells", "lstm,gru",
            "--providers", "reference,auto,wrong,missing",
            "--warmup-ms", "0", "--rep-ms", "1", "--min-reps", "2", "--rounds", "1"]  # fmt: skip
    assert main(args) == 0
    doc = json.loads((out / "smoke.json").read_text())  # strict JSON: no NaN/Infinity
    assert doc["schema"] == report.SCHEMA and doc["complete"] is True
    assert doc["env"]["device"] == "cpu" and doc["env"]["torch"] == torch.__version__
    records = doc["results"]
    cases = [c for c in suite_cases("smoke") if c.cell in ("lstm", "gru")]
    assert len(records) == len(cases) * 5  # torch.nn is always added
    by = {(r["key"], r["provider"]): r for r in records}
    for case in cases:
        base = by[(case.key, BASELINE)]
        assert base["status"] == "ok" and base["speedup"] == pytest.approx(1.0)
        assert 0 < base["p20_ms"] <= base["median_ms"] <= base["p80_ms"]
        assert base["err_ratio"] <= 1 and base["oracle"] == "torch float64 cpu"
        if case.mode == "fwd_bwd":
            assert set(base["errors"]) >= {"y", "h_n", "dx"}
        for provider in ("reference", "auto"):  # fastrnn agrees with torch.nn
            rec = by[(case.key, provider)]
            assert rec["status"] == "ok", rec["message"]
            assert rec["speedup"] == pytest.approx(base["median_ms"] / rec["median_ms"])
        # the wrong provider is caught by the check and never timed: one call per case
        wrong = by[(case.key, "wrong")]
        assert wrong["status"] == "mismatch" and wrong["median_ms"] is None
        assert wrong["max_abs_err"] > 1e-3 and wrong["speedup"] is None
        assert by[(case.key, "missing")]["status"] == "unavailable"
    assert sorted(calls) == sorted(c.key for c in cases)
    assert all(r["status"] in STATUSES for r in records)

    with (out / "smoke.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records) and rows[0].keys() >= {"key", "provider", "median_ms"}

    table = (out / "smoke.md").read_text()
    assert (
        "| config | mode | torch.nn | fastrnn reference | fastrnn auto | wrong | missing |" in table
    )
    assert "mismatch (err" in table and "Geometric mean of speedups" in table
    geo = report.geomean(r["speedup"] for r in records if r["provider"] == "reference")
    assert f"{geo:.2f}x (n={len(cases)})" in table
    assert table in capsys.readouterr().out

    pngs = sorted(out.glob("smoke-*.png"))
    assert [p.name for p in pngs] == [
        "smoke-forward.png",
        "smoke-fwd_bwd.png",
        "smoke-inference.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_interrupted_run_keeps_finished_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from benchmarks import cli

    def run_then_stop(cases, providers, settings, progress, on_case):  # noqa: ANN001
        done = runner.run_case(cases[0], [BASELINE], settings)
        on_case(done)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_cases", run_then_stop)
    args = ["run", "--suite", "smoke", "--out", str(tmp_path), "--quiet", "--no-plot"]
    assert main([*args, "--rep-ms", "1"]) == 130
    doc = report.load_doc(tmp_path / "smoke.json")
    assert doc["complete"] is False and [r["key"] for r in doc["results"]] == [
        suite_cases("smoke")[0].key
    ]
    assert "**Incomplete run**" in (tmp_path / "smoke.md").read_text()


def _doc(medians: dict[tuple[str, str], float | None]) -> dict:
    results = [
        {"key": k, "provider": p, "median_ms": m, "status": "ok" if m else "mismatch"}
        for (k, p), m in medians.items()
    ]
    return {"schema": report.SCHEMA, "results": results}


def test_compare_ratios(tmp_path: Path, capsys):
    old = _doc({("a", "triton"): 2.0, ("b", "triton"): 3.0, ("c", "triton"): 1.0})
    new = _doc({("a", "triton"): 1.0, ("b", "triton"): 6.0, ("c", "triton"): None})
    rows = report.compare_docs(new, old)
    assert [r["ratio"] for r in rows] == [pytest.approx(2.0), pytest.approx(0.5), None]
    for name, doc in (("new.json", new), ("old.json", old)):
        report.write_json(doc, tmp_path / name)
    assert main(["compare", str(tmp_path / "new.json"), str(tmp_path / "old.json")]) == 0
    printed = capsys.readouterr().out
    assert "geometric mean old/new, fastrnn triton: 1.000 over 2" in printed
    assert "ok -> mismatch" in printed
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a benchmark result file"):
        report.load_doc(tmp_path / "other.json")


def test_markdown_tables_training_memory():
    """GPU runs record each training call's peak memory: a table with the ratio to the
    baseline's; CPU runs (no memory measured) get none."""
    def rec(key, provider, mode, mem):
        return {"key": key, "config": key, "label": "", "provider": provider, "mode": mode,
                "status": "ok", "median_ms": 1.0, "speedup": 1.0, "peak_mem_mib": mem}

    records = [rec("a", BASELINE, "fwd_bwd", 200.0), rec("a", "triton", "fwd_bwd", 150.0),
               rec("b", BASELINE, "inference", 80.0), rec("b", "triton", "inference", 40.0)]
    env = {"cpu_threads": 1, "cpu": "x", "timestamp": "now", "gpu": "some GPU"}
    text = report.markdown({"suite": "quick", "env": env, "results": records})
    assert "## Peak memory of one forward and backward" in text
    assert "| a | 200.0 | 150.0 (0.75x) |" in text
    assert "| b |" not in text.split("## Peak memory")[1]  # inference rows stay out
    for r in records:
        r["peak_mem_mib"] = None
    text = report.markdown({"suite": "quick", "env": env, "results": records})
    assert "## Peak memory" not in text


def test_triton_provider_under_interpreter():
    """Under TRITON_INTERPRET=1 (the test suite sets it) the triton provider runs on the CPU."""
    case = Case("lstm", T=4, B=2, I=3, H=4, mode="fwd_bwd")
    settings = runner.RunSettings(timing=TINY)
    rec = runner.run_case(case, [BASELINE, "triton"], settings)[1]
    if rec["status"] == "unavailable":
        pytest.skip(f"triton provider unavailable here: {rec['message']}")
    assert rec["status"] == "ok", rec["message"]
    assert rec["backend"] == "triton" and rec["err_ratio"] <= 1 and rec["median_ms"] > 0


def test_registered_mode_runs_and_a_failing_oracle_is_reported(monkeypatch: pytest.MonkeyPatch):
    """A new mode (the hook for an end-to-end training step) is checked and timed like the rest."""

    def loss_step(case: Case, module: torch.nn.Module, inputs: workloads.Inputs):
        if next(module.parameters()).dtype == torch.float64 and case.H == 5:
            raise ValueError("no float64 here")
        return lambda: {"loss": module(inputs.x)[0].square().mean()}

    monkeypatch.setitem(workloads.MODE_BUILDERS, "loss", loss_step)
    settings = runner.RunSettings(timing=TINY)
    case = Case("gru", T=3, B=2, I=3, H=4, mode="loss")
    ok = runner.run_case(case, [BASELINE, "reference"], settings)
    assert [r["status"] for r in ok] == ["ok", "ok"], [r["message"] for r in ok]
    assert set(ok[1]["errors"]) == {"loss"} and ok[1]["speedup"] > 0
    broken = runner.run_case(Case("gru", T=3, B=2, I=3, H=5, mode="loss"), [BASELINE], settings)
    assert broken[0]["status"] == "error" and broken[0]["median_ms"] is None
    assert "oracle (torch float64 cpu) failed: ValueError" in broken[0]["message"]


def test_overhead_table_verdict():
    ok = {"status": "ok", "message": ""}
    results = {
        BASELINE: {**ok, "median_ms": 2.0, "ratio": 1.0},
        "auto": {**ok, "median_ms": 2.2, "ratio": 1.1},
        "reference": {"status": "unavailable", "message": "not built"},
    }
    table = cpu_overhead.format_table(results, rounds=3)
    assert "target <= 1.05: MISSED" in table and "not built" in table
    results["auto"]["ratio"] = 1.01
    assert "target <= 1.05: met" in cpu_overhead.format_table(results, rounds=3)


def test_result_folder_names():
    assert envinfo.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    gpu = envinfo.default_out_dir({"gpu": "NVIDIA H100 80GB HBM3", "cpu": "x"})
    assert gpu == REPO_ROOT / "benchmarks" / "results" / "nvidia-h100-80gb-hbm3"
    cpu = envinfo.default_out_dir({"cpu": "AMD EPYC 7B13"})
    assert cpu.name == "cpu-amd-epyc-7b13"


def test_module_entry_point_lists_cases():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--suite", "cpu", "--list"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert out.stdout.splitlines() == [c.key for c in suite_cases("cpu")]


def test_compile_time_child_and_table():
    """The compile-time benchmark's child process runs (a tiny T), and the table marks the
    default backend's verdict against torch.nn."""
    from benchmarks import compile_time

    result = compile_time._run_child("auto", 2, 1, timeout=300)
    assert result["status"] == "ok", result
    assert result["first_s"] > 0 and result["steady_ms"] > 0 and result["eager_ms"] > 0
    fake = {
        ("torch", 20): {"status": "ok", "rounds": 3, "first_s": 2.0, "first_range": (1.9, 2.2),
                        "ratio": 1.0, "ratio_range": (1.0, 1.0), "steady_ms": 5.0,
                        "eager_ms": 6.0},
        ("auto", 20): {"status": "ok", "rounds": 3, "first_s": 2.5, "first_range": (2.4, 2.7),
                       "ratio": 1.25, "ratio_range": (1.2, 1.3), "steady_ms": 5.1,
                       "eager_ms": 6.0},
        ("reference", 1000): {"status": "timeout", "message": "over 900 s"},
    }
    table = compile_time.format_table(fake)
    assert "1.25x" in table and "target: met" in table and "timeout" in table


def test_timing_rounds_interleave_and_flag_noisy_rows(monkeypatch: pytest.MonkeyPatch):
    """Rounds time the providers in alternating order; the median over rounds, its spread,
    the median of per-round ratios, and no ratio where the rounds disagree."""
    from benchmarks.timing import Timing

    times = {BASELINE: [1.0, 1.1, 1.0], "fast": [0.5, 0.5, 0.55], "noisy": [2.0, 6.0, 2.0]}
    order = []

    def fake(run, device, settings):
        order.append(run)
        t = times[run].pop(0)
        return Timing(t, 0.0, 0.0, 4, samples=(t, t, t, 2 * t))

    monkeypatch.setattr(runner, "time_callable", fake)
    records = [{"provider": p, "status": "ok", "_run": p, "speedup": None, "noisy": False,
                "T": 10} for p in (BASELINE, "fast", "noisy")]
    runner._time_in_rounds(records, runner.RunSettings(rounds=3))
    assert order == [BASELINE, "fast", "noisy", "noisy", "fast", BASELINE,
                     BASELINE, "fast", "noisy"]
    by = {r["provider"]: r for r in records}
    assert by["fast"]["median_ms"] == 0.5 and by["fast"]["rounds"] == 3
    assert by["fast"]["speedup"] == pytest.approx(2.0) and not by["fast"]["noisy"]
    assert by["noisy"]["noisy"] and by["noisy"]["speedup"] is None
    assert by["noisy"]["spread"] == pytest.approx(2.0)
    # every timed call of every round: counted, and its percentiles
    assert by["fast"]["reps"] == 12 and by["fast"]["us_per_step"] == pytest.approx(50.0)
    assert by["fast"]["p10_ms"] == pytest.approx(0.5)
    assert by["fast"]["p90_ms"] == pytest.approx(1.0, abs=0.11)
    assert "noisy: spread 200%" in report._cell({**by["noisy"], "backend": None})
    assert all("_run" not in r for r in records)


def test_cpu_runs_take_three_rounds_by_default(tmp_path: Path):
    out = tmp_path / "res"
    assert main(["run", "--suite", "smoke", "--out", str(out), "--quiet", "--cells", "rnn",
                 "--modes", "inference", "--providers", "reference", "--warmup-ms", "0",
                 "--rep-ms", "1", "--min-reps", "2", "--no-plot"]) == 0
    records = json.loads((out / "smoke.json").read_text())["results"]
    assert records and all(r["rounds"] == 3 and r["spread"] >= 0 for r in records
                           if r["status"] == "ok")


def test_cells_group_runs_and_reports(monkeypatch: pytest.MonkeyPatch):
    """The cells benchmark checks outputs, times both providers in rounds and prints a row per
    point (CPU: no graphed column)."""
    from benchmarks import cells

    results = cells.measure(cells=("GRUCell", "LSTMCell"), batches=(2,), hidden=(8,),
                            dtypes=(torch.float32,), rounds=2, timing=TINY)
    assert set(results) == {("GRUCell", 2, 8, "float32"), ("LSTMCell", 2, 8, "float32")}
    for res in results.values():
        assert res["status"] == "ok" and res["fastrnn"]["us"] > 0 and res["torch"]["host_us"] > 0
    table = cells.format_table(results)
    assert "GRUCell" in table and "host us" in table and table.count("\n") >= 3


def test_layernorm_group_checks_and_times_every_provider():
    """The LayerNorm LSTM benchmark: its composite computes LayerNormLSTM(cell_norm="state")
    (checked before timing), every provider is timed, a row per point."""
    import fastrnn
    from benchmarks import layernorm

    m = fastrnn.LayerNormLSTM(5, 6, cell_norm="state")
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    composite = layernorm.Composite(5, 6)
    composite.load_from(m)
    x = torch.randn(4, 3, 5)
    torch.testing.assert_close(composite(x), m(x)[0])
    results = layernorm.measure(T=3, batch=2, hidden=(8,), dtype=torch.float32, rounds=2,
                                timing=TINY, compiled=False)
    res = results[(3, 2, 8, "float32")]
    assert res["status"] == "ok"
    assert all(res[k]["ms"] > 0 for k in ("composite", "fastrnn reference", "fastrnn"))
    table = layernorm.format_table(results)
    assert "composite" in table and "vs eager" in table and table.count("\n") >= 2


def test_environment_names_the_exact_tree_and_the_variables(tmp_path: Path):
    """Provenance: the commit, whether tracked files differ and the hash of that difference;
    the environment variables that change what is measured."""
    import subprocess

    from benchmarks import envinfo

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    clean = envinfo.source_state(tmp_path)
    assert len(clean["git_commit"]) == 40 and clean["git_dirty"] is False
    assert clean["git_diff_sha256"] is None
    (tmp_path / "a.txt").write_text("two\n")
    dirty = envinfo.source_state(tmp_path)
    assert dirty["git_dirty"] is True and len(dirty["git_diff_sha256"]) == 64
    assert envinfo.source_state(tmp_path) == dirty  # the same diff, the same hash
    (tmp_path / "a.txt").write_text("three\n")
    assert envinfo.source_state(tmp_path)["git_diff_sha256"] != dirty["git_diff_sha256"]
    seen = envinfo.behaviour_variables({"CUDA_LAUNCH_BLOCKING": "1", "HOME": "/x",
                                        "TORCH_CUDNN_V8_API_LRU_CACHE_LIMIT": "0",
                                        "NVIDIA_TF32_OVERRIDE": "0", "TRITON_INTERPRET": "1"})
    assert seen == {"CUDA_LAUNCH_BLOCKING": "1", "NVIDIA_TF32_OVERRIDE": "0",
                    "TORCH_CUDNN_V8_API_LRU_CACHE_LIMIT": "0", "TRITON_INTERPRET": "1"}
    env = envinfo.environment(torch.device("cpu"))
    assert {"git_commit", "git_dirty", "git_diff_sha256", "variables"} <= set(env)


def _rec(provider: str, dtype: str, ms: float | None, mode: str = "fwd_bwd", **extra) -> dict:
    case = Case("lstm", 100, 16, 64, 64, dtype=dtype, mode=mode)
    return {**case.to_dict(), "provider": provider, "status": "ok" if ms else "error",
            "median_ms": ms, "noisy": False, "speedup": None, "backend": None, "message": "",
            **extra}


def test_best_baseline_is_the_fastest_eager_or_graphed_in_either_half_dtype():
    rows = [_rec("torch", "bfloat16", 4.0), _rec("torch+graph", "bfloat16", 3.0),
            _rec("torch", "float16", 2.0), _rec("torch+graph", "float16", None),
            _rec("triton", "bfloat16", 1.0), _rec("triton", "float16", 4.0),
            _rec("torch", "float32", 8.0), _rec("triton", "float32", 2.0),
            _rec("triton", "bfloat16", 1.0, mode="inference"),
            _rec("flashrnn-cuda", "bfloat16", 2.5, noisy=True, spread=0.4)]
    report.fill_best_baselines(rows)
    assert rows[4]["best_baseline"] == "torch float16" and rows[4]["vs_best"] == 2.0
    assert rows[5]["vs_best"] == 0.5  # a loss is published as one
    assert rows[7]["best_baseline"] == "torch float32" and rows[7]["vs_best"] == 4.0
    assert rows[8]["best_baseline"] is None and rows[8]["vs_best"] is None  # no baseline timed
    assert rows[9]["best_baseline"] == "torch float16" and rows[9]["vs_best"] is None  # noisy
    assert "flashrnn-cuda" in report.BASELINES  # FlashRNN is a baseline too
    doc = {"suite": "baselines", "env": envinfo.environment(torch.device("cpu")),
           "results": rows, "complete": True}
    text = report.markdown(doc)
    assert "## Against the best baseline" in text
    assert "bfloat16 L=1 | fwd_bwd | torch.nn float16 | 2.000 | 2.00x |" in text
    assert "float16 L=1 | fwd_bwd | torch.nn float16 | 2.000 | 0.50x |" in text
    assert "torch.nn graphed" in text and "FlashRNN cuda" in text


def test_graphed_and_flashrnn_providers(monkeypatch: pytest.MonkeyPatch):
    """``+graph`` captures any provider's call (CUDA only: unavailable here, saying why);
    FlashRNN's vanilla backend runs on the CPU on the converted weights and passes the oracle;
    shapes FlashRNN does not take are unavailable with the reason."""
    pytest.importorskip("flashrnn")
    from benchmarks.peers import kernel_names, split_provider

    assert split_provider("triton+graph") == ("triton", True)
    assert workloads.label("torch+graph") == "torch.nn graphed"
    assert workloads.label("flashrnn-cuda_fused") == "FlashRNN cuda_fused"
    s = runner.RunSettings(timing=TINY)
    for cell in ("lstm", "gru", "rnn"):
        recs = runner.run_case(Case(cell, 5, 3, 4, 6, mode="fwd_bwd"),
                               [BASELINE, "flashrnn-vanilla", "torch+graph"], s)
        by = {r["provider"]: r for r in recs}
        assert by["flashrnn-vanilla"]["status"] == "ok", by["flashrnn-vanilla"]["message"]
        assert by["flashrnn-vanilla"]["err_ratio"] <= 1
        assert by["torch+graph"]["status"] == "unavailable"
        assert "CUDA graphs need a CUDA device" in by["torch+graph"]["message"]
        assert by[BASELINE]["kernels"] is None  # the profiler's kernel names: CUDA only
    flat = runner.run_case(Case("lstm", 5, 3, 4, 6), ["torch-flat"], s)[-1]
    assert flat["status"] == "unavailable" and "needs CUDA and cuDNN" in flat["message"]
    assert "torch-flat" in report.BASELINES
    deep = runner.run_case(Case("lstm", 5, 3, 4, 6, layers=2), ["flashrnn-vanilla"], s)
    assert deep[-1]["status"] == "unavailable" and "one layer" in deep[-1]["message"]
    assert kernel_names(lambda: None, torch.device("cpu")) is None
    cases = suite_cases("baselines")
    assert {(c.cell, c.dtype) for c in cases} == {(c, d) for c in ("lstm", "gru", "rnn")
                                                 for d in ("bfloat16", "float16")}
    assert {"torch+graph", "triton+graph", "flashrnn-cuda_fused"} <= set(
        SUITES["baselines"].providers)


def test_floor_kernel_ping_pongs_the_state_and_compiles_for_sm90():
    """The barrier-step floor's kernel: each step copies the program's slice of h into the
    other buffer after reading the whole row (interpreter, one program); with the grid
    barrier it compiles for an H100 without spills, its barrier fenced."""
    from benchmarks import floors

    buf = torch.zeros(2, 3, 37)
    buf[0] = torch.randn(3, 37)
    start = buf[0].clone()
    floors.ping_pong(buf, 5, 16, 64, (1, 1))
    assert torch.equal(buf[1], start) and torch.equal(buf[0], start)
    assert floors.barrier_grid("lstm", 16, 768, torch.bfloat16) == ((1, 48), 16, 16)
    key = ("benchmarks.floors", "ping_pong_kernel", "bf16",
           (("BARRIER", True), ("BLOCK_B", 16), ("BLOCK_H", 16), ("BLOCK_K", 64)),
           (("num_warps", 4),), ("H",))
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from compile_worker import compile_config; "
            f"print(json.dumps(compile_config({key!r})))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)],
                         env={**os.environ, "TRITON_INTERPRET": "0"}, cwd=REPO_ROOT, check=True,
                         capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert "error" not in got, got
    assert got["STACK"] == 0 and got["LOCAL"] == 0
    assert got["barrier"]["arrive"] >= 1 and got["barrier"]["release"]
    assert got["barrier"]["acquire"]


def test_rows_against_the_measured_floor(tmp_path: Path):
    """A floors.json beside a result: every timed row's µs per step over the barrier step."""
    rows = [_rec("torch", "bfloat16", 4.0, us_per_step=40.0), _rec("triton", "bfloat16", 1.0,
                                                                   us_per_step=10.0)]
    floors = {"barrier_step_us": {"lstm 16 768 bfloat16": {"us": 2.0, "programs": 48}},
              "launch_us": {"eager": 2.5, "graphed": 1.2}}
    report.attach_floors(rows, floors)
    assert [r["floor_ratio"] for r in rows] == [20.0, 5.0]
    doc = {"schema": report.SCHEMA, "suite": "quick", "results": rows, "complete": True,
           "env": envinfo.environment(torch.device("cpu"))}
    (tmp_path / "quick.json").write_text(json.dumps(doc))
    (tmp_path / "floors.json").write_text(json.dumps(floors))
    assert main(["report", str(tmp_path / "quick.json"), "--no-plot"]) == 0
    text = (tmp_path / "quick.md").read_text()
    assert "## Per time step, against the floor" in text and "2.00 µs" in text
    assert "| fastrnn triton | 10.00 | 5.0 |" in text


def test_grid_covers_every_regime_and_shards_partition_it():
    from benchmarks.cases import GRID_MEMORY_BYTES, cost, shard

    grid = suite_cases("grid")
    keys = [c.key for c in grid]
    assert len(keys) == len(set(keys))
    assert {(c.dtype, c.tf32) for c in grid} == {("bfloat16", None), ("float16", None),
                                                 ("float32", True), ("float32", False)}
    assert {c.T for c in grid} == {100, 1024, 4096} and {c.layers for c in grid} == {1, 2, 4}
    assert any(c.B == 256 and c.H == 2048 for c in grid)  # more programs than SMs
    assert any(c.B == 64 and c.H >= 1024 and c.mode == "fwd_bwd" for c in grid)
    assert {c.cell for c in grid if c.proj} == {"lstm"}
    assert any(c.packed for c in grid) and any(c.bidirectional for c in grid)
    gates = {"lstm": 5, "gru": 4, "rnn": 2}
    assert all(c.T * c.B * c.H * gates[c.cell] * c.layers * 4 <= GRID_MEMORY_BYTES
               for c in grid)
    assert not any(c.T == 4096 and c.B == 256 and c.H == 2048 and c.cell == "lstm"
                   for c in grid)  # 43 GB of activations: pruned
    shards = [shard(grid, i, 7) for i in range(1, 8)]
    assert sorted(k for s in shards for k in (c.key for c in s)) == sorted(keys)
    loads = [sum(map(cost, s)) for s in shards]
    assert max(loads) - min(loads) <= max(map(cost, grid))  # greedy balance
    assert shard(grid, 3, 7) == shards[2]  # deterministic
    with pytest.raises(ValueError, match="shard must be i/n"):
        shard(grid, 0, 7)
    with pytest.raises(ValueError, match="tf32 is a float32 setting"):
        Case("lstm", 10, 2, 3, 4, dtype="bfloat16", tf32=True)
    assert Case("lstm", 10, 2, 3, 4, tf32=False, proj=2).key.endswith("P=2 ieee fwd_bwd")


def test_shards_run_and_merge_into_one_report(tmp_path: Path, monkeypatch, capsys):
    """A shard writes SUITE-shard-I-of-N.json; ``report`` merges shards and reruns of one GPU
    model (newest record per case and provider wins) and refuses to mix machines."""
    out = tmp_path / "r"
    args = ["run", "--suite", "smoke", "--out", str(out), "--quiet", "--no-plot",
            "--providers", "reference", "--warmup-ms", "0", "--rep-ms", "1", "--min-reps", "2",
            "--rounds", "1", "--cells", "rnn"]
    assert main([*args, "--shard", "1/2"]) == 0 and main([*args, "--shard", "2/2"]) == 0
    first = json.loads((out / "smoke-shard-01-of-02.json").read_text())
    second = json.loads((out / "smoke-shard-02-of-02.json").read_text())
    assert first["shard"] == [1, 2] and first["results"] and second["results"]
    assert not {r["key"] for r in first["results"]} & {r["key"] for r in second["results"]}
    rerun = copy.deepcopy(second)
    rerun["env"]["timestamp"] = "9999-01-01T00:00:00+00:00"
    for r in rerun["results"]:
        r["median_ms"] = 123.0
    (out / "rerun.json").write_text(json.dumps(rerun))
    merged_path = out / "merged.json"
    assert main(["report", str(out / "smoke-shard-01-of-02.json"),
                 str(out / "smoke-shard-02-of-02.json"), str(out / "rerun.json"),
                 "--out", str(merged_path), "--no-plot"]) == 0
    merged = json.loads(merged_path.read_text())
    assert len(merged["results"]) == len(first["results"]) + len(second["results"])
    assert {r["median_ms"] for r in merged["results"] if r["key"] in
            {x["key"] for x in second["results"]}} == {123.0}
    assert [s["shard"] for s in merged["sources"]][:2] in ([[1, 2], [2, 2]], [[2, 2], [1, 2]])
    assert (out / "merged.md").is_file()
    other = copy.deepcopy(first)
    other["env"]["gpu"] = "Another GPU"
    with pytest.raises(ValueError, match="different machines"):
        report.merge_docs([first, other])


def test_heatmap_and_generated_readme_section(tmp_path: Path):
    """Reports people look at: a B x H heatmap against the best baseline per cell, dtype and
    mode, and the README's performance section generated from results (losses included)."""
    pytest.importorskip("matplotlib")
    from benchmarks import plots, readme

    rows = []
    for B in (1, 16):
        for H in (128, 256):
            base = _rec("torch", "bfloat16", 2.0, reps=30, spread=0.02)
            ours = _rec("triton", "bfloat16", 1.0 if H == 128 else 4.0, reps=31, spread=0.02,
                        peak_mem_mib=50.0)
            for r in (base, ours):
                r.update(B=B, H=H, I=H, key=f"k{B}-{H}", config=f"lstm B={B} H={H}",
                         peak_mem_mib=r.get("peak_mem_mib", 100.0))
            rows += [base, ours]
    report.fill_best_baselines(rows)
    paths = plots.plot_heatmaps(rows, tmp_path, "grid")
    assert [p.name for p in paths] == ["grid-heatmap-fwd_bwd.png"] and paths[0].stat().st_size
    doc = {"schema": report.SCHEMA, "suite": "grid", "results": rows, "complete": True,
           "env": {**envinfo.environment(torch.device("cpu")), "gpu": "Some GPU"}}
    text = readme.performance_section(doc)
    assert "Some GPU" in text and "no CUDA-graphed baseline" in text
    assert "| lstm B=16 H=256 | fwd_bwd | torch.nn bfloat16 | 2.000 | 4.000 | **0.50×** |" in text
    assert text.index("**0.50×**") < text.index("**2.00×**")  # losses first
    assert "(2 at or above 1.0×, 2 below)" in text and "0.50–0.50× torch.nn's" in text
    target = tmp_path / "README.md"
    target.write_text(f"# x\n\n{readme.START} -->\nold\n{readme.END}\n\ntail\n")
    readme.rewrite(target, text, ["a/quick.json", "b.json"])
    new = target.read_text()
    assert readme.sources(target) == ["a/quick.json", "b.json"]
    assert "old" not in new and new.endswith("tail\n") and "**0.50×**" in new
    with pytest.raises(ValueError, match="markers"):
        readme.rewrite(_no_markers(tmp_path), text)


def _no_markers(tmp_path: Path) -> Path:
    path = tmp_path / "plain.md"
    path.write_text("# nothing here\n")
    return path


def test_readme_performance_section_is_generated_from_the_committed_results():
    """The README's numbers are the generator's output for the result files its marker names:
    nothing hand-copied, nothing stale."""
    from benchmarks import readme

    path = REPO_ROOT / "README.md"
    files = readme.sources(path)
    assert files and all((REPO_ROOT / f).is_file() for f in files)
    text = path.read_text()
    current = text.split(readme.START, 1)[1].split("\n", 1)[1].split(readme.END, 1)[0]
    assert current == readme.section_for([REPO_ROOT / f for f in files])


def test_heads_suite_checks_flashrnn_and_sLSTM_against_the_reference():
    """Multi-head and sLSTM cases (no torch.nn layer): the oracle is fastrnn's reference,
    torch.nn is unavailable with the reason, FlashRNN's vanilla backend passes, and the suite
    is FlashRNN's headline settings."""
    pytest.importorskip("flashrnn")
    s = runner.RunSettings(timing=TINY)
    for case in (Case("slstm", 5, 3, 4, 8, heads=2), Case("lstm", 5, 3, 4, 8, heads=4,
                                                          mode="forward")):
        by = {r["provider"]: r for r in runner.run_case(
            case, [BASELINE, "reference", "native", "flashrnn-vanilla"], s)}
        assert by[BASELINE]["status"] == "unavailable" and "torch.nn has no" in by[BASELINE][
            "message"]
        assert by["reference"]["oracle"] == "reference float64 cpu"
        assert by["flashrnn-vanilla"]["status"] == "ok" and by["flashrnn-vanilla"]["err_ratio"] <= 1
        assert by["native"]["status"] == ("unavailable" if case.cell == "slstm" else "ok")
    cases = suite_cases("heads")
    assert {(c.cell, c.heads) for c in cases} == {(c, n) for c in ("lstm", "slstm")
                                                 for n in (1, 2, 4, 12)}
    assert all(c.T == 1024 and c.B == 16 and c.H == 768 and c.dtype == "bfloat16" for c in cases)
    assert Case("lstm", 5, 3, 4, 8, heads=4).key.endswith("N=4 fwd_bwd")
    with pytest.raises(ValueError, match="heads must divide H"):
        Case("lstm", 5, 3, 4, 8, heads=3)


def test_review_fixes_in_the_report_pipeline(tmp_path: Path):
    """Old result files (no proj/heads fields) group with new records; a merge missing a shard
    is incomplete; heatmap panels keep heads apart; the LayerNorm/sLSTM modules are reported
    as running the reference; torch-flat refuses layers torch.nn does not have."""
    old = _rec("torch", "bfloat16", 2.0)
    for key in ("proj", "tf32", "heads"):
        old.pop(key, None)
    new = _rec("triton", "bfloat16", 1.0, proj=0, heads=1)
    report.fill_best_baselines([old, new])
    assert new["best_baseline"] == "torch bfloat16" and new["vs_best"] == 2.0
    env = envinfo.environment(torch.device("cpu"))
    docs = [{"suite": "grid", "shard": [i, 3], "complete": True, "env": env,
             "results": [_rec("torch", "float32", 1.0 + i)]} for i in (1, 3)]
    assert report.merge_docs(docs)["complete"] is False  # shard 2 of 3 is missing
    rows = [_rec("triton", "bfloat16", 1.0, heads=n, vs_best=v) for n, v in ((1, 2.0), (4, 0.5))]
    from benchmarks import plots

    panels = plots.heatmap_panels(rows)["fwd_bwd"]
    assert panels == {"lstm bfloat16 T=100": {(16, 64): 2.0},
                      "lstm N=4 bfloat16 T=100": {(16, 64): 0.5}}
    import fastrnn

    case = Case("lstm", 5, 2, 3, 4)
    ln = fastrnn.LayerNormLSTM(3, 4)
    assert workloads.served_by(case, ln, torch.device("cpu"), torch.float32) == "reference"
    flat = runner.run_case(Case("slstm", 5, 3, 4, 8), ["torch-flat"], runner.RunSettings(
        timing=TINY))[-1]
    assert flat["status"] == "unavailable" and "no such layer" in flat["message"]
