"""Train fastrnn.LSTM and torch.nn.LSTM from the same weights on sine forecasting.

    python examples/sine_demo.py [--backend reference] [--steps 200]

Both models start from one state_dict and see the same batches; the printed losses agree.
"""

from __future__ import annotations

import argparse
import math

import torch

import fastrnn


def sine_batch(batch: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """x: (B, T, 1) noisy sine windows; y: (B, 1) the next value."""
    freq = 0.1 + 0.2 * torch.rand(batch, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(batch, 1, generator=generator)
    t = torch.arange(seq_len + 1).float()
    wave = torch.sin(freq * t + phase) + 0.05 * torch.randn(batch, seq_len + 1, generator=generator)
    return wave[:, :-1, None], wave[:, -1:]


class Forecaster(torch.nn.Module):
    def __init__(self, rnn: torch.nn.Module, hidden: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="fastrnn backend (default: auto)")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    hidden = 32
    ours = Forecaster(fastrnn.LSTM(1, hidden, batch_first=True, backend=args.backend), hidden)
    ref = Forecaster(torch.nn.LSTM(1, hidden, batch_first=True), hidden)
    ref.load_state_dict(ours.state_dict())
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (ours, ref)]
    gen = torch.Generator().manual_seed(1)
    print(f"{'step':>5} {'fastrnn.LSTM':>14} {'torch.nn.LSTM':>14}")
    for step in range(1, args.steps + 1):
        x, y = sine_batch(32, 40, gen)
        losses = []
        for model, opt in zip((ours, ref), opts, strict=True):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if step == 1 or step % 25 == 0:
            print(f"{step:>5} {losses[0]:>14.6f} {losses[1]:>14.6f}")


if __name__ == "__main__":
    main()
