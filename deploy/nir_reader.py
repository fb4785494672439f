r"""NIR graph -> :class:`deploy.network.SpikingNetwork`, refusing what Loihi cannot run.

The graph must be one chain ``Input -> ... -> Output``. Linear nodes between two neuron
nodes are composed into one dense synapse block (Lava ``Dense``), each neuron node closes
a layer (Lava ``LIF``):

=================  ==========================================================
NIR node           becomes
=================  ==========================================================
``Affine(W, b)``   synapses ``W``, bias ``b`` on the next neurons
``Linear(W)``      synapses ``W``, no bias
``Conv2d``         its dense (Toeplitz) matrix over the flattened input
``AvgPool2d``      its dense matrix (weights ``1/k^2``)
``Flatten``        nothing (vectors are already flat, C order)
``LIF``            ``beta = 1 - dt/tau``, ``theta = v_threshold``, ``alpha = 0``
``CubaLIF``        ``alpha = 1 - dt/tau_syn``, ``beta = 1 - dt/tau_mem``
=================  ==========================================================

NIR carries no time step of its own; lorsp's export writes it into the graph's metadata
(``dt``, read by :func:`load_network`), and without it ``dt = 1e-4`` is snnTorch's (``export_nir``), so
``beta = 1 - dt/tau`` recovers snnTorch's ``beta`` exactly. The input gain of a neuron,
``g = r dt/tau`` (``LIF``) or ``g = (w_in dt/tau_syn)(r dt/tau_mem)`` (``CubaLIF``), is 1
for snnTorch exports; any other value is folded into the incoming ``W`` and ``b``. Reset
to ``v_reset = 0`` and ``v_leak = 0`` are required (Loihi resets to zero and has no leak
target). A single ``Affine`` per layer is taken over bit for bit; composed chains are
multiplied in float64 and rounded to float32 once.

Anything else (``Threshold``, ``Delay``, ``IF``, ``LI``, ``Scale``, recurrent sub-graphs,
branches, ...) is refused by name with a :class:`~lorsp.plumbing.errors.LorspError`.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import nir
import numpy as np

from deploy.hdf5_files import check_self_contained, read_bounded
from deploy.network import Layer, SpikingNetwork
from deploy.nir_graph import check_values, input_shape
from lorsp.plumbing.errors import LorspError

SNNTORCH_DT = 1e-4
LINEAR_NODES = (nir.Affine, nir.Linear, nir.Conv2d, nir.AvgPool2d, nir.Flatten)
NEURON_NODES = (nir.LIF, nir.CubaLIF)
SUPPORTED = (nir.Input, nir.Output, *LINEAR_NODES, *NEURON_NODES)
GAIN_RTOL = 1e-6
MAX_DENSE_INPUTS = 4096
"""The largest input of a Conv2d or AvgPool2d made dense (its basis is that size squared, in float64)."""


def supported_names() -> list[str]:
    return [t.__name__ for t in SUPPORTED]


def read_nir(path: str | Path) -> nir.NIRGraph:
    """Read a NIR file in a child process with a time limit (:func:`deploy.hdf5_files.read_bounded`);
    a missing, truncated, foreign, linked-out or looping file is a one-line LorspError, which names the node and
    its type where ``nir.read`` failed on a node type the installed NIR does not know."""
    path = Path(path)
    if not path.is_file():
        raise LorspError(f"NIR file not found: {path}")
    return read_bounded(_read_checked, path, "NIR graph")


def _read_checked(path: Path) -> nir.NIRGraph:
    """What :func:`read_nir` runs in its child: links and external storage refused, then the graph."""
    check_self_contained(path, "NIR graph")
    try:
        return nir.read(path, type_check=False)
    except Exception as exc:  # h5py and nir raise many kinds on foreign or cut files
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        failure = f"{type(exc).__name__}: {first}"
    unknown = _unknown_node_types(path)
    if unknown:
        name, kind = unknown[0]
        more = f" (and {len(unknown) - 1} more node(s) of unknown type)" if len(unknown) > 1 else ""
        raise LorspError(f"{path}: NIR node {name!r} has type {kind!r}, which NIR {nir.version} does not know, so "
                         f"nir.read cannot read the file{more}; known types: {', '.join(sorted(known_node_types()))}")
    raise LorspError(f"{path} is not a readable NIR graph (truncated or another format): {failure}")


def known_node_types() -> frozenset[str]:
    """The node types the installed NIR reads from a file: its node classes (``nir.read`` refuses any other)."""
    return frozenset(name for name in dir(nir.ir) if isinstance(getattr(nir.ir, name), type)
                     and issubclass(getattr(nir.ir, name), nir.NIRNode) and getattr(nir.ir, name) is not nir.NIRNode)


MAX_TYPE_SCAN = 100_000
"""The most groups :func:`_unknown_node_types` visits (a NIR file holds one group per node and parameter)."""


def _unknown_node_types(path: Path) -> list[tuple[str, str]]:
    """``(node, type)`` of every node whose ``type`` field names no NIR node type, nested nodes as ``g.n``.

    Reads nothing but the scalar string ``type`` fields of the node groups (the file is already checked by
    :func:`deploy.hdf5_files.check_self_contained`); any other failure gives no names."""
    known, found, visited = known_node_types(), [], 0
    try:
        with h5py.File(path, "r") as f:
            stack: list[tuple[str, h5py.Group | h5py.Dataset | None]] = [("", f.get("node"))]
            while stack and visited < MAX_TYPE_SCAN:
                prefix, group = stack.pop()
                visited += 1
                kind = _type_field(group)
                if kind == "NIRGraph" and isinstance(group.get("nodes"), h5py.Group):
                    children = group["nodes"]
                    stack.extend((f"{prefix}{name}.", children.get(name)) for name in sorted(children, reverse=True))
                elif kind is not None and kind not in known:
                    found.append((prefix[:-1][:80] or "(the file's top node)", kind))
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        pass  # a file h5py cannot walk: the names found so far, if any
    return found


def _type_field(group: object) -> str | None:
    """The ``type`` string of a node group, at most 60 characters; None where it has no scalar string one."""
    if not isinstance(group, h5py.Group):
        return None
    field = group.get("type")
    if not isinstance(field, h5py.Dataset) or field.shape != () or field.dtype.kind not in "SOU":
        return None
    value = field[()]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text[:60] if isinstance(text, str) else None


def load_network(path: str | Path) -> SpikingNetwork:
    """Read ``path`` and import it (:func:`network_from_nir`), with the ``dt`` of its metadata (default 1e-4)."""
    graph = read_nir(path)
    dt = (graph.metadata or {}).get("dt", SNNTORCH_DT)
    try:
        dt = float(np.asarray(dt))
    except (TypeError, ValueError):
        raise LorspError(f"{path}: the graph metadata's dt is not a number: {dt!r}") from None
    if not dt > 0:
        raise LorspError(f"{path}: the graph metadata's dt must be positive, got {dt}")
    return network_from_nir(graph, dt=dt, source=str(path))


def network_from_nir(graph: nir.NIRGraph, dt: float = SNNTORCH_DT, source: str = "NIR graph") -> SpikingNetwork:
    """Import a NIR chain of linear and LIF/CubaLIF nodes (see the module docstring)."""
    _refuse_unsupported(graph, source)
    _check_values(graph, source)
    chain = _chain(graph, source)
    try:
        graph.infer_types()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise LorspError(f"{source}: inconsistent shapes in the NIR graph: {first}") from None
    nodes = graph.nodes
    shape = input_shape(nodes[chain[0]], source)
    input_size = int(np.prod(shape))
    layers: list[Layer] = []
    op: tuple[np.ndarray, np.ndarray | None] | None = None  # (M, c): layer input -> current vector
    names: list[str] = []
    for name in chain[1:-1]:
        node = nodes[name]
        if isinstance(node, LINEAR_NODES):
            matrix, bias, shape = _linear_operator(name, node, shape, source)
            op = (matrix, bias) if op is None else _compose(op, (matrix, bias))
            names.append(name)
        else:
            n = int(np.prod(np.shape(node.v_threshold)))
            if int(np.prod(shape)) != n:
                raise LorspError(f"{source}: inconsistent shapes: neuron node {name!r} has {n} neurons, "
                                 f"but its input has {int(np.prod(shape))} values")
            if op is None:  # neurons straight after neurons: Loihi still needs a synapse block
                op = (np.eye(n, dtype=np.float32), None)
            layers.append(_layer(name, node, op, tuple(names + [name]), dt, source))
            op, names, shape = None, [], tuple(np.shape(node.v_threshold)) or (1,)
    if op is not None:
        raise LorspError(f"{source}: the graph ends in linear node(s) {', '.join(names)} after the last "
                         f"spiking layer; the chip's outputs must be spikes")
    if not layers:
        raise LorspError(f"{source}: no LIF or CubaLIF node: nothing for the chip to run")
    return SpikingNetwork(input_size=input_size, layers=tuple(layers), dt=dt, meta={"source": source})


def _refuse_unsupported(graph: nir.NIRGraph, source: str) -> None:
    for name, node in graph.nodes.items():
        if not isinstance(node, SUPPORTED):
            kind = type(node).__name__
            extra = " (a recurrent or nested sub-graph)" if isinstance(node, nir.NIRGraph) else ""
            raise LorspError(f"{source}: NIR node {name!r} is a {kind}{extra}, which hw_sim cannot map to "
                             f"Loihi; supported: {', '.join(supported_names())}")


def _check_values(graph: nir.NIRGraph, source: str) -> None:
    """Every parameter of every node is an array of finite real numbers (:func:`deploy.nir_graph.check_values`),
    and every neuron's time constants and threshold are positive."""
    for name, node in graph.nodes.items():
        check_values(name, node, source)
        if isinstance(node, NEURON_NODES):
            for key in ("tau", "tau_mem", "tau_syn", "v_threshold"):
                if hasattr(node, key) and not np.all(np.asarray(getattr(node, key), dtype=np.float64) > 0):
                    raise LorspError(f"{source}: {type(node).__name__} node {name!r} needs {key} > 0")


