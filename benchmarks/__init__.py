"""fastrnn's benchmark suite: fastrnn's backends against torch.nn (cuDNN on GPU).

Run from a checkout with ``python -m benchmarks run --suite quick`` (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _use_source_tree() -> None:
    """Import fastrnn from this checkout when it is not installed.

    Mirrors pyproject's package mapping: ``src/fastrnn`` is the package and the top-level
    ``kernels/`` folder is ``fastrnn.kernels`` (found lazily, so triton is not imported here).
    """
    src = REPO_ROOT / "src"
    if not (src / "fastrnn").is_dir() or importlib.util.find_spec("fastrnn") is not None:
        return
    sys.path.insert(0, str(src))
    if (REPO_ROOT / "kernels" / "__init__.py").is_file():
        import fastrnn

        fastrnn.__path__.append(str(REPO_ROOT))


_use_source_tree()
