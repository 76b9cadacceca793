"""The comparison command and the plots (skipped with a warning without matplotlib)."""

import csv
import sys

import pytest
import torch

from fastrnn.lightning.compare import compare, format_table, main
from fastrnn.lightning.plots import plot_confusion_matrix, plot_forecast


def test_compare_trains_each_cell_on_torch_and_fastrnn(tmp_path, capsys):
    data = dict(num_series=10, series_len=40, seq_len=12, horizon=3, batch_size=16)
    rows = compare(
        task="forecast",
        cells=("rnn", "gru"),
        backends=("torch", "reference"),
        max_epochs=2,
        hidden_size=8,
        out=tmp_path,
        data_kwargs=data,
        rounds=2,
    )
    assert [(r["cell"], r["backend"]) for r in rows] == [
        ("rnn", "torch"),
        ("rnn", "reference"),
        ("gru", "torch"),
        ("gru", "reference"),
    ]
    for torch_row, fast_row in zip(rows[::2], rows[1::2]):  # same seed, data and weights
        assert fast_row["val_mse"] == pytest.approx(torch_row["val_mse"], rel=1e-3)
        assert fast_row["s_per_epoch"] > 0
    with open(tmp_path / "compare.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (tmp_path / "compare.png").stat().st_size > 1000
    assert "val_mase" in format_table(rows) and "vs_torch" in format_table(rows)
    out = capsys.readouterr().out
    assert out.count("round ") == 8 and f"written: {tmp_path / 'compare.csv'}, " in out
    with pytest.raises(ValueError, match="cell must be one of"):
        compare(cells=("lstm2",), out=None)


def test_compare_command_line(tmp_path, capsys):
    rows = main(["--task", "classify", "--cells", "lstm", "--backends", "auto", "--quick",
                 "--hidden-size", "8", "--out", str(tmp_path)])  # fmt: skip
    assert len(rows) == 1 and 0.0 <= rows[0]["val_acc"] <= 1.0
    out = capsys.readouterr().out
    assert "val_acc" in out and "s_per_epoch" in out and "compare.csv" in out
    assert "spread" in out and "vs_torch" in out
    assert (tmp_path / "compare.png").is_file()
    with pytest.raises(SystemExit):
        main(["--cells", "transformer"])


def test_plots_are_skipped_with_a_warning_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.warns(UserWarning, match=r"pip install fastrnn\[plot\]"):
        assert plot_confusion_matrix(torch.eye(2), tmp_path / "cm.png") is None
    with pytest.warns(UserWarning, match="matplotlib is not installed"):
        x = torch.zeros(1, 4)
        assert plot_forecast(x, x[:, :2], x[:, :2], tmp_path / "f.png") is None
    assert not list(tmp_path.iterdir())


def test_compare_interleaves_rounds_and_flags_noisy_rows(tmp_path, monkeypatch, capsys):
    """Medians over interleaved rounds; a row whose time spreads too much gets no ratio; a
    plot that was not written is not claimed."""
    from fastrnn.lightning import compare as module

    times = {"torch": iter([1.0, 1.1, 1.0]), "auto": iter([0.5, 0.5, 0.52]),
             "reference": iter([2.0, 6.0, 2.1])}
    order = []

    def fake(task, cell, backend, *args):
        order.append(backend)
        return {"val_mse": 0.1, "val_mase": 0.5, "s_per_epoch": next(times[backend])}

    monkeypatch.setattr(module, "_train_once", fake)
    monkeypatch.setattr(module, "plot_bars", lambda *args, **kwargs: None)  # no matplotlib
    rows = compare(cells=("lstm",), backends=("torch", "auto", "reference"), out=tmp_path)
    assert order == ["torch", "auto", "reference", "reference", "auto", "torch"] + [
        "torch", "auto", "reference"]
    by = {r["backend"]: r for r in rows}
    assert by["auto"]["s_per_epoch"] == 0.5 and by["auto"]["vs_torch"] == pytest.approx(0.5)
    assert by["reference"]["spread"] > 1 and by["reference"]["vs_torch"] == "noisy"
    assert "noisy" in format_table(rows)
    out = capsys.readouterr().out
    assert "compare.png" not in out and "compare.csv" in out