def _chain(graph: nir.NIRGraph, source: str) -> list[str]:
    """Node names from the Input to the Output; refuses branches, cycles and strays."""
    nodes = graph.nodes
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise LorspError(f"{source}: need exactly one Input and one Output node, found "
                         f"{len(inputs)} and {len(outputs)}")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise LorspError(f"{source}: edge {a!r} -> {b!r} names a node that does not exist")
        succ[a].append(b)
        pred[b].append(a)
    chain, name = [inputs[0]], inputs[0]
    while name != outputs[0]:
        if len(succ[name]) != 1:
            raise LorspError(f"{source}: node {name!r} has {len(succ[name])} successors; hw_sim runs "
                             f"feed-forward chains only (no branches, no dead ends)")
        name = succ[name][0]
        if name in chain or len(pred[name]) != 1:
            raise LorspError(f"{source}: node {name!r} has {len(pred[name])} inputs or closes a cycle; "
                             f"hw_sim runs feed-forward chains only")
        chain.append(name)
    if len(chain) != len(nodes):
        stray = sorted(set(nodes) - set(chain))
        raise LorspError(f"{source}: node(s) {', '.join(stray)} are not on the Input -> Output chain")
    return chain


def _linear_operator(name: str, node: nir.NIRNode, shape: tuple[int, ...],
                     source: str) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """``(M, c, out_shape)`` with ``y = M x + c`` on flattened vectors (``c`` None: no bias)."""
    n_in = int(np.prod(shape))
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = np.asarray(node.weight, dtype=np.float32)
        if weight.ndim != 2 or weight.shape[1] != n_in:
            raise LorspError(f"{source}: inconsistent shapes: {type(node).__name__} node {name!r} has weight "
                             f"{weight.shape} but its input has {n_in} values")
        bias = np.asarray(node.bias, dtype=np.float32).reshape(-1) if isinstance(node, nir.Affine) else None
        if bias is not None and bias.shape != (weight.shape[0],):
            raise LorspError(f"{source}: inconsistent shapes: Affine node {name!r} has weight {weight.shape} "
                             f"and bias {bias.shape}")
        return weight, bias, (weight.shape[0],)
    import torch  # only the convolutional nodes need it
    if isinstance(node, nir.Flatten):
        out_shape = tuple(torch.empty(shape).flatten(node.start_dim, node.end_dim).shape)
        return np.eye(n_in, dtype=np.float32), None, out_shape
    if len(shape) != 3:
        raise LorspError(f"{source}: inconsistent shapes: {type(node).__name__} node {name!r} needs a "
                         f"(C, H, W) input, got {shape}")
    if n_in > MAX_DENSE_INPUTS:
        raise LorspError(f"{source}: {type(node).__name__} node {name!r} reads {n_in} values; at most "
                         f"{MAX_DENSE_INPUTS} can be made a dense synapse block")
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
    if isinstance(node, nir.Conv2d):
        weight = torch.as_tensor(np.asarray(node.weight), dtype=torch.float64)
        padding = node.padding if isinstance(node.padding, str) else tuple(np.atleast_1d(node.padding).tolist())
        out = torch.nn.functional.conv2d(basis, weight, None, tuple(np.atleast_1d(node.stride).tolist()),
                                         padding, tuple(np.atleast_1d(node.dilation).tolist()), int(node.groups))
        bias = np.repeat(np.asarray(node.bias, dtype=np.float64), int(np.prod(out.shape[2:])))
    else:  # AvgPool2d
        out = torch.nn.functional.avg_pool2d(basis, tuple(np.atleast_1d(node.kernel_size).tolist()),
                                             tuple(np.atleast_1d(node.stride).tolist()),
                                             tuple(np.atleast_1d(node.padding).tolist()))
        bias = None
    matrix = out.reshape(n_in, -1).T.numpy().astype(np.float32)
    return matrix, None if bias is None else bias.astype(np.float32), tuple(out.shape[1:])


