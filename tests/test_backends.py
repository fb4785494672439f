"""hw_sim.backends: one check of what every backend takes, and Lava imported only when the lava backend is asked for.

The checks run on the real backends (fast, and lava with Lava imported, not run: a refusal
comes before any process is built). The import tests run a fresh interpreter, once with
Lava installed and once with ``import lava`` made to fail (a directory first on
``PYTHONPATH`` holding a ``lava`` package that raises ImportError), and run a real fast
simulation and the console scripts there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deploy.network import Layer, SpikingNetwork
from hw_sim import energy
from hw_sim.backends import MODES, get_backend, list_backends
from hw_sim.lava_runtime import LAVA_INSTALL_HINT
from lorsp.plumbing.errors import LorspError
from tests.conftest import LAVA, ROOT, assert_one_line_error, run_cli

ONE = np.ones(1, dtype=np.float32)
TINY = SpikingNetwork(8, (Layer("0", np.full((1, 8), 0.25, np.float32), 0 * ONE, 0 * ONE, ONE, 0 * ONE),))
"""One neuron, 8 inputs of weight 0.25, threshold 1, beta 0: fires on a step where 5 or more inputs spike."""
TINY_INPUT = (np.arange(8)[None, None, :] < np.arange(9)[None, :, None]).astype(np.uint8)  # sample k: k inputs on
TINY_SPIKES = [0, 0, 0, 0, 0, 1, 1, 1, 1]

GOOD = np.zeros((2, 3, 8), np.uint8)
REFUSALS = [  # (what changes in the call, a fragment of the one-line error)
    (dict(spikes_in=GOOD[:, :, 1:]), "input spikes must be (T, N, 8), got (2, 3, 7)"),
    (dict(spikes_in=GOOD[0]), "input spikes must be (T, N, 8), got (3, 8)"),
    (dict(spikes_in=GOOD + 2), "input spikes must be binary"),
    (dict(spikes_in=np.full((2, 3, 8), np.nan)), "input spikes must be binary"),
    (dict(spikes_in=GOOD.astype(np.float64) - 1), "input spikes must be binary"),
    (dict(spikes_in=GOOD[:0]), "at least one step and one sample, got (0, 3, 8)"),
    (dict(spikes_in=GOOD[:, :0]), "at least one step and one sample, got (2, 0, 8)"),
    (dict(spikes_in=np.full((2, 3, 8), "1")), "must be bool, integer or float, got dtype <U1"),
    (dict(spikes_in=GOOD.astype(complex)), "must be bool, integer or float, got dtype complex128"),
    (dict(network="net.nir"), "network must be a deploy.network.SpikingNetwork, got str"),
    (dict(mode="half"), "unknown mode 'half'; choose one of: float, fixed"),
    (dict(timeout=0), "--timeout must be positive and finite (seconds), got 0"),
    (dict(timeout=-5.0), "--timeout must be positive and finite (seconds), got -5.0"),
    (dict(timeout=float("inf")), "got inf"),
    (dict(timeout=float("nan")), "got nan"),
    (dict(timeout="60"), "got '60'"),
]


@pytest.mark.parametrize("backend", ["fast", LAVA])
@pytest.mark.parametrize("change,fragment", REFUSALS, ids=[f for _, f in REFUSALS])
def test_every_backend_refuses_bad_spikes_mode_and_timeout_with_the_same_line(backend, change, fragment):
    call = {"network": TINY, "spikes_in": GOOD, "mode": "fixed", "timeout": 10.0, **change}
    with pytest.raises(LorspError) as info:
        get_backend(backend)(call.pop("network"), call.pop("spikes_in"), **call)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_valid_spikes_of_every_kind_pass_the_check():
    """bool, integer and float 0/1 are all input spikes; the fast backend gives the same spikes for each."""
    run = get_backend("fast")
    results = [run(TINY, TINY_INPUT.astype(dtype), mode=mode, timeout=10.0).layer_spikes[0][0, :, 0].tolist()
               for dtype in (bool, np.uint8, np.int64, np.float32) for mode in MODES]
    assert results == [TINY_SPIKES] * 8


def test_unknown_backend_names_every_backend_lava_included():
    with pytest.raises(LorspError, match=r"unknown backend 'nope'; choose one of: fast, lava$"):
        get_backend("nope")
    assert list_backends() == ["fast", "lava"]


def python(code: str, *, block_lava: bool, tmp_path) -> subprocess.CompletedProcess:
    """``python -c code`` in the repository, with ``import lava`` failing when ``block_lava``."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=lava_env(block_lava, tmp_path))


def lava_env(block_lava: bool, tmp_path) -> dict:
    """The environment of a child interpreter; ``PYTHONPATH`` starts with a failing ``lava`` when ``block_lava``."""
    env = dict(os.environ)
    if block_lava:
        blocker = tmp_path / "no-lava"
        (blocker / "lava").mkdir(parents=True, exist_ok=True)
        (blocker / "lava" / "__init__.py").write_text('raise ImportError("lava is blocked for this test")\n')
        env["PYTHONPATH"] = os.pathsep.join([str(blocker), *filter(None, [env.get("PYTHONPATH")])])
    return env


