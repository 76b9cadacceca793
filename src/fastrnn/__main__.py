"""``python -m fastrnn`` runs the ``fastrnn`` command line (see :mod:`fastrnn.lightning.cli`)."""

from fastrnn.lightning.cli import console_main

if __name__ == "__main__":
    console_main()
