"""Providers (who runs the module) and modes (what one timed call does).

A provider turns a ``torch.nn`` module into the module to time, sharing its ``state_dict``. A
mode turns a module and inputs into a zero-argument callable returning the named tensors that
the correctness check compares (``y``, ``h_n``, ``c_n``, and the input gradient ``dx``). Both
live in registries, so new ones (an end-to-end Lightning training step, say) can be added with
:func:`register_provider` and :func:`register_mode`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from benchmarks.cases import Case
from benchmarks.peers import FLASHRNN_BACKENDS, GRAPH_SUFFIX, FlatTorch, split_provider

__all__ = [
    "LABELS",
    "MODE_BUILDERS",
    "PROVIDERS",
    "Inputs",
    "ProviderUnavailable",
    "GRAPH_SUFFIX",
    "build_module",
    "classify_error",
    "known_provider",
    "label",
    "make_inputs",
    "register_mode",
    "register_provider",
    "served_by",
]

Run = Callable[[], dict[str, Tensor]]
ProviderFactory = Callable[[Case, nn.Module], nn.Module]
ModeBuilder = Callable[[Case, nn.Module, "Inputs"], Run]

_CLASSES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "slstm": "SLSTM"}
LABELS = {
    "torch": "torch.nn",
    "triton": "fastrnn triton",
    "reference": "fastrnn reference",
    "native": "fastrnn native",
    "auto": "fastrnn auto",
}


class ProviderUnavailable(RuntimeError):
    """The provider cannot run this case here (not installed, no kernel, no device)."""


@dataclass
class Inputs:
    """Random inputs of one case: ``x: (T, B, I)``, initial state, upstream gradient of ``y``."""

    x: Tensor
    hx: Tensor | tuple[Tensor, Tensor]
    grad: Tensor
    lengths: Tensor | None

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Inputs:
        """A copy on ``device`` in ``dtype`` (lengths stay int64 on the CPU)."""

        def cast(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype)

        hx = tuple(map(cast, self.hx)) if isinstance(self.hx, tuple) else cast(self.hx)
        return Inputs(cast(self.x), hx, cast(self.grad), self.lengths)  # type: ignore[arg-type]


def make_inputs(case: Case, generator: torch.Generator) -> Inputs:
    """Fresh standard-normal inputs (float32, CPU) for ``case``; never zeros."""

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator)

    dirs = 2 if case.bidirectional else 1
    lengths = None
    rows = case.T * case.B
    if case.packed:
        lengths = torch.randint(max(1, case.T // 2), case.T + 1, (case.B,), generator=generator)
        lengths[0] = case.T
        rows = int(lengths.sum())
    out = case.proj or case.H
    rows_l = case.layers * dirs
    h0 = randn(rows_l, case.B, out)
    hx: Tensor | tuple[Tensor, ...] = h0
    if case.cell == "lstm":
        hx = (h0, randn(rows_l, case.B, case.H))
    elif case.cell == "slstm":  # a normaliser n >= 1, as the recurrence keeps it
        hx = (h0, randn(rows_l, case.B, case.H), 1 + randn(rows_l, case.B, case.H).abs(),
              randn(rows_l, case.B, case.H))
    grad = randn(rows, dirs * out)
    if not case.packed:
        grad = grad.view(case.T, case.B, dirs * out)
    return Inputs(randn(case.T, case.B, case.I), hx, grad, lengths)


def torch_module(case: Case) -> nn.Module:
    """The ``torch.nn`` module of ``case`` (float32, CPU, default initialisation) whose weights
    every provider loads; for a layer torch.nn does not have (sLSTM, heads), fastrnn's on the
    reference backend."""
    extra = {"proj_size": case.proj} if case.proj else {}
    if not case.torch_equivalent:
        import fastrnn

        cls = getattr(fastrnn, _CLASSES[case.cell])
        return cls(case.I, case.H, num_layers=case.layers, bidirectional=case.bidirectional,
                   num_heads=case.heads, backend="reference")
    cls = getattr(nn, _CLASSES[case.cell])
    return cls(case.I, case.H, num_layers=case.layers, bidirectional=case.bidirectional, **extra)


def _torch_provider(case: Case, base: nn.Module) -> nn.Module:
    if not case.torch_equivalent:
        what = "sLSTM" if case.cell == "slstm" else "multi-head"
        raise ProviderUnavailable(f"torch.nn has no {what} layer")
    return copy.deepcopy(base)


def _fastrnn_provider(backend: str) -> ProviderFactory:
    def factory(case: Case, base: nn.Module) -> nn.Module:
        try:
            import fastrnn
        except ImportError as exc:
            raise ProviderUnavailable(f"fastrnn is not importable: {exc}") from exc
        cls = getattr(fastrnn, _CLASSES[case.cell], None)
        if cls is None:
            raise ProviderUnavailable(f"fastrnn has no {_CLASSES[case.cell]}")
        if backend == "native" and case.cell == "slstm":
            raise ProviderUnavailable("torch.nn has no sLSTM: the native backend cannot run it")
        module = cls(
            case.I,
            case.H,
            num_layers=case.layers,
            bidirectional=case.bidirectional,
            backend=backend,
            **({"proj_size": case.proj} if case.proj else {}),
            **({"num_heads": case.heads} if case.heads > 1 else {}),
        )
        module.load_state_dict(base.state_dict())
        return module

    return factory


def _flashrnn_provider(backend: str) -> ProviderFactory:
    def factory(case: Case, base: nn.Module) -> nn.Module:
        from benchmarks.peers import FlashRNNLayer

        return FlashRNNLayer(case, base, backend, ProviderUnavailable)

    return factory


PROVIDERS: dict[str, ProviderFactory] = {"torch": _torch_provider}
PROVIDERS.update(
    {name: _fastrnn_provider(name) for name in ("triton", "reference", "native", "auto")}
)
PROVIDERS.update({f"flashrnn-{b}": _flashrnn_provider(b) for b in FLASHRNN_BACKENDS})
PROVIDERS["torch-flat"] = lambda case, base: FlatTorch(case, copy.deepcopy(base),
                                                      ProviderUnavailable)
LABELS["torch-flat"] = "torch.nn flat weights"
LABELS.update({f"flashrnn-{b}": f"FlashRNN {b}" for b in FLASHRNN_BACKENDS})


def register_provider(name: str, factory: ProviderFactory, label: str | None = None) -> None:
    """Add or replace a provider: ``factory(case, torch_module) -> module`` with its weights."""
    PROVIDERS[name] = factory
    LABELS[name] = label or name


def label(provider: str) -> str:
    """A provider's name in tables (``+graph``: "... graphed")."""
    name, graphed = split_provider(provider)
    return LABELS.get(name, name) + (" graphed" if graphed else "")


