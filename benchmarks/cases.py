"""Benchmark cases, the suites that group them, and the tolerance table."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

__all__ = [
    "BASELINE",
    "MODES",
    "SUITES",
    "Suite",
    "TOLERANCES",
    "Case",
    "cost",
    "shard",
    "suite_cases",
    "suite_providers",
    "torch_dtype",
]

#: Provider every speedup is measured against: ``torch.nn`` (cuDNN on CUDA, oneDNN/ATen on CPU).
BASELINE = "torch"
MODES = ("inference", "forward", "fwd_bwd")
CELLS = ("lstm", "gru", "rnn")
#: Cells a case may also name: torch.nn has no sLSTM (its oracle is fastrnn's reference).
EXTRA_CELLS = ("slstm",)

#: ``dtype -> (atol, rtol)``. An output passes when ``|out - ref| <= atol * s + rtol * |ref|``
#: everywhere, with ``s = max(1, max|ref|)``. float32 leaves room for TF32 matrix units, which
#: cuDNN and Triton use for float32 by default.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (5e-3, 5e-3),
    "bfloat16": (6e-2, 6e-2),
    "float16": (1e-2, 1e-2),
}


def torch_dtype(name: str) -> torch.dtype:
    """``"bfloat16" -> torch.bfloat16``; rejects names that are not floating dtypes."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"not a floating dtype: {name!r}")
    return dtype


@dataclass(frozen=True)
class Case:
    """One module-level configuration timed in one mode (time-major input, ``I`` features).

    ``mode`` names a workload registered in :mod:`benchmarks.workloads` (the built-in ones are
    :data:`MODES`); the runner rejects unknown names.
    """

    cell: str
    T: int
    B: int
    I: int  # noqa: E741 - the usual name for the input size
    H: int
    dtype: str = "float32"
    layers: int = 1
    bidirectional: bool = False
    packed: bool = False
    mode: str = "fwd_bwd"
    label: str = ""
    proj: int = 0  # LSTM proj_size (0: none)
    tf32: bool | None = None  # float32 with TF32 allowed (True) or not (False); None: torch's
    heads: int = 1  # heads of a block-diagonal recurrence (fastrnn's num_heads)

    def __post_init__(self) -> None:
        if self.cell not in (*CELLS, *EXTRA_CELLS):
            raise ValueError(f"cell must be one of {CELLS + EXTRA_CELLS}, got {self.cell!r}")
        if self.heads < 1 or self.H % self.heads or (self.heads > 1 and self.proj):
            raise ValueError(f"heads must divide H (and not come with proj), got {self.heads}")
        torch_dtype(self.dtype)
        if self.proj and (self.cell != "lstm" or not 0 < self.proj < self.H):
            raise ValueError(f"proj must be an LSTM's proj_size in (0, H), got {self.proj}")
        if self.tf32 is not None and self.dtype != "float32":
            raise ValueError("tf32 is a float32 setting")

    @property
    def key(self) -> str:
        """Stable identifier of the configuration and mode (the label is not part of it)."""
        extra = "".join(
            s for s, on in ((" bidir", self.bidirectional), (" packed", self.packed),
                            (f" P={self.proj}", self.proj), (f" N={self.heads}",
                                                              self.heads > 1),
                            (" tf32", self.tf32 is True),
                            (" ieee", self.tf32 is False)) if on
        )
        return (
            f"{self.cell} T={self.T} B={self.B} I={self.I} H={self.H} {self.dtype} "
            f"L={self.layers}{extra} {self.mode}"
        )

    @property
    def torch_equivalent(self) -> bool:
        """Whether torch.nn has this layer (no sLSTM, no heads)."""
        return self.cell in CELLS and self.heads == 1

    @property
    def config(self) -> str:
        """The key without the mode: what a table row groups by."""
        return self.key.rsplit(" ", 1)[0]

    @property
    def macs(self) -> int:
        """Multiply-adds of one forward pass (input projection plus recurrence)."""
        gates = {"lstm": 4, "gru": 3, "rnn": 1, "slstm": 4}[self.cell]
        dirs = 2 if self.bidirectional else 1
        first = self.I + self.H // self.heads
        rest = dirs * self.H + self.H // self.heads
        per_dir = first + rest * (self.layers - 1)
        return self.T * self.B * gates * self.H * per_dir * dirs

    def to_dict(self) -> dict:
        """Plain fields plus the key and config, for JSON and CSV."""
        return {**asdict(self), "key": self.key, "config": self.config}


