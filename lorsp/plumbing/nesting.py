"""How deeply a loaded value nests, measured without recursion.

A pickle or JSON file can nest a list or dict 100,000 levels deep in a megabyte; loading it works
(the unpicklers keep their own stack), but any recursive walk afterwards (``repr``, ``json.dumps``,
``copy.deepcopy``, torch's ``load_state_dict``) ends in a RecursionError traceback. Readers of
files look for too deep a nesting first, with this explicit stack, and refuse it naming where it is.
"""
from __future__ import annotations

from typing import Any

CONTAINERS = (dict, list, tuple, set, frozenset)


def too_deep(value: Any, limit: int) -> tuple[Any, ...] | None:
    """The keys (and list indices) leading to the first container nested deeper than ``limit`` in ``value``
    (``[[1]]`` nests 2 deep), or None when there is none."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if not isinstance(item, CONTAINERS):
            continue
        if len(where) >= limit:
            return where
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend((child, (*where, key)) for key, child in pairs)
    return None


def describe(where: tuple[Any, ...], shown: int = 3) -> str:
    """``where`` for a message: ``['config']['zzz']['k']...`` (keys cut to 40 characters)."""
    text = "".join(f"[{str(k)[:40]!r}]" if isinstance(k, str) else f"[{k}]" for k in where[:shown])
    return text + ("..." if len(where) > shown else "")
