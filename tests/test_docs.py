"""Public classes carry real signatures and docstrings, and the API reference builds."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import fastrnn

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_modules_have_torch_signatures_and_document_the_backend(name):
    ours = inspect.signature(getattr(fastrnn, name))
    import torch

    theirs = inspect.signature(getattr(torch.nn, name).__init__)
    ours_names = [p for p in ours.parameters if p not in ("kwargs",)]
    torch_names = [p for p in theirs.parameters if p not in ("self", "args", "kwargs")]
    if torch_names:  # torch.nn.RNN/LSTM/GRU take *args, **kwargs in some torch versions
        assert ours_names[: len(torch_names)] == torch_names
    assert ours_names[-1] == "backend" and "input_size" in ours_names
    doc = inspect.getdoc(getattr(fastrnn, name))
    for word in ("Args:", "backend", "Forward", "torch.nn"):
        assert word in doc, (name, word)


def test_public_functions_are_documented():
    for name in fastrnn.__all__:
        obj = getattr(fastrnn, name)
        if callable(obj) and not isinstance(obj, type(BaseException)):
            assert inspect.getdoc(obj), name


def test_api_reference_builds(tmp_path):
    pytest.importorskip("pdoc")
    subprocess.run(["bash", str(ROOT / "scripts/docs.sh"), str(tmp_path)], check=True,
                   capture_output=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    page = (tmp_path / "fastrnn" / "nn.html").read_text()
    assert "backend" in page and "LSTM" in page and "swap" in page
    assert (tmp_path / "fastrnn" / "lightning" / "cli.html").is_file()