FAST_WITHOUT_LAVA = """
import json, sys
import numpy as np
import hw_sim, hw_sim.backends, hw_sim.cli, hw_sim.cosim_cli, hw_sim.simulate
from hw_sim.backends import MODES, get_backend, list_backends
from deploy.network import Layer, SpikingNetwork
one = np.ones(1, dtype=np.float32)
net = SpikingNetwork(8, (Layer("0", np.full((1, 8), 0.25, np.float32), 0 * one, 0 * one, one, 0 * one),))
spikes = (np.arange(8)[None, None, :] < np.arange(9)[None, :, None]).astype(np.uint8)
runs = {mode: get_backend("fast")(net, spikes, mode=mode, timeout=60) for mode in MODES}
out = {"modes": list(MODES), "backends": list_backends(),
        "spikes": {m: r.layer_spikes[0][0, :, 0].tolist() for m, r in runs.items()},
        "steps": {m: r.steps for m, r in runs.items()},
        "lava_modules": sorted(m for m in sys.modules if m == "lava" or m.startswith("lava."))}
import lorsp, lorsp.train
out["lava_modules_after_lorsp"] = sorted(m for m in sys.modules if m == "lava" or m.startswith("lava."))
try:
    get_backend("lava")
    out["lava"] = "loaded"
except Exception as exc:
    out["lava"] = type(exc).__name__ + ": " + str(exc)
out["lava_runtime"] = "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules
print(json.dumps(out))
"""


@pytest.mark.parametrize("block_lava", [pytest.param(False, marks=pytest.mark.lava, id="lava-installed"),
                                        pytest.param(True, id="lava-blocked")])
def test_hw_sim_lorsp_and_the_fast_backend_never_import_lava(block_lava, tmp_path):
    """Importing hw_sim, its CLIs, lorsp and lorsp.train, listing the backends and running fast import no Lava;
    ``get_backend("lava")`` then imports it (and Lava's multiprocessing layer), or fails in one line without it."""
    done = python(FAST_WITHOUT_LAVA, block_lava=block_lava, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["modes"] == ["float", "fixed"] and out["backends"] == ["fast", "lava"]
    assert out["spikes"] == {"float": TINY_SPIKES, "fixed": TINY_SPIKES} and out["steps"] == {"float": 1, "fixed": 1}
    assert out["lava_modules"] == [] and out["lava_modules_after_lorsp"] == []
    if block_lava:
        assert out["lava"] == ("LorspError: the lava backend cannot be loaded here (lava is blocked for this test); "
                               f"{LAVA_INSTALL_HINT}, or use another backend: fast")
        assert not out["lava_runtime"]
    else:
        assert out["lava"] == "loaded" and out["lava_runtime"]


@pytest.mark.parametrize("module", ["hw_sim.cli", "hw_sim.cosim_cli"])
def test_help_lists_the_backends_and_energy_tables_without_lava(module, tmp_path):
    proc = run_cli(module, "--help", env=lava_env(True, tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = "".join(proc.stdout.split())  # argparse wraps lines, also at hyphens
    assert f"backends:{','.join(list_backends())}." in text
    assert f"energytables:{','.join(energy.list_tables())}." in text and len(energy.list_tables()) == 5


def test_asking_for_lava_without_lava_is_one_error_line(tmp_path):
    out = tmp_path / "report"
    proc = run_cli("hw_sim.cli", str(tmp_path / "no-bundle"), "-o", str(out), "--backend", "lava", "--quiet",
                   env=lava_env(True, tmp_path))
    assert_one_line_error(proc, "the lava backend cannot be loaded here (lava is blocked for this test)",
                          "pip install 'lorsp[lava]' (Python 3.10 only", "use another backend: fast")
    assert not out.exists()


def test_training_export_and_the_fast_simulator_run_with_import_lava_blocked(tmp_path):
    """The path a GPU machine without Lava takes: lorsp-train, lorsp-export --target loihi --no-simulate and
    lorsp-hwsim --backend fast, each a fresh interpreter in which ``import lava`` fails."""
    env = lava_env(True, tmp_path)
    run, bundle, report = tmp_path / "run", tmp_path / "bundle", tmp_path / "report"
    trained = run_cli("lorsp.train", "--prompt", "lorsp", "--dataset", "sklearn-digits", "--image-size", "32",
                      "--epochs", "1", "--limit-train", "32", "--limit-test", "16", "--batch-size", "16",
                      "--device", "cpu", "--quiet", "--out", str(run), env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = run_cli("pipeline.export_cli", "--target", "loihi", str(run / "model.pt"), "-o", str(bundle),
                       "--samples", "8", "--no-simulate", "--quiet", env=env)
    assert exported.returncode == 0, exported.stderr[-3000:]
    simulated = run_cli("hw_sim.cli", str(bundle), "--samples", "8", "--backend", "fast", "--quiet",
                        "-o", str(report), env=env)
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    result = json.loads((report / "report.json").read_text())
    assert result["backend"] == "fast" and result["modes"] == ["float", "fixed"]
    # the blocker is real: the same interpreter setup cannot import Lava
    blocked = python("import lava", block_lava=True, tmp_path=tmp_path)
    assert blocked.returncode != 0 and "lava is blocked for this test" in blocked.stderr