def _compose(first: tuple[np.ndarray, np.ndarray | None],
             then: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray | None]:
    """``then(first(x))``: ``M = M2 M1``, ``c = M2 c1 + c2`` (float64, rounded once)."""
    m1, c1 = first
    m2, c2 = then
    matrix = (m2.astype(np.float64) @ m1.astype(np.float64)).astype(np.float32)
    if c1 is None and c2 is None:
        return matrix, None
    bias = np.zeros(m2.shape[0])
    if c1 is not None:
        bias += m2.astype(np.float64) @ c1
    if c2 is not None:
        bias += c2
    return matrix, bias.astype(np.float32)


def _layer(name: str, node: nir.NIRNode, op: tuple[np.ndarray, np.ndarray | None], sources: tuple[str, ...],
           dt: float, source: str) -> Layer:
    matrix, bias = op
    bias = np.zeros(matrix.shape[0], dtype=np.float32) if bias is None else bias
    flat = lambda a: np.asarray(a, dtype=np.float64).reshape(-1)  # noqa: E731
    for key in ("v_leak", "v_reset"):
        if np.any(flat(getattr(node, key)) != 0):
            raise LorspError(f"{source}: {type(node).__name__} node {name!r} has a nonzero {key}; Loihi's "
                             f"LIF resets to 0 and leaks towards 0")
    if isinstance(node, nir.LIF):
        tau = flat(node.tau)
        beta, alpha = 1.0 - dt / tau, np.zeros_like(tau)
        gain = flat(node.r) * dt / tau
    else:
        tau_syn, tau_mem = flat(node.tau_syn), flat(node.tau_mem)
        alpha, beta = 1.0 - dt / tau_syn, 1.0 - dt / tau_mem
        gain = flat(node.w_in) * dt / tau_syn * flat(node.r) * dt / tau_mem
        if np.any(alpha > 0) and np.any(bias != 0):
            raise LorspError(f"{source}: CubaLIF node {name!r} follows a bias; snnTorch adds it to the "
                             f"synaptic current, Lava to the voltage, so it cannot be mapped exactly")
    if not np.allclose(gain, 1.0, rtol=GAIN_RTOL, atol=0.0):
        matrix = (matrix * gain[:, None]).astype(np.float32)
        bias = (bias * gain).astype(np.float32)
    return Layer(name=name, weight=np.ascontiguousarray(matrix, dtype=np.float32),
                 bias=np.asarray(bias, dtype=np.float32), beta=beta.astype(np.float32),
                 threshold=flat(node.v_threshold).astype(np.float32), alpha=alpha.astype(np.float32),
                 sources=sources)
