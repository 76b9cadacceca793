"""Baselines beyond torch.nn: CUDA-graphed providers and FlashRNN.

``<provider>+graph`` times any provider's call captured once in a CUDA graph and replayed
(inference: the forward; forward+backward: the forward and ``torch.autograd.grad`` together,
as torch's whole-network capture does), which removes the host's launch overhead the way a
careful user can today. ``flashrnn-<backend>`` runs NX-AI's ``flashrnn`` package (backends
``vanilla``, ``triton``, ``cuda``, ``cuda_fused``) on the case's weights converted by
:func:`fastrnn.to_flashrnn`, one head of H or the case's heads, sLSTM too: the same function
as torch.nn's (or fastrnn's) layer, so it is checked against the same oracle. Where a peer
cannot run (no CUDA, no package, no compiler, a shape it does not take) the record says why.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from benchmarks.cases import Case

__all__ = ["FLASHRNN_BACKENDS", "GRAPH_SUFFIX", "FlashRNNLayer", "FlatTorch", "capture",
           "kernel_names", "split_provider"]

GRAPH_SUFFIX = "+graph"
FLASHRNN_BACKENDS = ("vanilla", "triton", "cuda", "cuda_fused")
_CLASSES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "slstm": "SLSTM"}


def split_provider(name: str) -> tuple[str, bool]:
    """``"torch+graph" -> ("torch", True)``; ``"triton" -> ("triton", False)``."""
    if name.endswith(GRAPH_SUFFIX):
        return name[: -len(GRAPH_SUFFIX)], True
    return name, False


def capture(run: Callable[[], dict[str, Tensor]], device: torch.device,
            unavailable: type[Exception]) -> Callable[[], dict[str, Tensor]]:
    """``run`` captured in a CUDA graph after a warm-up on a side stream (torch's recipe);
    calling the result replays it and returns the captured outputs, refreshed."""
    if device.type != "cuda":
        raise unavailable("CUDA graphs need a CUDA device")
    with torch.cuda.device(device):
        return _capture(run, device)


def _capture(run: Callable[[], dict[str, Tensor]],
             device: torch.device) -> Callable[[], dict[str, Tensor]]:
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            run()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = run()

    def replay() -> dict[str, Tensor]:
        graph.replay()
        return outputs

    return replay


def kernel_names(run: Callable[[], object], device: torch.device, top: int = 4) -> str | None:
    """The GPU kernels one call of ``run`` launches, most device time first (``top`` of them,
    ``; ``-separated, with their share of the call's kernel time): which cuDNN algorithm ran.
    None off CUDA."""
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize(device)

    def self_time(e: object) -> float:
        return float(getattr(e, "self_device_time_total", None)
                     or getattr(e, "self_cuda_time_total", 0.0))

    events = [e for e in prof.key_averages() if self_time(e) > 0]
    total = sum(self_time(e) for e in events) or 1.0
    events.sort(key=self_time, reverse=True)
    return "; ".join(f"{e.key[:90]} ({self_time(e) / total:.0%})" for e in events[:top]) or None


class FlatTorch(nn.Module):
    """torch.nn's module with its weights in one cuDNN buffer in bfloat16 too.

    torch lays an RNN's weights out once for cuDNN (``flatten_parameters``) only for dtypes in
    ``torch.backends.cudnn.CUDNN_TENSOR_DTYPES`` (half, float, double): a bfloat16 module
    re-compacts its weights on every call, with a warning. This calls the same
    ``torch._cudnn_rnn_flatten_weight`` without that check after every ``.to()``; where cuDNN
    refuses it the provider is unavailable with its error.
    """

    def __init__(self, case: Case, module: nn.Module, unavailable: type[Exception]) -> None:
        super().__init__()
        if not case.torch_equivalent:
            raise unavailable("torch.nn has no such layer to flatten")
        if not torch.cuda.is_available() or not torch.backends.cudnn.is_available():
            raise unavailable("flattening cuDNN's weight buffer needs CUDA and cuDNN")
        self.inner, self._unavailable = module, unavailable

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - nn.Module's signature
        out = super()._apply(fn, recurse)
        m = self.inner
        if next(m.parameters()).is_cuda:
            import torch.backends.cudnn.rnn as cudnn_rnn

            try:
                with torch.cuda.device_of(m._flat_weights[0]), torch.no_grad():
                    torch._cudnn_rnn_flatten_weight(
                        m._flat_weights, (4 if m.bias else 2) + (m.proj_size > 0),
                        m.input_size, cudnn_rnn.get_cudnn_mode(m.mode), m.hidden_size,
                        m.proj_size, m.num_layers, m.batch_first, bool(m.bidirectional))
            except Exception as exc:  # noqa: BLE001 - whatever cuDNN says, the row says it
                raise self._unavailable(f"cuDNN refuses the flat buffer: {exc}") from exc
        return out

    def forward(self, *args: object) -> object:
        return self.inner(*args)


class FlashRNNLayer(nn.Module):
    """One layer of FlashRNN (``backend``) holding torch.nn ``base``'s weights as FlashRNN lays
    them out (``W``, ``R``, ``b``); called like torch.nn's layer, time-major."""

    def __init__(self, case: Case, base: nn.Module, backend: str,
                 unavailable: type[Exception]) -> None:
        super().__init__()
        if case.layers != 1 or case.bidirectional or case.packed or case.proj:
            raise unavailable("FlashRNN runs one layer in one direction, without variable "
                              "lengths or a projection")
        try:
            from flashrnn import flashrnn
        except ImportError as exc:
            raise unavailable(f"flashrnn is not importable: {exc}") from exc
        import fastrnn

        fast = getattr(fastrnn, _CLASSES[case.cell])(case.I, case.H, num_heads=case.heads)
        fast.load_state_dict(base.state_dict())
        args = fastrnn.to_flashrnn(fast)
        self.W, self.R, self.b = (nn.Parameter(args[k]) for k in ("W", "R", "b"))
        self.function, self.flashrnn_backend, self.H = args["function"], backend, case.H
        self.N = case.heads
        self._flashrnn, self._unavailable = flashrnn, unavailable
        self.mode = _CLASSES[case.cell]

    def forward(self, x: Tensor, hx: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, object]:
        """x: (T, B, I); hx as torch.nn's (one layer) -> (y: (T, B, H), final state)."""
        T, B, _ = x.shape
        N, D = self.N, self.H // self.N
        Wx = (x.transpose(0, 1) @ self.W.t()).view(B, T, -1, N, D)
        states = torch.stack(list(hx) if isinstance(hx, tuple) else [hx])  # (S, 1, B, H)
        states = states.view(states.shape[0], B, 1, N, D)
        try:
            h, last = self._flashrnn(Wx, self.R, self.b, states=states, function=self.function,
                                     backend=self.flashrnn_backend,
                                     dtype=str(x.dtype).removeprefix("torch."))
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run says why
            raise self._unavailable(f"flashrnn {self.flashrnn_backend}: {type(exc).__name__}: "
                                    f"{str(exc).strip()[:200]}") from exc
        y = h[0].reshape(B, T, self.H).transpose(0, 1)
        finals = [last[k].reshape(1, B, self.H) for k in range(last.shape[0])]
        return y, (tuple(finals) if len(finals) > 1 else finals[0])
