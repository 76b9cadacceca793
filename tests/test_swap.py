"""fastrnn.swap / fastrnn.to_torch: adopt fastrnn in a model built from torch.nn, and back."""

from __future__ import annotations

import copy

import pytest
import torch
from tolerances import assert_close
from torch import nn

import fastrnn


class Model(nn.Module):
    """torch.nn recurrent modules nested at several depths, beside other layers."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.encoder = nn.Sequential(nn.LSTM(4, 6, num_layers=2, bidirectional=True,
                                             proj_size=2), nn.Identity())
        self.gru = nn.GRU(4, 5, batch_first=True, bias=False)
        self.rnn = nn.RNN(4, 3, nonlinearity="relu")
        self.cells = nn.ModuleList([nn.LSTMCell(4, 5), nn.GRUCell(4, 5),
                                    nn.RNNCell(4, 5, nonlinearity="relu")])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        a, _ = self.encoder[0](z)
        b, _ = self.gru(z.transpose(0, 1))
        c, _ = self.rnn(z)
        h, cc = self.cells[0](z[0])
        outs = (a, b, c, h, cc, self.cells[1](z[0]), self.cells[2](z[0]))
        return torch.cat([t.reshape(-1) for t in outs])


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_swap_keeps_parameters_outputs_and_gradients(backend):
    model = Model()
    twin = copy.deepcopy(model)
    params = list(model.parameters())
    keys = list(model.state_dict())
    assert fastrnn.swap(model, backend=backend) is model
    assert type(model.encoder[0]) is fastrnn.LSTM and type(model.gru) is fastrnn.GRU
    assert type(model.rnn) is fastrnn.RNN and model.rnn.nonlinearity == "relu"
    assert [type(c) for c in model.cells] == [fastrnn.LSTMCell, fastrnn.GRUCell, fastrnn.RNNCell]
    assert model.cells[2].nonlinearity == "relu" and model.gru.batch_first
    assert model.encoder[0].proj_size == 2 and model.encoder[0].backend == backend
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    assert list(model.state_dict()) == keys
    x = torch.randn(5, 2, 3)
    out, expected = model(x), twin(x)
    assert_close(out, expected, torch.float32)
    out.square().sum().backward()
    expected.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert_close(p.grad, q.grad, torch.float32, msg=name)


def test_an_optimizer_built_before_the_swap_keeps_training_the_model():
    torch.manual_seed(0)
    model = nn.LSTM(3, 4)
    twin = copy.deepcopy(model)
    opt, opt_twin = (torch.optim.Adam(m.parameters(), lr=0.1) for m in (model, twin))
    x = torch.randn(6, 2, 3)
    for step in range(4):
        if step == 2:
            model = fastrnn.swap(model, backend="reference")
            assert type(model) is fastrnn.LSTM
        for m, o in ((model, opt), (twin, opt_twin)):
            o.zero_grad()
            m(x)[0].square().sum().backward()
            o.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert_close(p, q, torch.float32)


def test_to_torch_round_trip_and_quantize_dynamic():
    """to_torch gives torch.nn's classes back (the path to TorchScript or dynamic
    quantisation, which dispatch on torch's types)."""
    model = fastrnn.swap(Model(), backend="reference")
    params = list(model.parameters())
    fastrnn.to_torch(model)
    assert type(model.encoder[0]) is nn.LSTM and type(model.cells[1]) is nn.GRUCell
    assert type(model.rnn) is nn.RNN and model.rnn.nonlinearity == "relu"
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    x = torch.randn(5, 2, 3)
    expected = model(x)
    plain = nn.Sequential(nn.Linear(3, 4), fastrnn.LSTM(4, 6))
    quantized = torch.ao.quantization.quantize_dynamic(fastrnn.to_torch(plain), {nn.LSTM})
    assert "quantized" in type(quantized[1]).__module__
    assert_close(model(x), expected, torch.float32)


def test_hooks_move_and_what_is_not_swapped():
    seen = []
    lstm = nn.LSTM(3, 4)
    lstm.register_forward_hook(lambda module, args, out: seen.append(type(module)))

    class MyLSTM(nn.LSTM):  # a subclass may override forward: left alone
        pass

    mine = MyLSTM(3, 4)
    normed = nn.utils.parametrizations.weight_norm(nn.GRU(3, 4), "weight_hh_l0")
    model = nn.ModuleList([lstm, mine, normed])
    with pytest.warns(UserWarning, match="parametrizations"):
        fastrnn.swap(model)
    assert type(model[0]) is fastrnn.LSTM and model[1] is mine and model[2] is normed
    model[0](torch.randn(2, 1, 3))
    assert seen == [fastrnn.LSTM]
    assert type(fastrnn.swap(nn.GRUCell(2, 3))) is fastrnn.GRUCell


@pytest.mark.parametrize("cls,args", [(fastrnn.LSTM, (4, 8)), (fastrnn.GRU, (4, 8)),
                                      (fastrnn.LSTMCell, (4, 8)), (fastrnn.GRUCell, (4, 8)),
                                      (fastrnn.RNNCell, (4, 8))])
def test_torchscript_scripts_torch_nn_or_says_why_not(cls, args):
    """torch.jit.script compiles torch.nn's twin (same Parameters); where this torch cannot
    script torch.nn's module, one clear error pointing to torch.compile / torch.export."""
    ours = cls(*args, backend="reference")
    x = torch.randn(3, 2, 4) if cls in (fastrnn.LSTM, fastrnn.GRU) else torch.randn(2, 4)
    reference = getattr(nn, cls.__name__)(*args)
    torch_scripts = hasattr(torch.jit.script(reference), "forward")
    if not torch_scripts:
        with pytest.raises(RuntimeError, match="use torch.compile or torch.export"):
            torch.jit.script(ours)
        return
    scripted = torch.jit.script(ours)
    expected = ours(x)
    got = scripted(x)
    flat = lambda o: [o] if isinstance(o, torch.Tensor) else [  # noqa: E731
        t for item in o for t in flat(item)]
    for g, e in zip(flat(got), flat(expected), strict=True):
        assert_close(g, e, torch.float32)
