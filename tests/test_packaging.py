"""The built wheel ships the kernels folder as ``fastrnn.kernels``."""

from __future__ import annotations

import os
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


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    """Built without setuptools' license deprecation; ships the configs, py.typed and the
    LICENSE; installed on its own (no checkout on the path) the command finds its bundled
    configs from any directory and prints its version."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, check=True,
    )
    assert "license" not in (build.stdout + build.stderr).lower().replace("license-files", "")
    (wheel,) = (tmp_path / "dist").glob("fastrnn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.name for p in (ROOT / "src/fastrnn/lightning/configs").glob("*.yaml")}
    assert configs and {f"fastrnn/lightning/configs/{c}" for c in configs} <= names
    assert "fastrnn/py.typed" in names and "fastrnn/__main__.py" in names
    assert "fastrnn/lightning/datasets/stores.csv" in names  # the stores config's data
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in zipfile.ZipFile(wheel).read(metadata).decode()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fastrnn", *args], capture_output=True,
                              text=True, env=env, cwd=elsewhere, timeout=300)

    version = command("--version")
    assert version.returncode == 0 and version.stdout.startswith("fastrnn 0."), version.stderr
    listed = command("configs")
    assert str(site) in listed.stdout and "sine_lstm" in listed.stdout
    fit = command("fit", "--config", "sine_lstm", "--trainer.fast_dev_run", "true",
                  "--data.num_series", "8", "--trainer.enable_progress_bar", "false")
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "args parameter" not in fit.stderr