def known_provider(provider: str) -> bool:
    """Whether ``provider`` (or the provider it captures in a CUDA graph) is registered."""
    return split_provider(provider)[0] in PROVIDERS


def build_module(
    case: Case, provider: str, base: nn.Module, device: torch.device | str, dtype: torch.dtype
) -> nn.Module:
    """The provider's module for ``case`` with ``base``'s weights, on ``device`` in ``dtype``
    (a ``+graph`` provider: the module it captures)."""
    provider = split_provider(provider)[0]
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; known: {sorted(PROVIDERS)}")
    return PROVIDERS[provider](case, base).to(device=device, dtype=dtype)


def served_by(
    case: Case, module: nn.Module, device: torch.device, dtype: torch.dtype
) -> str | None:
    """The backend fastrnn's dispatcher runs ``module`` with for ``case`` (None: not known).

    Raises fastrnn's BackendUnavailableError where the requested backend cannot run here.
    """
    backend = getattr(module, "backend", "")
    if backend == "":
        return None
    choose = getattr(module, "_backend_for", None)
    if choose is not None:  # the module's own choice, for a one-step input of the case's batch
        probe = torch.zeros((case.B, 1, 1) if getattr(module, "batch_first", False)
                            else (1, case.B, 1), device=device, dtype=dtype)
        with warnings.catch_warnings(), torch.set_grad_enabled(case.mode != "inference"):
            warnings.simplefilter("ignore")  # the fallback warning; the caller reports it
            try:
                return choose(probe, None)
            except TypeError:  # a module with another signature
                return None
    return None


