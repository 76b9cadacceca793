"""``python -m fastrnn.lightning`` runs the ``fastrnn`` command line."""

from fastrnn.lightning.cli import main

if __name__ == "__main__":
    main()