def _cases(cells: Iterable[str], modes: Iterable[str], **shape: object) -> list[Case]:
    return [Case(cell=c, mode=m, **shape) for c, m in itertools.product(cells, modes)]  # type: ignore[arg-type]


_FASTRNNS = {"T": 100, "B": 64, "I": 512, "H": 512, "dtype": "float32", "label": "fastrnns default"}
_FLASHRNN = {"T": 1024, "B": 16, "I": 768, "H": 768, "dtype": "bfloat16", "label": "FlashRNN point"}
_GATED = {"T": 1024, "B": 16, "I": 512, "H": 512, "dtype": "bfloat16"}
_LATENCY = {"T": 100, "B": 1, "I": 1024, "H": 1024, "dtype": "float32", "label": "B=1 latency"}
_HEADLINE_MODES = ("inference", "fwd_bwd")


def _quick() -> list[Case]:
    return [
        *_cases(["lstm"], _HEADLINE_MODES, **_FASTRNNS),
        *_cases(["lstm"], MODES, **_FLASHRNN),
        *_cases(["lstm"], _HEADLINE_MODES, **{**_FLASHRNN, "dtype": "float16"}),
        *_cases(["gru", "rnn"], _HEADLINE_MODES, **_GATED),
        *_cases(["lstm"], ["fwd_bwd"], **{**_GATED, "H": 256, "I": 256}),
        *_cases(["lstm"], ["fwd_bwd"], **_GATED),
        *_cases(["gru", "rnn"], ["fwd_bwd"], **{**_GATED, "H": 256, "I": 256}),
        *_cases(["gru", "rnn"], ["fwd_bwd"], **{**_GATED, "H": 768, "I": 768}),
        *_cases(["gru", "rnn"], ["fwd_bwd"], **_FASTRNNS),
        *_cases(["lstm"], ["inference"], **_LATENCY),
        *_cases(["lstm"], ["inference"], **{**_LATENCY, "H": 256, "I": 256}),
        *_cases(["lstm"], ["inference"], **{**_LATENCY, "H": 512, "I": 512}),
        *_cases(["lstm"], ["fwd_bwd"], **_GATED, bidirectional=True),
    ]


def _baselines() -> list[Case]:
    """The FlashRNN point (T=1024, B=16, H=768) for every cell in bfloat16 and float16, where
    torch picks cuDNN's persistent kernels in float16."""
    return [*_cases(CELLS, _HEADLINE_MODES, **_FLASHRNN),
            *_cases(CELLS, _HEADLINE_MODES, **{**_FLASHRNN, "dtype": "float16"})]


#: The grid's axes (``grid`` suite) and its memory bound: a case whose forward+backward keeps
#: more than GRID_MEMORY_BYTES of activations is left out.
GRID_BATCHES = (1, 16, 64, 256)
GRID_HIDDEN = (128, 256, 512, 768, 1024, 2048)
GRID_STEPS = (100, 1024, 4096)
GRID_DTYPES = (("bfloat16", None), ("float16", None), ("float32", True), ("float32", False))
GRID_MEMORY_BYTES = 16 * 2**30


def _grid_fits(case: Case) -> bool:
    """Whether a grid case's saved activations (gates and state per step, layer and
    direction, at least 4 bytes each) stay within GRID_MEMORY_BYTES."""
    gates = {"lstm": 5, "gru": 4, "rnn": 2}[case.cell]
    dirs = 2 if case.bidirectional else 1
    return case.T * case.B * case.H * gates * case.layers * dirs * 4 <= GRID_MEMORY_BYTES


