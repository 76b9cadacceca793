"""Adopt fastrnn in an existing model without editing it: :func:`swap` and :func:`to_torch`.

``swap(model)`` replaces, in place, every ``torch.nn.RNN``, ``LSTM``, ``GRU``, ``RNNCell``,
``LSTMCell`` and ``GRUCell`` inside ``model`` by the fastrnn module of the same configuration;
``to_torch(model)`` does the reverse. The new module holds the *same* ``Parameter`` objects
(no copies): an optimizer built before the swap keeps updating them, its state stays valid,
and ``state_dict`` keys do not change. Forward hooks move along. Only modules of exactly those
types are swapped (a subclass of ``torch.nn.LSTM`` may override ``forward``), and none with
parametrizations (``weight_norm`` and the like), which are left as they are, with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from fastrnn.nn.cell import GRUCell, LSTMCell, RNNCell
from fastrnn.nn.rnn import GRU, LSTM, RNN, RNNBase

__all__ = ["swap", "to_torch", "torch_twin"]

_TO_FAST: dict[type, type] = {
    nn.RNN: RNN, nn.LSTM: LSTM, nn.GRU: GRU,
    nn.RNNCell: RNNCell, nn.LSTMCell: LSTMCell, nn.GRUCell: GRUCell,
}
_TO_TORCH: dict[type, type] = {fast: ref for ref, fast in _TO_FAST.items()}
_HOOKS = ("_forward_pre_hooks", "_forward_hooks", "_forward_hooks_with_kwargs",
          "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
          "_backward_hooks", "_backward_pre_hooks")


def _constructor(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments that rebuild ``module``'s configuration (either library)."""
    kwargs: dict[str, Any] = {"input_size": module.input_size,
                              "hidden_size": module.hidden_size, "bias": module.bias}
    if isinstance(module, nn.RNNBase | RNNBase):
        kwargs |= {"num_layers": module.num_layers, "batch_first": module.batch_first,
                   "dropout": module.dropout, "bidirectional": module.bidirectional}
        if module.mode == "LSTM":
            kwargs["proj_size"] = module.proj_size
    if hasattr(module, "nonlinearity"):  # RNN and RNNCell
        kwargs["nonlinearity"] = module.nonlinearity
    return kwargs


def _rebuild(module: nn.Module, target: type, extra: dict[str, Any]) -> nn.Module:
    """A ``target`` module configured as ``module`` and holding its Parameter objects."""
    if any(getattr(module, "zoneout", ())) or getattr(module, "dropconnect", 0.0):
        warnings.warn(f"fastrnn: torch.nn.{target.__name__} has no zoneout or dropconnect: "
                      "the torch.nn module computes without them", UserWarning, stacklevel=4)
    params = dict(module.named_parameters(recurse=False))
    dtype = next(iter(params.values())).dtype
    new = target(**_constructor(module), device="meta", dtype=dtype, **extra)
    for name, param in params.items():
        setattr(new, name, param)
    new.train(module.training)
    for hooks in _HOOKS:
        if hasattr(module, hooks) and hasattr(new, hooks):
            getattr(new, hooks).update(getattr(module, hooks))
    if isinstance(new, nn.RNNBase | RNNBase):
        new.flatten_parameters()
    return new


def torch_twin(module: nn.Module) -> nn.Module:
    """The torch.nn module of a fastrnn one's configuration, holding its Parameter objects
    (``module`` itself is left as it is). A multi-head layer has none (ValueError)."""
    if getattr(module, "num_heads", 1) > 1:
        raise ValueError(f"torch.nn.{type(module).__name__} has no num_heads: a multi-head "
                         f"fastrnn.{type(module).__name__} has no torch.nn twin")
    return _rebuild(module, _TO_TORCH[type(module)], {})


def _replace(model: nn.Module, table: dict[type, type], extra: dict[str, Any]) -> nn.Module:
    def convert(module: nn.Module) -> nn.Module:
        parametrized = parametrize.is_parametrized(module)
        # parametrize makes a subclass of the module's class on the fly
        target = table.get(type(module).__mro__[1] if parametrized else type(module))
        if target is None:
            return module
        if parametrized:
            warnings.warn(f"fastrnn: left {type(module).__name__} with parametrizations as it "
                          "is (its weights are computed, not stored)", UserWarning, stacklevel=4)
            return module
        if getattr(module, "num_heads", 1) > 1:
            warnings.warn(f"fastrnn: left {type(module).__name__}(num_heads="
                          f"{module.num_heads}) as it is (torch.nn has no multi-head layer)",
                          UserWarning, stacklevel=4)
            return module
        return _rebuild(module, target, extra)

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            new = convert(child)
            if new is not child:
                setattr(parent, name, new)
    return convert(model)


def swap(model: nn.Module, backend: str | None = None) -> nn.Module:
    """Replace every torch.nn RNN/LSTM/GRU and cell in ``model`` (or ``model`` itself) by its
    fastrnn twin, in place, with the same Parameter objects; returns ``model`` (or the twin,
    when ``model`` itself is one). ``backend`` as the modules' keyword."""
    return _replace(model, _TO_FAST, {"backend": backend})


def to_torch(model: nn.Module) -> nn.Module:
    """The reverse of :func:`swap`: fastrnn modules back to torch.nn's, same Parameters (for
    code that needs torch's own classes: TorchScript, ``quantize_dynamic``, type checks)."""
    return _replace(model, _TO_TORCH, {})
