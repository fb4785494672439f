"""Example prompts of LoR-VP and LoRSP side by side on real test images (where the zeros are).

    python benchmarks/example_prompts.py --runs runs/baselines --dataset mnist-5k --seed 0 \
        --images 4 --figure docs/figures/example_prompts.png

Rows: test images. Columns: the image; LoR-VP's prompt (one for all images); LoRSP's
prompt for this image, with its exactly-zero pixels in white; LoRSP's prompted image.
Prompts are shown as the channel-mean, on one symmetric colour scale per column (its 99th
percentile of |P|); titles give the largest |P| of the image (inputs are in [0, 1]).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results_plots import pyplot, save_figure  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/baselines")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lorvp", default="lorvp", help="the LoR-VP run's folder name (its method tag)")
    p.add_argument("--lorsp", default="lorsp", help="the LoRSP run's folder name (its method tag)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--figure", default="docs/figures/example_prompts.png")
    args = p.parse_args()
    import numpy as np
    import torch

    import lorsp
    from lorsp.data import create_splits

    run = lambda m: Path(args.runs) / args.dataset / m / f"seed{args.seed}" / "model.pt"  # noqa: E731
    lorvp, lorsp_model = lorsp.load(run(args.lorvp)), lorsp.load(run(args.lorsp))
    test = create_splits(args.dataset, lorsp_model.config["image_size"], limit_test=args.images).test
    x = torch.stack([test[i][0] for i in range(len(test))])
    with torch.no_grad():
        p_vp, p_sp = lorvp.prompt(x), lorsp_model.prompt(x)
    plt = pyplot()
    cmap = plt.get_cmap("coolwarm").copy()
    cmap.set_bad("white")
    fig, axes = plt.subplots(len(x), 4, figsize=(8.4, 2.1 * len(x)), squeeze=False)
    vp_scale = float(p_vp.mean(1).abs().flatten().quantile(0.99)) or 1.0  # robust to a few large entries
    sp_nonzero = p_sp.mean(1)[p_sp.mean(1) != 0]
    sp_scale = float(sp_nonzero.abs().quantile(0.99)) if sp_nonzero.numel() else 1.0
    for i in range(len(x)):
        sp = p_sp[i].mean(0).numpy()
        sp_masked = np.ma.masked_where((p_sp[i] == 0).all(0).numpy(), sp)
        zeros = float((p_sp[i] == 0).float().mean())
        panels = [(x[i].permute(1, 2, 0).numpy(), None, f"test image {i}"),
                  (p_vp[i].mean(0).numpy(), vp_scale, f"LoR-VP prompt, max |P| {float(p_vp[i].abs().max()):.3g}"),
                  (sp_masked, sp_scale, f"LoRSP: {100 * zeros:.0f}% zeros, max |P| {float(p_sp[i].abs().max()):.3g}"),
                  ((x[i] + p_sp[i]).clamp(0, 1).permute(1, 2, 0).numpy(), None, "image + LoRSP prompt")]
        for ax, (img, scale, title) in zip(axes[i], panels):
            if scale is None:
                ax.imshow(img)
            else:
                ax.imshow(img, cmap=cmap, vmin=-scale, vmax=scale)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{args.dataset}, seed {args.seed} runs; white = exactly zero", fontsize=9)
    fig.tight_layout()
    save_figure(fig, ROOT / args.figure if not Path(args.figure).is_absolute() else args.figure)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
