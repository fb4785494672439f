"""One kind of error for everything a user can get wrong.

Library code raises :class:`LorspError` with a one-line message; console
scripts catch it (see :func:`lorsp.plumbing.cli.run_cli`), print ``error: <message>``
and exit with code 2. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class LorspError(Exception):
    """A user-facing error: bad input, missing file, unknown name."""

    exit_code = 2
