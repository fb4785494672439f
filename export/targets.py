"""Export targets by name: ``lorsp-export --target NAME``.

A target is one function ``(checkpoint, out, **options) -> manifest`` and one line here.
The options a target takes are the keyword parameters of its signature; ``finish``
(a step run on the staged directory before it is published) marks a target whose
output a chip simulator can open.
"""
from __future__ import annotations

from typing import Any, Callable

from export.all_target import export_all
from export.loihi import export_loihi
from export.onnx_target import export_onnx
from lorsp.plumbing.registry import Registry

Target = Callable[..., dict[str, Any]]

TARGETS: Registry[Target] = Registry("export target")
TARGETS.add("loihi", export_loihi)
TARGETS.add("onnx", export_onnx)
TARGETS.add("all", export_all)


def get_target(name: str) -> Target:
    """The export function of target ``name``; LorspError listing the targets for an unknown one."""
    return TARGETS.get(name)


def list_targets() -> list[str]:
    """The names of the export targets, sorted."""
    return TARGETS.names()
