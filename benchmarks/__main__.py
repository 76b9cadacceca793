"""``python -m benchmarks run|compare|overhead``: see ``benchmarks/README.md``."""

from benchmarks.cli import main

raise SystemExit(main())
