"""The built-in demo (``make demo``): train LoRSP on an offline set in minutes and report.

    python -m lorsp.demo [--out runs/demo]

Trains LoRSP on mnist-5k with the frozen EfficientNet-Lite0 (128 px), selects on val,
scores the test split once, and prints accuracy, prompt sparsity and the spiking
generator's activity. The demo owns its output folder and replaces it on every run.
"""
from __future__ import annotations

import argparse

from lorsp.cli import run_cli
from lorsp.train import TrainConfig, train

DEMO = TrainConfig(dataset="mnist-5k", backbone="efficientnet_lite0", prompt="lorsp", head="lp", rank=4,
                   image_size=128, epochs=3, batch_size=32, lr=0.02, limit_train=1000, limit_test=500, seed=0)


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lorsp.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo")
    args = p.parse_args(argv)
    print(f"lorsp demo: {DEMO.prompt} on {DEMO.dataset}, {DEMO.backbone} at {DEMO.image_size} px, "
          f"{DEMO.limit_train} training images, {DEMO.epochs} epochs")
    m = train(DEMO, args.out, force=True)
    print("\n== demo result ==")
    print(f"  val accuracy  {m['val_accuracy']:.4f} (best epoch {m['best_epoch']})")
    print(f"  test accuracy {m['test_accuracy']:.4f} on {m['n_test']} test images")
    print(f"  trainable     prompt {m['params']['prompt']:,}  head {m['params']['head']:,}")
    print(f"  prompt        {100 * m['prompt_sparsity']:.1f}% of prompt pixels exactly zero (test set)")
    print(f"  spiking gen.  firing rate {m['firing_rate']['overall']:.3f}, {m['spikes_per_image']:.1f} spikes "
          f"and {m['snn_synops_per_image']:.0f} synaptic ops ({m['snn_synops_kind']}s) per image")
    print(f"  throughput    {m['train_images_per_s']:.1f} training images/s")
    print(f"  written       {args.out}/ (model.pt, metrics.json, curves.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
