"""``python -m prunegym`` is the ``prunegym`` command."""

from prunegym.experiments.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
