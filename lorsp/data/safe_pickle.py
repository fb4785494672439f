"""Read pickled numpy arrays without letting the pickle run code.

Some datasets ship as pickles (Animal-Shape-MNIST, CIFAR's python version).
``pickle.load`` would call whatever function the file names; the unpickler
here resolves only the few numpy globals that rebuilding arrays needs and
refuses every other global with :class:`pickle.UnpicklingError`. Plain
containers and scalars (dict, list, tuple, str, bytes, int, float) are built by
pickle's own opcodes and need no global at all.
"""
from __future__ import annotations

import codecs
import pickle
from typing import IO, Any, Callable

import numpy as np

_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it for ``bytes``; latin-1 only."""
    if encoding.lower() not in _LATIN1:
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The allowed ``(module, name)`` globals, under numpy 1.x and 2.x module names."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array rebuilder
    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar rebuilder
    from_buffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 arrays: frombuffer + reshape
    allowed: dict[tuple[str, str], Callable[..., Any]] = {("_codecs", "encode"): _latin1_encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = from_buffer
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "ndarray")] = np.ndarray
        allowed[(module, "dtype")] = np.dtype
    return allowed


class NumpyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else executable."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data pickle") from None


def load_numpy_pickle(fileobj: IO[bytes], encoding: str = "latin1") -> Any:
    """Unpickle ``fileobj`` allowing only numpy arrays, dtypes, scalars and plain containers.

    Args:
        fileobj: a binary file object (e.g. from ``open`` or ``gzip.open``).
        encoding: how Python 2 ``str`` objects are decoded; ``"latin1"`` is
            what numpy arrays pickled under Python 2 (CIFAR) need, ``"bytes"``
            keeps them as bytes.

    Raises:
        pickle.UnpicklingError: the pickle names any other global (e.g. ``os.system``).
    """
    return NumpyUnpickler(fileobj, encoding=encoding).load()
