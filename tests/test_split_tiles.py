"""Split launches whose programs each run several tiles (``split.tile``, ``launch._grid``),
the LSTM, GRU and RNN's and the LayerNorm layers'.

Where a layer's tiles (batch tiles x hidden slices x directions) outnumber the programs that
can be resident at once (an H100's SMs), the grid of a streaming config is cut to those and
each program loops over its tiles in every phase, all steps behind the grid barrier; a config
with W_hh on chip gives way to the streaming one there. The grid's arithmetic is checked here
for the GPU's SM count; the kernels' tile loops run in the interpreter, behind the barrier in a
grid of one program and, with grids cut by hand, one launch per phase, against the float64
reference and torch.nn.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from fastrnn.kernels import common, launch
from fastrnn.kernels import layer_norm as ln_kernel
from helpers import compare_with_torch, twins
from test_layer_norm_triton import _check_gradients as _check_ln_gradients
from test_triton_kernels import SPLIT, _check

import fastrnn

SMS = 132  # an H100 SXM's


def _cfg(w_on_chip: bool) -> common.Config:
    return common.Config(False, 16, 16, 64, 4, w_on_chip=w_on_chip)


@pytest.fixture
def sms(monkeypatch):
    monkeypatch.setattr(launch, "resident_programs", lambda device: SMS)


@pytest.mark.parametrize("B,H,D,chip,grid", [
    (16, 768, 1, True, (1, 48, 1)),  # fits: one tile per program
    (16, 2048, 1, False, (1, 128, 1)),
    (64, 1024, 1, False, (1, 128, 1)),  # 256 tiles, 2 per program
    (256, 256, 2, False, (1, 64, 2)),  # 256 tiles per direction, 4 per program
    (256, 2048, 1, False, (1, 128, 1)),  # 16 tiles per program
    (64, 4096, 2, False, (1, 64, 2)),  # 16 tiles per program
    (48, 2560, 1, False, (1, 120, 1)),  # 480 tiles, 4 per program
])
def test_grid_is_cut_to_the_sms(sms, B, H, D, chip, grid):
    assert launch._grid(_cfg(chip), B, H, D, torch.device("cuda")) == (
        grid, True)


def test_grid_is_not_cut_on_chip_or_resident(sms):
    cuda = torch.device("cuda")
    # W_hh on chip: a program owns one tile (the launchers take the streaming config instead)
    assert launch._grid(_cfg(True), 64, 1024, 1, cuda) == ((4, 64, 1), False)
    resident = common.Config(True, 16, 64, 64, 4)
    assert launch._grid(resident, 400, 64, 2, cuda) == ((25, 1, 2), False)


@pytest.mark.parametrize("B,H,D,chip", list(itertools.product(
    [1, 16, 17, 64, 200, 1000], [16, 100, 1024, 2048, 5000], [1, 2], [False, True])))
def test_every_tile_is_run_once_by_at_most_one_program_per_sm(sms, B, H, D, chip):
    cfg = _cfg(chip)
    (gb, gs, gd), barrier = launch._grid(cfg, B, H, D, torch.device("cuda"))
    tiles = (-(-B // 16), -(-H // 16))
    assert gd == D and gb <= tiles[0] and gb * gs <= tiles[0] * tiles[1]
    if not barrier:  # one launch per phase: only W_hh on chip beyond the SMs
        assert chip and tiles[0] * tiles[1] * D > SMS and (gb, gs) == tiles
        return
    assert gb * gs * D <= SMS
    n = gb * gs  # programs per direction; program p runs tiles p, p + n, ... (split.tile)
    run = {p: [divmod(t, tiles[1]) for t in range(p, tiles[0] * tiles[1], n)]
           for p in (i * gs + j for i, j in itertools.product(range(gb), range(gs)))}
    assert sorted(t for ts in run.values() for t in ts) == sorted(
        itertools.product(range(tiles[0]), range(tiles[1])))
    if chip:  # a program's own tile
        assert (gb, gs) == tiles
    # the fewest programs for as few tiles per program as the SMs allow
    most = max(len(ts) for ts in run.values())
    assert most == -(-tiles[0] * tiles[1] // (SMS // D))
    assert gb * gs == -(-tiles[0] * tiles[1] // most)


def _spy(monkeypatch, grid=None) -> list:
    """Records each split launch as (grid, barrier); ``grid``: cut every one to it, one launch
    per phase (programs running several tiles without the barrier)."""
    launches = []
    run_phases = launch._run_phases
    if grid is not None:  # the full grid (stepped from Python), then cut
        monkeypatch.setattr(launch, "resident_programs", lambda device: 0)

    def spy(kernel, full, args, meta, phases, barrier):
        if grid is not None:
            full, barrier = tuple(min(g, f) for g, f in zip(grid, full)), False
        launches.append((full, barrier))
        run_phases(kernel, full, args, meta, phases, barrier)

    monkeypatch.setattr(launch, "_run_phases", spy)
    return launches


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_one_program_runs_every_tile_behind_the_barrier(monkeypatch, cell):
    """In the interpreter a grid of one program takes the barrier: 3 batch tiles x 3 slices,
    W_hh streamed."""
    monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    launches = _spy(monkeypatch)
    _check(cell, T=4, B=40, H=37, lengths=torch.tensor([4, 1, 3] * 13 + [2]))
    assert launches == [((1, 1, 1), True)] * 2


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_RELU"])
def test_on_chip_beyond_the_sms_streams(monkeypatch, cell):
    """W_hh on chip (what pick_config takes without a resident budget) in more programs than
    a GPU of one SM runs: the launchers take the streaming config, one program running the
    2 batch tiles x 3 slices behind the barrier, forward and backward."""
    monkeypatch.setattr(common, "RESIDENT_BYTES", 0)
    monkeypatch.setattr(launch, "is_interpreted", lambda device: False)
    monkeypatch.setattr(launch, "resident_programs", lambda device: 1)
    assert common.pick_config(common.CELLS[cell], 37, 20, torch.float32).w_on_chip
    launches = _spy(monkeypatch)
    _check(cell, T=5, B=20, H=37, lengths=torch.tensor([5, 2, 4, 1, 3] * 4), reverse=True)
    assert launches == [((1, 1, 1), True)] * 2


@pytest.mark.parametrize("cell,proj", [("LSTM", 0), ("LSTM", 21), ("GRU", 0), ("RNN_TANH", 0)])
def test_programs_stride_over_tiles(monkeypatch, cell, proj):
    """Grids of 2 x 2 programs over 3 batch tiles x 3 slices (with a projection 2 slices of
    its outputs), one launch per phase: program p runs tiles p, p + 4, p + 8."""
    monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    launches = _spy(monkeypatch, grid=(2, 2, 1))
    _check(cell, T=3, B=40, H=37, proj=proj, lengths=torch.tensor([3, 1, 2] * 13 + [2]))
    assert launches == [((2, 2, 1), False)] * 2


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_both_directions_stride_over_tiles(monkeypatch, cell):
    """Both directions in one launch, 2 programs per direction over 2 batch tiles x 2 slices,
    packed unsorted lengths, two layers, against torch.nn."""
    monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    launches = _spy(monkeypatch, grid=(1, 2, 2))
    ref, ours = twins(cell, 4, 19, backend="triton", dtype=torch.float32, bidirectional=True,
                      num_layers=2)
    compare_with_torch(ref, ours, T=4, B=20, kind="packed", dtype=torch.float32)
    assert launches and all(grid == (1, 2, 2) for grid, _ in launches)


# --- the LayerNorm layers (layer_norm.ln_forward_tile, layer_norm_backward.ln_backward_tile)


def _ln_streamed(monkeypatch):
    """The LayerNorm layers' streaming config at every size (W_hh on chip below 2048)."""
    pick = ln_kernel.pick_ln_config
    monkeypatch.setattr(ln_kernel, "pick_ln_config",
                        lambda cell, H, dtype, backward=False, on_chip=True:
                        pick(cell, H, dtype, backward, on_chip=False))


