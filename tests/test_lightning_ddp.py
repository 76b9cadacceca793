"""Scale and reliability: two-process DDP on CPU, and exact resume from a checkpoint."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import fastrnn.lightning
from fastrnn.lightning import SequenceForecaster, SineDataModule

DDP_SCRIPT = textwrap.dedent(
    """
    import sys

    import lightning.pytorch as pl
    import torch

    from fastrnn.lightning import SequenceClassifier, SyntheticClassificationDataModule

    out = sys.argv[1]
    pl.seed_everything(0)
    data = SyntheticClassificationDataModule(
        num_classes=3, seq_len=12, min_len=6, num_samples=128, batch_size=16
    )
    model = SequenceClassifier(cell="gru", hidden_size=8, num_layers=2, layer_norm=True,
                               backend="reference")
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=4, limit_val_batches=2,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=out,
    )
    # the network is built in setup(); keep a copy of its initial weights from rank 0
    trainer.fit(model, data)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(
        {"state": state, "rank": trainer.global_rank, "world": trainer.world_size,
         "seen": trainer.fit_loop.epoch_loop._batches_that_stepped,
         "val_acc": float(trainer.callback_metrics["val_acc"])},
        f"{out}/rank{trainer.global_rank}.pt",
    )
    """
)


def _env() -> dict[str, str]:
    root = str(Path(fastrnn.lightning.__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def test_ddp_two_cpu_processes_end_with_identical_parameters(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(DDP_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    assert r0["seen"] == r1["seen"] == 4
    assert r0["val_acc"] == r1["val_acc"]  # synced over both ranks' validation shards
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    # and training did move them: rank 0 with seed 0 starts from this network
    pl.seed_everything(0)
    fresh = fastrnn.lightning.SequenceClassifier(
        input_size=1, num_classes=3, cell="gru", hidden_size=8, num_layers=2, layer_norm=True
    )
    moved = [not torch.equal(fresh.state_dict()[k], r0["state"][k]) for k in r0["state"]]
    assert sum(moved) > len(moved) // 2


def _trainer(tmp_path, max_epochs: int, **kwargs) -> pl.Trainer:
    settings = dict(
        max_epochs=max_epochs,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    return pl.Trainer(**{**settings, **kwargs})


def _setup(scheduler: str | None):
    pl.seed_everything(0)
    data = SineDataModule(seq_len=12, horizon=3, num_series=12, series_len=40, batch_size=16)
    model = SequenceForecaster(
        cell="lstm", hidden_size=8, num_layers=2, residual=True, lr=1e-2, scheduler=scheduler
    )
    return model, data


@pytest.mark.parametrize("scheduler", [None, "cosine"])
def test_resume_from_checkpoint_continues_identically(tmp_path, scheduler):
    """4 epochs straight == resume the straight run's epoch-2 checkpoint and train to 4."""
    model, data = _setup(scheduler)
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    straight = _trainer(tmp_path, 4, enable_checkpointing=True, callbacks=[every_epoch])
    straight.fit(model, data)
    assert straight.global_step > 8
    (half,) = (tmp_path / "ckpt").glob("epoch=1-*.ckpt")

    resumed, data = _setup(scheduler)
    pl.seed_everything(123)  # the resumed run must not depend on the global RNG
    rest = _trainer(tmp_path, 4)
    rest.fit(resumed, data, ckpt_path=half)
    assert rest.global_step == straight.global_step
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    lr = [t.optimizers[0].param_groups[0]["lr"] for t in (straight, rest)]
    assert lr[0] == lr[1] and (scheduler is None) == (lr[0] == 1e-2)


@pytest.mark.parametrize("restore", [True, False])
def test_resume_with_dropout_is_exact_with_the_rng_callback(tmp_path, restore):
    """Dropout draws from torch's generator: with RestoreRNGState a resumed run equals the
    uninterrupted one bit for bit; without it (the control) it does not."""
    from fastrnn.lightning import RestoreRNGState

    def setup():
        pl.seed_everything(0)
        data = SineDataModule(seq_len=12, horizon=3, num_series=12, series_len=40,
                              batch_size=16)
        return SequenceForecaster(cell="gru", hidden_size=8, num_layers=2, dropout=0.3,
                                  lr=1e-2), data

    callbacks = [RestoreRNGState()] if restore else []
    model, data = setup()
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    straight = _trainer(tmp_path, 4, enable_checkpointing=True,
                        callbacks=[every_epoch, *callbacks])
    straight.fit(model, data)
    (half,) = (tmp_path / "ckpt").glob("epoch=1-*.ckpt")
    resumed, data = setup()
    pl.seed_everything(123)  # a fresh process's generator: only the checkpoint can fix it
    _trainer(tmp_path, 4, callbacks=[*callbacks]).fit(resumed, data, ckpt_path=half)
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 resumed.state_dict().values()))
    assert same == restore