def _unavailable_types() -> tuple[type[BaseException], ...]:
    try:
        import fastrnn
    except ImportError:
        return (ProviderUnavailable, NotImplementedError, RuntimeError)
    cls = getattr(fastrnn, "BackendUnavailableError", None)
    if cls is None:
        try:
            from fastrnn.ops.backend import BackendUnavailableError as cls
        except ImportError:
            # Before fastrnn names its own error, any RuntimeError means "cannot run here".
            cls = RuntimeError
    return (ProviderUnavailable, NotImplementedError, cls)


def classify_error(exc: BaseException) -> tuple[str, str]:
    """``(status, message)`` for a provider that raised: unavailable, oom or error."""
    message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
    if isinstance(exc, torch.OutOfMemoryError):
        return "oom", message
    if isinstance(exc, _unavailable_types()):
        return "unavailable", message
    return "error", message


# ----------------------------------------------------------------------------------- modes


def _module_input(
    case: Case, x: Tensor, lengths: Tensor | None
) -> tuple[Tensor | PackedSequence, Tensor]:
    """The module's input and the leaf tensor whose gradient is checked (packed once, untimed)."""
    if not case.packed:
        return x, x
    packed = pack_padded_sequence(x.detach(), lengths, enforce_sorted=False)  # type: ignore[arg-type]
    leaf = packed.data.detach().requires_grad_(x.requires_grad)
    return PackedSequence(
        leaf, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
    ), leaf


def _named(out: tuple) -> dict[str, Tensor]:
    y, state = out
    named = {"y": y.data if isinstance(y, PackedSequence) else y}
    states = state if isinstance(state, tuple) else (state,)
    named.update(zip(("h_n", "c_n", "n_n", "m_n"), states))
    return named


def _inference(case: Case, module: nn.Module, inputs: Inputs) -> Run:
    module.eval()
    arg, _ = _module_input(case, inputs.x, inputs.lengths)

    def run() -> dict[str, Tensor]:
        with torch.inference_mode():
            return _named(module(arg, inputs.hx))

    return run


def _forward(case: Case, module: nn.Module, inputs: Inputs) -> Run:
    module.train()
    arg, _ = _module_input(case, inputs.x.detach().requires_grad_(), inputs.lengths)

    def run() -> dict[str, Tensor]:
        return _named(module(arg, inputs.hx))

    return run


def _fwd_bwd(case: Case, module: nn.Module, inputs: Inputs) -> Run:
    module.train()
    arg, leaf = _module_input(case, inputs.x.detach().requires_grad_(), inputs.lengths)
    params = [p for p in module.parameters() if p.requires_grad]

    def run() -> dict[str, Tensor]:
        named = _named(module(arg, inputs.hx))
        grads = torch.autograd.grad(named["y"], [leaf, *params], inputs.grad)
        return {**{k: v.detach() for k, v in named.items()}, "dx": grads[0]}

    return run


MODE_BUILDERS: dict[str, ModeBuilder] = {
    "inference": _inference,
    "forward": _forward,
    "fwd_bwd": _fwd_bwd,
}


def register_mode(name: str, builder: ModeBuilder) -> None:
    """Add a mode: ``builder(case, module, inputs) -> run``; ``run()`` returns named tensors."""
    MODE_BUILDERS[name] = builder
