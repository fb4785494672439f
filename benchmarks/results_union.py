"""One table from several benchmark tables of the same protocol: docs/results.md's accuracy, diagnostics and
parameter tables, each row kept with the table (its command, settings and commit) it came from.

Two kinds of table are assembled: an accuracy table of benchmarks/baselines.py (``{"settings", "machine",
"git_commit", "table": {dataset: {method spec: cell}}}``; a row is (dataset, method)) and a diagnostics table
of benchmarks/prompt_diagnostics.py (``{"settings", "machine", "git_commit", "rows": [...]}``; a row is
(dataset, method, seed)). The rules, the same for both:

- every input's protocol is the first's: its settings but :data:`FREE` (which methods, seeds and data sets
  ran, and where or how the runs were scheduled) are equal, else refused;
- a row may come from one input only, else refused; a method is the run tag of its spec
  (``lorsp:prompt-lr=0.1,rank=8`` and ``lorsp-prompt-lr-0.1_rank-8`` are one method);
- ``drops``, (input, method) pairs, take a method's rows out of one input before the union: the way to
  replace an older table's rows by a newer table's (a drop that matches no row is refused, unless the
  input, itself assembled, records that drop already);
- the assembled table lists its ``sources`` (input path, settings, machine, commit, runs reused from other
  code) and each row names its source by index (``"source"``); a row dropped is recorded in ``dropped``.
  An input that is itself assembled brings its sources along (its rows keep theirs), less the rows of a
  source table that a later input is (the later input brings them, in its order): assembling again from an
  assembled table and the same later inputs gives the same table.

A single input with nothing dropped is returned as it is.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from benchmarks.baselines import parse_method

FREE = frozenset({"methods", "seeds", "datasets", "table_name", "out", "json", "runs", "jobs", "engine",
                  "engine_folder", "slurm_partition", "slurm_gpus", "timeout_min", "device", "reuse_stale"})
"""Settings that may differ between the inputs of one assembled table (everything else is the protocol)."""
SOURCE_KEYS = ("settings", "machine", "git_commit", "reused_stale")
"""What an assembled table keeps of each input table, beside the input's path."""


class UnionError(ValueError):
    """Inputs that cannot be assembled into one table; the message is one line."""


def method_tag(method: str) -> str:
    """The run tag of a method spec or tag: the name two inputs' rows are compared by."""
    return parse_method(method)[2]