@pytest.mark.parametrize("cls,kwargs", [
    (fastrnn.LayerNormLSTM, {}),
    (fastrnn.LayerNormLSTM, {"cell_norm": "state", "per_gate": True, "zoneout": (0.3, 0.5)}),
    (fastrnn.LayerNormGRU, {"per_gate": True}),
])
def test_layer_norm_tiles_behind_the_barrier(monkeypatch, cls, kwargs):
    """One program runs 2 batch tiles x 3 slices of every phase behind the barrier, forward
    and backward: outputs, states and every gradient against the float64 reference."""
    _ln_streamed(monkeypatch)
    launches = _spy(monkeypatch)
    _check_ln_gradients(monkeypatch, cls, kwargs, 37, training=True, batch=20)
    assert launches == [((1, 1, 1), True)] * 2


@pytest.mark.parametrize("cls,kwargs,grid", [
    (fastrnn.LayerNormLSTM, {"cell_norm": "output"}, (2, 2, 1)),
    (fastrnn.LayerNormGRU, {"bidirectional": True}, (1, 2, 2)),
])
def test_layer_norm_programs_stride_over_tiles(monkeypatch, cls, kwargs, grid):
    """Grids cut by hand below 2 batch tiles x 3 slices (per direction), one launch per
    phase: each program runs several tiles, their statistics exchanged through sbuf."""
    _ln_streamed(monkeypatch)
    launches = _spy(monkeypatch, grid=grid)
    _check_ln_gradients(monkeypatch, cls, kwargs, 37, training=True, batch=20)
    assert launches == [(grid, False)] * 2


def test_layer_norm_on_chip_beyond_the_sms_streams(monkeypatch):
    """W_hh on chip in more programs than a GPU of one SM runs: the streaming config, one
    program running every tile behind the barrier."""
    monkeypatch.setattr(launch, "is_interpreted", lambda device: False)
    monkeypatch.setattr(launch, "resident_programs", lambda device: 1)
    assert ln_kernel.pick_ln_config(common.GRU, 37, torch.float32).w_on_chip
    launches = _spy(monkeypatch)
    _check_ln_gradients(monkeypatch, fastrnn.LayerNormGRU, {}, 37, training=True, batch=20)
    assert launches == [((1, 1, 1), True)] * 2
