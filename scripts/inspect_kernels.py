"""Plot the merged kernels of a saved MRConv model and, for a training-form checkpoint, the ||alpha||^2 map.

    python scripts/inspect_kernels.py --model_dir DIR [--output_dir DIR/kernels] [--channels 4]

Writes `kernels_time.png` (merged kernel taps per layer, a few channels), `kernels_frequency.png` (their magnitude
responses) and, when the checkpoint keeps the branches, `alpha_norms.png`: ||alpha_i||^2 over depth x resolution
(the paper's Figure 3). The kernels are the eval-mode merge (`modeling_mrconv.inspection.merged_kernels`).
"""

import argparse
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
from transformers import AutoModel

from modeling_mrconv.inspection import alpha_norms, kernel_spectra, merged_kernels


def plot_kernels(kernels, output_dir: Path, channels: int = 4) -> list[Path]:
    """Time- and frequency-domain plots of the first `channels` channels of each layer's kernel."""
    n = len(kernels)
    paths = []
    for name, transform, xlabel, yscale in (
        ("kernels_time.png", lambda k: k, "lag", "linear"),
        ("kernels_frequency.png", kernel_spectra, "frequency bin", "log"),
    ):
        fig = Figure(figsize=(8, 2.2 * n), layout="tight")
        axes = fig.subplots(n, 1, squeeze=False)[:, 0]
        for i, (ax, kernel) in enumerate(zip(axes, kernels, strict=True)):
            values = transform(kernel)  # (S H K')
            for direction in range(values.shape[0]):
                for c in range(min(channels, values.shape[1])):
                    label = f"ch {c}" + (" (backward)" if direction else "")
                    ax.plot(values[direction, c].numpy(), lw=0.8, ls="--" if direction else "-", label=label)
            ax.set(title=f"layer {i}", xlabel=xlabel, yscale=yscale)
        axes[0].legend(fontsize=6, ncol=4)
        paths.append(output_dir / name)
        fig.savefig(paths[-1], dpi=100)
    return paths


def plot_alpha_norms(norms, output_dir: Path) -> Path:
    """Heat map of ||alpha_i||^2, layers (rows) x resolutions (columns)."""
    fig = Figure(figsize=(1.0 + 0.6 * norms.shape[1], 1.0 + 0.5 * norms.shape[0]), layout="tight")
    ax = fig.subplots()
    image = ax.imshow(norms.numpy(), cmap="viridis", aspect="auto")
    ax.set(xlabel="resolution i (kernel length grows)", ylabel="layer", title="||alpha_i||^2")
    fig.colorbar(image, ax=ax)
    fig.savefig(output_dir / "alpha_norms.png", dpi=100)
    return output_dir / "alpha_norms.png"


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--output_dir", default=None, help="default: MODEL_DIR/kernels")
    parser.add_argument("--channels", type=int, default=4, help="channels drawn per layer")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir or Path(args.model_dir) / "kernels")
    output_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(args.model_dir).eval()  # either layout: config.reparameterized says which
    paths = plot_kernels(merged_kernels(model), output_dir, args.channels)
    norms = alpha_norms(model)
    if norms is not None:
        paths.append(plot_alpha_norms(norms, output_dir))
    for path in paths:
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    main()