def protocol(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without :data:`FREE`."""
    return {k: v for k, v in settings.items() if k not in FREE}


def sources_of(table: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The source records of one input: its own (a plain table) or those it was assembled from."""
    if "sources" in table:
        return [dict(s) for s in table["sources"]]
    return [{"input": path, **{k: table[k] for k in SOURCE_KEYS if k in table}}]


@dataclass(frozen=True)
class Kind:
    """How one kind of table lists its rows and is rebuilt from them."""
    rows: Callable[[dict[str, Any]], list[tuple[tuple, str, dict[str, Any]]]]
    """table -> [(row key, method, row)], in the table's order"""
    body: Callable[[list[tuple[tuple, str, dict[str, Any]]]], dict[str, Any]]
    """[(row key, method, row)] -> the table's body (its ``table`` or ``rows``)"""
    seeds: Callable[[dict[str, Any]], list[int]]
    """row -> the seeds it covers"""


def accuracy_rows(table: dict[str, Any]) -> list[tuple[tuple, str, dict[str, Any]]]:
    return [((dataset, method_tag(spec)), spec, cell) for dataset, by_spec in table["table"].items()
            for spec, cell in by_spec.items()]


def accuracy_body(rows: list[tuple[tuple, str, dict[str, Any]]]) -> dict[str, Any]:
    body: dict[str, dict[str, Any]] = {}
    for (dataset, _), spec, cell in rows:
        body.setdefault(dataset, {})[spec] = cell
    return {"table": body}


def diagnostics_rows(table: dict[str, Any]) -> list[tuple[tuple, str, dict[str, Any]]]:
    return [((r["dataset"], method_tag(r["method"]), r["seed"]), r["method"], r) for r in table["rows"]]


def diagnostics_body(rows: list[tuple[tuple, str, dict[str, Any]]]) -> dict[str, Any]:
    return {"rows": [row for _, _, row in rows]}


def in_order(items: list[Any]) -> list[Any]:
    """``items`` without repeats, in the order of first appearance."""
    return list(dict.fromkeys(items))


ACCURACY = Kind(accuracy_rows, accuracy_body, lambda cell: list(cell.get("seeds", [])))
DIAGNOSTICS = Kind(diagnostics_rows, diagnostics_body, lambda row: [row["seed"]])


def check_protocols(inputs: list[tuple[str, dict[str, Any]]]) -> None:
    """Refuse inputs whose protocol (:func:`protocol`) differs from the first's, naming the first setting."""
    first_path, first = inputs[0]
    want = protocol(first["settings"])
    for path, table in inputs[1:]:
        got = protocol(table["settings"])
        for key in sorted(set(want) | set(got)):
            if want.get(key, "(absent)") != got.get(key, "(absent)"):
                raise UnionError(f"{path} ran another protocol than {first_path}: {key} "
                                 f"{got.get(key, '(absent)')!r} against {want.get(key, '(absent)')!r}")


def assemble(inputs: list[tuple[str, dict[str, Any]]], drops: list[tuple[str, str]] = (),
             kind: Kind = ACCURACY) -> tuple[dict[str, Any], dict[tuple, str]]:
    """One table of ``kind`` from ``inputs`` ([(path, table)], in their order) with ``drops`` ([(path,
    method)]) taken out first; and the input path each row was read from, by row key (a collected input's
    seed copies lie beside it). Raises :class:`UnionError` on another protocol, a row from two inputs, or a
    drop that names no input or no row."""
    if not inputs:
        raise UnionError("no input table to assemble")
    paths = [path for path, _ in inputs]
    for path, method in drops:
        if path not in paths:
            raise UnionError(f"--drop-method names {path}, which is not one of the inputs ({', '.join(paths)})")
    if len(inputs) == 1 and not drops:
        table = inputs[0][1]
        return table, {key: inputs[0][0] for key, _, _ in kind.rows(table)}
    check_protocols(inputs)
    sources: list[dict[str, Any]] = []
    source_index: dict[str, int] = {}   # a source's JSON -> its position in ``sources``
    rows: list[tuple[tuple, str, dict[str, Any]]] = []
    origin: dict[tuple, str] = {}
    keys = [{json.dumps(src, sort_keys=True) for src in sources_of(t, p)} for p, t in inputs]
    later = [set().union(*keys[k + 1:]) for k in range(len(inputs))]
    dropped: list[dict[str, Any]] = []
    used_drops: set[tuple[str, str]] = set()
    for position, (path, table) in enumerate(inputs):
        index = []
        for source in sources_of(table, path):   # one record per source, however often it comes in
            key = json.dumps(source, sort_keys=True)
            if key not in source_index:
                source_index[key] = len(sources)
                sources.append(source)
            index.append(source_index[key])
        for key, method, row in kind.rows(table):
            drop = next(((p, m) for p, m in drops if p == path and method_tag(m) == key[1]), None)
            if drop:
                used_drops.add(drop)
                dropped.append({"input": path, "method": method, "row": list(key)})
                continue
            row = {**row, "source": index[row["source"]] if "source" in row else index[0]}
            if json.dumps(sources[row["source"]], sort_keys=True) in later[position]:
                continue   # an assembled input's row of a table named again later: that table brings it
            if key in origin:
                raise UnionError(f"the row {', '.join(map(str, key))} comes from both {origin[key]} and {path}; "
                                 f"take it out of one with --drop-method FILE METHOD")
            origin[key] = path
            rows.append((key, method, row))
    for drop in drops:
        recorded = any(d["input"] == drop[0] and method_tag(d["method"]) == method_tag(drop[1])
                       for _, t in inputs for d in t.get("dropped", []))
        if tuple(drop) not in used_drops and not recorded:
            raise UnionError(f"--drop-method {drop[0]} {drop[1]}: that input has no row of this method")
    for earlier in (t.get("dropped", []) for _, t in inputs):
        dropped = [d for d in earlier if d not in dropped] + dropped
    referenced = in_order([row["source"] for _, _, row in rows])
    renumber = {old: new for new, old in enumerate(sorted(referenced))}
    rows = [(key, method, {**row, "source": renumber[row["source"]]}) for key, method, row in rows]
    first = inputs[0][1]
    kept = [sources[k] for k in sorted(referenced)]
    settings = {**first["settings"], "methods": in_order([method for _, method, _ in rows]),
                "seeds": sorted({seed for _, _, row in rows for seed in kind.seeds(row)}),
                "datasets": in_order([key[0] for key, _, _ in rows])}
    machines = in_order([s.get("machine", "unknown") for s in kept])
    commits = in_order([s.get("git_commit", "unknown") for s in kept])
    return ({"settings": settings, "machine": "; ".join(machines), "git_commit": commits[0],
             "sources": kept, **kind.body(rows), "dropped": dropped}, origin)
