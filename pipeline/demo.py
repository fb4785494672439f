"""The built-in demo (``make demo``): train LoRSP, deploy it, simulate the chip, check end to end.

    python -m pipeline.demo [--out runs/demo]

1. trains LoRSP's default (pixel gating: a spiking gate per pixel, learned) on mnist-5k with
   the frozen EfficientNet-Lite0 (128 px), at the benchmark's rank 8 and prompt rate 0.1,
   selects on val, scores the test split once (``OUT/train``);
2. exports it (``lorsp-export --target all``): the gate neurons as a NIR graph and a lava-dl
   netx conv file (a ``pixel-gates`` bundle), the host factors, the backbone as ONNX, one
   manifest; the export checks the NIR round trip and ONNX parity and simulates the chip in
   float and fixed point (``OUT/deploy``, report in ``OUT/deploy/hw_sim``);
3. co-simulates the split pipeline on the test split against the PyTorch model
   (``lorsp-cosim``, report in ``OUT/deploy/cosim``).

The demo owns its output folder and replaces it on every run. It takes a few minutes on
two CPU cores.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from hw_sim.cosim_cli import main as cosim_main
from lorsp.plumbing.cli import run_cli
from lorsp.train import TrainConfig, train
from pipeline.export_cli import main as export_main

DEMO = TrainConfig(dataset="mnist-5k", backbone="efficientnet_lite0", prompt="lorsp", head="lp", rank=8,
                   image_size=128, epochs=3, batch_size=32, lr=0.02, prompt_lr=0.1, limit_train=1000, limit_test=500,
                   seed=0)
"""LoRSP's default options (pixel gating), at the rank and prompt rate of the benchmark's LoRSP runs."""


def print_training(m: dict, out: Path) -> None:
    print("\n== 1. training ==")
    print(f"  val accuracy  {m['val_accuracy']:.4f} (best epoch {m['best_epoch']})")
    print(f"  test accuracy {m['test_accuracy']:.4f} on {m['n_test']} test images")
    print(f"  trainable     prompt {m['params']['prompt']:,}  head {m['params']['head']:,}")
    print(f"  prompt        {100 * m['prompt_sparsity']:.1f}% of prompt pixels exactly zero (test set)")
    print(f"  spiking gen.  firing rate {m['firing_rate']['overall']:.3f}, {m['spikes_per_image']:.1f} spikes "
          f"and {m['snn_synops_per_image']:.0f} synaptic ops ({m['snn_synops_kind']}s) per image")
    print(f"  throughput    {m['train_images_per_s']:.1f} training images/s   -> {out}")


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo")
    args = p.parse_args(argv)
    out = Path(args.out)
    print(f"lorsp demo: {DEMO.prompt} (--gate {DEMO.gate}, rank {DEMO.rank}) on {DEMO.dataset}, {DEMO.backbone} "
          f"at {DEMO.image_size} px, {DEMO.limit_train} training images, {DEMO.epochs} epochs")
    metrics = train(DEMO, out / "train", force=True)
    print_training(metrics, out / "train")
    print("\n== 2. export: lorsp-export --target all (NIR, netx, ONNX; chip simulated float and fixed) ==")
    export_main(["--target", "all", str(out / "train" / "model.pt"), "-o", str(out / "deploy"),
                 "--samples", "256", "--force"])
    print("\n== 3. co-simulation: lorsp-cosim (host -> simulated chip -> host -> ONNX) against PyTorch ==")
    cosim_main([str(out / "deploy"), "--split", "test", "--limit", "500", "--force"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
