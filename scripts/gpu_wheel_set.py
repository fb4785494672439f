"""Which of lorsp's requirements a GPU machine lacks: the wheels scripts/build_gpu_wheels.sh downloads.

Reads the report of ``pip install --dry-run --ignore-installed --report`` on lorsp's wheel (the whole closure
resolved for the GPU machine's Python and platform) and walks it from lorsp: a requirement the machine has
(``benchmarks/gpu_machine_has.txt``) is taken from the machine and not followed further (its own needs are the
machine's business), unless the file records the machine's version and that version falls outside what is asked
for, in which case it is carried like a missing one. A requirement the machine lacks is carried and followed.
A name in ``--exclude`` is neither carried nor followed (say why where you pass it). ``--carry`` names
packages to carry although the machine has them (a version the file does not record, found too old there).

Prints ``name==version`` of each wheel to carry, one a line, lorsp itself left out (it is built, not
downloaded); what was decided and why goes to stderr.

    python scripts/gpu_wheel_set.py REPORT.json HAS.txt --python-version 3.12 [--exclude NAME ...] [--carry NAME ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # pip carries its own copy
    from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]
    from pip._vendor.packaging.version import Version  # type: ignore[no-redef]


def read_has(path: Path) -> dict[str, str | None]:
    """``name`` or ``name==version`` a line, ``#`` comments: the machine's packages, with a version where known."""
    has: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            has[canonicalize_name(name)] = version.strip() or None
    return has


def target_environment(python_version: str) -> dict[str, str]:
    """Marker values of the GPU machine: CPython ``python_version`` on x86_64 Linux."""
    full = python_version if python_version.count(".") >= 2 else python_version + ".0"
    return {"implementation_name": "cpython", "implementation_version": full, "os_name": "posix",
            "platform_machine": "x86_64", "platform_release": "", "platform_system": "Linux", "platform_version": "",
            "python_full_version": full, "platform_python_implementation": "CPython",
            "python_version": ".".join(full.split(".")[:2]), "sys_platform": "linux"}


def select(report: dict, has: dict[str, str | None], python_version: str, exclude: set[str], carry: set[str],
           log=lambda line: print(line, file=sys.stderr)) -> list[str]:
    """The ``name==version`` of every wheel to carry (lorsp's own left out); raises ValueError on a bad name."""
    items = {canonicalize_name(i["metadata"]["name"]): i["metadata"] for i in report["install"]}
    if "lorsp" not in items:
        raise ValueError("the report does not resolve lorsp")
    exclude = {canonicalize_name(n) for n in exclude}
    carry = {canonicalize_name(n) for n in carry}
    stale = sorted((exclude | carry) - items.keys())
    if stale:
        raise ValueError(f"{', '.join(stale)}: not among lorsp's requirements for this machine (a stale --exclude or "
                         "--carry?)")
    env = target_environment(python_version)
    wanted: dict[str, set[str]] = {"lorsp": set()}  # name -> extras asked for
    seen: dict[str, str] = {}  # name -> why carried
    queue = deque(["lorsp"])
    while queue:
        name = queue.popleft()
        meta = items[name]
        for line in meta.get("requires_dist") or []:
            req = Requirement(line)
            extras = wanted[name] or {""}
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in extras):
                continue
            dep = canonicalize_name(req.name)
            if dep not in items:
                raise ValueError(f"{dep} (asked for by {name}) is not in the report")
            if dep in exclude:
                if dep not in seen:
                    seen[dep] = "excluded"
                    log(f"  left out: {dep} (asked for by {name}; --exclude)")
                continue
            version = items[dep]["version"]
            if dep in has and dep not in carry:
                known = has[dep]
                if known is None or req.specifier.contains(Version(known), prereleases=True):
                    if dep not in seen:
                        seen[dep] = "machine"
                    continue
                why = f"the machine has {known}, {name} asks for {req.specifier}"
            elif dep in has:
                why = "--carry"
            else:
                why = f"missing there (asked for by {name})"
            if seen.get(dep, "machine") == "machine" or not req.extras <= wanted.get(dep, set()):
                if seen.get(dep) != "carried":
                    log(f"  carried: {dep}=={version}: {why}")
                seen[dep] = "carried"
                wanted.setdefault(dep, set()).update(req.extras)
                queue.append(dep)
    from_machine = sorted(n for n, s in seen.items() if s == "machine")
    log(f"  from the machine: {', '.join(from_machine)}")
    return sorted(f"{n}=={items[n]['version']}" for n, s in seen.items() if s == "carried")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path)
    p.add_argument("has", type=Path)
    p.add_argument("--python-version", required=True)
    p.add_argument("--exclude", nargs="*", default=[])
    p.add_argument("--carry", nargs="*", default=[])
    args = p.parse_args(argv)
    try:
        chosen = select(json.loads(args.report.read_text()), read_has(args.has), args.python_version,
                        set(args.exclude), set(args.carry))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
