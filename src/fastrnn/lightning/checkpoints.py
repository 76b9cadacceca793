"""Checkpoints that say when they are damaged: a SHA-256 checksum beside each saved file,
checked before the file is read back.

:class:`ChecksumCheckpointIO` (the ``fastrnn`` command's default checkpoint plugin) writes
``<name>.ckpt.sha256`` beside every checkpoint it saves and checks it whenever the Trainer
loads one (resuming with ``ckpt_path``); the models' ``load_from_checkpoint`` checks it too.
A checkpoint without a checksum file still loads. :func:`verify_checkpoint` names the file
in every error: missing, empty, not a checkpoint, damaged, or not matching its checksum.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

__all__ = ["ChecksumCheckpointIO", "CheckpointError", "checksum_path", "verify_checkpoint",
           "write_checksum"]

_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and says why."""


def checksum_path(path: str | Path) -> Path:
    """Where the checksum of ``path`` is kept: ``path`` + ``.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum(path: str | Path) -> Path:
    """Write the SHA-256 of ``path`` beside it (``sha256sum`` format); returns its path."""
    path = Path(path)
    target = checksum_path(path)
    target.write_text(f"{_sha256(path)}  {path.name}\n")
    return target


def verify_checkpoint(path: str | Path) -> Path:
    """Raise :class:`CheckpointError` unless ``path`` is a readable, undamaged checkpoint:
    it exists and is not empty, matches its checksum file when there is one, and is a
    ``torch.save`` archive whose every record passes its CRC check."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {str(path)!r}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {str(path)!r}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty")
    expected = checksum_path(path)
    if expected.is_file():
        recorded = expected.read_text().split()
        if not recorded or recorded[0] != _sha256(path):
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match its checksum in {str(expected)!r}: "
                "the file is damaged or was changed after it was saved")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{str(path)!r} is not a checkpoint (not a torch.save archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: {error}") from error
    if bad is not None:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged (record {bad!r})")
    return path


class ChecksumCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoint IO with a checksum file beside each checkpoint,
    checked (with :func:`verify_checkpoint`) before each load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, *args: Any,
                        **kwargs: Any) -> None:
        super().save_checkpoint(checkpoint, path, *args, **kwargs)
        write_checksum(path)

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        verify_checkpoint(path)
        return super().load_checkpoint(path, *args, **kwargs)

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        checksum_path(path).unlink(missing_ok=True)
