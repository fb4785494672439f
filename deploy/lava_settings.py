"""How a Lava run of the generator is set up: defined once, for the Lava backend, netx and the bundle spec.

Every layer of the chip is Lava's ``Dense`` feeding ``LIFReset``. ``Dense`` sends on step
``t`` what it summed on step ``t - 1``: :data:`DENSE_DELAY_STEPS` per layer, so layer ``k``
(0-based) sees the source's column ``c`` (sent on step ``c + 1``) on step
``c + (k + 1) DENSE_DELAY_STEPS + 1``. Samples of ``T`` steps are streamed back to back and
each layer resets ``u`` and ``v`` on its first column of a sample:
``LIFReset(reset_interval=T, reset_offset=`` :func:`layer_reset_offset` ``(k))``. lava-dl's
``netx.hdf5.Network(reset_interval=T, reset_offset=NETX_RESET_OFFSET)`` gives its layers the
same offsets (it adds 1 for hardware time, which starts at 1, and 1 per layer).
"""
from __future__ import annotations

DENSE_DELAY_STEPS = 1
"""Steps of delay per ``Dense`` layer."""
NETX_RESET_OFFSET = 1
"""``reset_offset`` to give ``lava.lib.dl.netx.hdf5.Network`` (with ``reset_interval = T``)."""
FIXED_RUN_CONFIG = "Loihi2SimCfg(select_tag='fixed_pt')"
"""The run configuration of the bit-accurate models, the chip's arithmetic."""


def layer_reset_offset(layer: int) -> int:
    """``reset_offset`` of layer ``layer`` (0-based): ``NETX_RESET_OFFSET + 1 + layer DENSE_DELAY_STEPS``."""
    return NETX_RESET_OFFSET + 1 + layer * DENSE_DELAY_STEPS


def output_lag(layer: int) -> int:
    """Steps by which layer ``layer``'s (0-based) spikes lag the input in a Lava run.

    ``(layer + 1) DENSE_DELAY_STEPS``.
    """
    return (layer + 1) * DENSE_DELAY_STEPS


def simulated_steps(samples: int, time_steps: int, layers: int) -> int:
    """Steps a run of ``samples`` samples needs to drain the pipeline: ``N T + L DENSE_DELAY_STEPS``."""
    return samples * time_steps + output_lag(layers - 1)
