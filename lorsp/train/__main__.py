"""``python -m lorsp.train`` (and ``torchrun ... -m lorsp.train``): the ``lorsp-train`` command."""
from lorsp.train.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
