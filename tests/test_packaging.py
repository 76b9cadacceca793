"""The built wheel ships the kernels folder as ``fastrnn.kernels``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_kernels(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("fastrnn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    kernel_files = {p.name for p in (ROOT / "kernels").glob("*.py")}
    assert kernel_files, "no kernel sources found"
    for name in kernel_files:
        assert f"fastrnn/kernels/{name}" in names
    for sub in ("reference", "ops", "nn", "lightning"):
        assert f"fastrnn/{sub}/__init__.py" in names