def _grid() -> list[Case]:
    """Every cell x B x H x T x dtype (float32 with TF32 on and off) in one layer, inference
    and forward+backward; 2 and 4 layers at T=1024 in bfloat16; bidirectional, projected
    (LSTM, P = H/2) and packed variable-length rows at T=1024 in bfloat16; minus what does not
    fit (:func:`_grid_fits`). The regimes with more programs than SMs (B >= 64 with
    H >= 1024, B = 256) are in it."""
    out: list[Case] = []
    for (dtype, tf32), T, B, H in itertools.product(GRID_DTYPES, GRID_STEPS, GRID_BATCHES,
                                                   GRID_HIDDEN):
        out += _cases(CELLS, _HEADLINE_MODES, T=T, B=B, I=H, H=H, dtype=dtype, tf32=tf32)
    for B, H in itertools.product(GRID_BATCHES, GRID_HIDDEN):
        shape = {"T": 1024, "B": B, "I": H, "H": H, "dtype": "bfloat16"}
        for layers in (2, 4):
            out += _cases(CELLS, _HEADLINE_MODES, **shape, layers=layers)
        out += _cases(CELLS, _HEADLINE_MODES, **shape, bidirectional=True)
        out += _cases(CELLS, _HEADLINE_MODES, **shape, packed=True)
        out += _cases(["lstm"], _HEADLINE_MODES, **shape, proj=H // 2)
    return [c for c in _dedupe(out) if _grid_fits(c)]


def cost(case: Case) -> float:
    """A case's estimated seconds per provider and round (for balancing shards): a measurement
    times at least 30 calls and 1 s; a call is estimated as the slower of 10 µs per step and
    layer and its FLOPs at 50 TFLOP/s (three passes' worth in forward+backward)."""
    passes = 3 if case.mode == "fwd_bwd" else 1
    call_s = max(case.T * case.layers * passes * 10e-6, 2 * case.macs * passes / 50e12)
    return max(1.0, 30 * call_s) + 0.1


def shard(cases: Sequence[Case], index: int, count: int) -> list[Case]:
    """Shard ``index`` (1-based) of ``count``: the cases taken longest first, each to the shard
    with the least estimated cost so far (:func:`cost`), in their suite order. Every case is in
    exactly one shard; the split depends only on the cases."""
    if not 1 <= index <= count:
        raise ValueError(f"shard must be i/n with 1 <= i <= n, got {index}/{count}")
    loads = [0.0] * count
    owner: dict[str, int] = {}
    for case in sorted(cases, key=lambda c: (-cost(c), c.key)):
        k = min(range(count), key=lambda i: (loads[i], i))
        loads[k] += cost(case)
        owner[case.key] = k
    return [c for c in cases if owner[c.key] == index - 1]


def _heads() -> list[Case]:
    """FlashRNN's headline settings: T=1024, B=16, H=768 in bfloat16, one head of 768 and heads
    of 384, 192 and 64 (N = 1, 2, 4, 12), LSTM and sLSTM, forward and forward+backward."""
    return [Case(cell, T=1024, B=16, I=768, H=768, dtype="bfloat16", mode=mode, heads=n,
                 label="FlashRNN heads")
            for cell in ("lstm", "slstm") for n in (1, 2, 4, 12) for mode in ("forward",
                                                                              "fwd_bwd")]


#: Shapes whose split tiles (16 batch rows x 16 hidden units) outnumber an H100's 132 SMs.
_TILES = ((64, 1024), (256, 256), (256, 2048))


def _tiles() -> list[Case]:
    """The regimes beyond the SM count, where each persistent program runs several tiles per
    step (``kernels.launch._grid``): every cell at T=256 in bfloat16, inference and
    forward+backward, and the LSTM in float32 (TF32) at B=64, H=1024."""
    out: list[Case] = []
    for B, H in _TILES:
        out += _cases(CELLS, _HEADLINE_MODES, T=256, B=B, I=H, H=H, dtype="bfloat16")
    out += _cases(["lstm"], _HEADLINE_MODES, T=256, B=64, I=1024, H=1024, dtype="float32",
                  tf32=True)
    return out


def _variants(cells: Iterable[str], modes: Iterable[str], **shape: object) -> list[Case]:
    """Two layers, bidirectional and packed variable-length points around one shape."""
    out: list[Case] = []
    for extra in ({"layers": 2}, {"bidirectional": True}, {"packed": True}):
        out += _cases(cells, modes, **shape, **extra)
    return out


def _full() -> list[Case]:
    out = [*_cases(CELLS, MODES, **_FASTRNNS), *_cases(CELLS, MODES, **_FLASHRNN)]
    for dtype, T, B, H in itertools.product(
        ("float32", "bfloat16", "float16"), (100, 1000), (1, 16, 64, 256), (128, 256, 512, 1024)
    ):
        out += _cases(CELLS, MODES, T=T, B=B, I=H, H=H, dtype=dtype)
    out += _variants(CELLS, MODES, T=100, B=64, I=512, H=512, dtype="bfloat16")
    return _dedupe(out)


def _cpu() -> list[Case]:
    out: list[Case] = []
    for T, B, H in ((100, 32, 128), (100, 1, 64), (50, 8, 32)):
        out += _cases(CELLS, MODES, T=T, B=B, I=H, H=H)
    out += _variants(CELLS, ["fwd_bwd"], T=50, B=16, I=64, H=64)
    return out


def _latency() -> list[Case]:
    out: list[Case] = []
    for dtype, H in itertools.product(("float32", "bfloat16"), (128, 256, 512, 1024)):
        out += _cases(["lstm"], ["inference"], T=100, B=1, I=H, H=H, dtype=dtype)
    return out


def _smoke() -> list[Case]:
    tiny = {"T": 6, "B": 3, "I": 5, "H": 4}
    return [*_cases(CELLS, MODES, **tiny), *_variants(["lstm", "gru"], ["fwd_bwd"], **tiny)]


def _dedupe(cases: list[Case]) -> list[Case]:
    seen: dict[str, Case] = {}
    for case in cases:
        seen.setdefault(case.key, case)
    return list(seen.values())


class Suite(NamedTuple):
    """A named group of cases and the providers it compares by default."""

    description: str
    build: Callable[[], list[Case]]
    providers: tuple[str, ...]
    needs_cuda: bool


_GPU_PROVIDERS = ("triton", "reference", "auto", "torch")
SUITES = {
    "quick": Suite(
        "headline LSTM points plus GRU/RNN; minutes on one GPU (auto runs triton there, and the "
        "reference is the oracle: both left out)",
        _quick,
        ("triton", "torch"),
        True,
    ),
    "baselines": Suite(
        "the FlashRNN point, every cell, bfloat16 and float16: torch.nn and fastrnn eager and "
        "CUDA-graphed, torch.nn with flat bfloat16 weights, and FlashRNN's backends",
        _baselines,
        ("triton", "torch", "torch+graph", "torch-flat", "triton+graph", "flashrnn-triton",
         "flashrnn-cuda_fused", "flashrnn-cuda"),
        True,
    ),
    "heads": Suite(
        "FlashRNN's headline settings: LSTM and sLSTM with 1, 2, 4 and 12 heads of H=768 "
        "against FlashRNN's backends (and cuDNN for the dense LSTM)",
        _heads,
        ("triton", "torch", "reference", "flashrnn-triton", "flashrnn-cuda_fused",
         "flashrnn-cuda", "flashrnn-vanilla"),
        True,
    ),
    "tiles": Suite(
        "beyond the SM count (B >= 64 with H >= 1024, B = 256): programs that each run several "
        "tiles behind the grid barrier, against torch.nn eager and CUDA-graphed",
        _tiles,
        ("triton", "torch", "torch+graph"),
        True,
    ),
    "grid": Suite(
        "every cell x B x H x T x dtype (TF32 on and off), layers, bidirectional, projected "
        "and packed rows: hours on one GPU, run in shards (--shard i/n)",
        _grid,
        ("triton", "torch", "torch+graph"),
        True,
    ),
    "full": Suite(
        "grid over B, H, T, dtype, cell and mode, plus variants", _full, _GPU_PROVIDERS, True
    ),
    "cpu": Suite(
        "small sizes: reference, native and auto against torch.nn",
        _cpu,
        ("reference", "native", "auto", "torch"),
        False,
    ),
    "latency": Suite(
        "LSTM inference at batch 1 (T=100, I=H from 128 to 1024, float32 and bfloat16)",
        _latency,
        ("triton", "torch"),
        True,
    ),
    "smoke": Suite(
        "tiny sizes, every cell, mode and variant; checks the pipeline",
        _smoke,
        ("triton", "reference", "native", "auto", "torch"),
        False,
    ),
}


def suite_cases(suite: str) -> list[Case]:
    """All cases of a named suite."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose from {sorted(SUITES)}")
    return SUITES[suite].build()


def suite_providers(suite: str) -> tuple[str, ...]:
    """The providers a suite compares by default (the baseline included)."""
    return SUITES[suite].providers
