"""Reporting of benchmark rows: ratios between models measured in the same run, fitted length exponents, the
Markdown table, the plot, results.json / results.md and the printed summary."""

import json
import math
import statistics
from pathlib import Path


INFERENCE_MODELS = ("mrconv_merged", "mrconv_unmerged", "floor", "attention", "mamba", "s4d")
TRAINING_MODELS = ("mrconv_unmerged", "single_kernel")
LABELS = {
    "mrconv_merged": "MRConv merged",
    "mrconv_unmerged": "MRConv unmerged",
    "floor": "floor (plain torch)",
    "single_kernel": "single long-conv kernel",
    "attention": "Transformer (BERT, SDPA)",
    "mamba": "Mamba (transformers)",
    "s4d": "S4D-Lin (Vandermonde)",
}
# (numerator, numerator mode, denominator, denominator mode, printed name)
RATIOS = (
    ("mrconv_merged", "inference", "floor", "inference", "merged / floor"),
    ("mrconv_unmerged", "inference", "mrconv_merged", "inference", "unmerged eval / merged"),
    ("mrconv_unmerged", "training", "single_kernel", "training", "MRConv train step / single-kernel train step"),
    ("attention", "inference", "mrconv_merged", "inference", "attention / merged"),
    ("mamba", "inference", "mrconv_merged", "inference", "mamba / merged"),
    ("s4d", "inference", "mrconv_merged", "inference", "s4d / merged"),
)


def compute_ratios(rows: list[dict]) -> list[dict]:
    """Every ratio of RATIOS at each (L, B) where both numbers were measured in this run."""
    ok = {(r["model"], r["mode"], r["sequence_length"], r["batch_size"]): r for r in rows if r["status"] == "ok"}
    ratios = []
    for num, num_mode, den, den_mode, label in RATIOS:
        for (model, mode, L, B), a in sorted(ok.items(), key=lambda kv: (kv[0][3], kv[0][2])):
            b = ok.get((den, den_mode, L, B))
            if model != num or mode != num_mode or b is None:
                continue
            memory = None
            if a["peak_mem_mb"] and b["peak_mem_mb"]:
                memory = a["peak_mem_mb"] / b["peak_mem_mb"]
            ratio = {"ratio": label, "sequence_length": L, "batch_size": B, "time": a["time_ms"] / b["time_ms"]}
            ratio["time_of_minima"] = a["time_ms_min"] / b["time_ms_min"]  # contention only adds time: a cross-check
            ratios.append(ratio | {"peak_memory": memory})
    return ratios


def fit_exponents(rows: list[dict]) -> list[dict]:
    """Least-squares slope of log(time) against log(L) for each (model, mode, batch size) with 2+ lengths."""
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault((r["model"], r["mode"], r["batch_size"]), []).append(
                (math.log(r["sequence_length"]), math.log(r["time_ms"]))
            )
    fits = []
    for (model, mode, B), points in groups.items():
        if len({x for x, _ in points}) < 2:
            continue
        mx, my = statistics.fmean(x for x, _ in points), statistics.fmean(y for _, y in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
        lengths = sorted(round(math.exp(x)) for x, _ in points)
        fits.append({"model": model, "mode": mode, "batch_size": B, "exponent": slope, "lengths": lengths})
    return fits


def markdown(
    meta: dict, rows: list[dict], ratios: list[dict], fits: list[dict], deployment: dict | None = None
) -> str:
    """results.md: the main tables (when `rows` holds any), then the deployment section (when measured)."""
    lengths = sorted({r["sequence_length"] for r in rows})
    lines = [
        f"# MRConv benchmark: {meta['device_name']} ({meta['device']}, {meta['dtype']})",
        "",
        f"{meta['date']}; torch {meta['torch']}, transformers {meta['transformers']}, {meta['threads']} threads; "
        f"hidden {meta['args']['hidden_size']}, layers {meta['args']['num_layers']}, kernel "
        f"{meta['args']['kernel_type']} l0={meta['args']['kernel_size']}, "
        + (("bidirectional" + ("; deployment rows causal" if deployment else "") + ".") if rows else "causal."),
        f"Command: `{meta['command']}`; code sha256 {meta['code_sha256']} (modeling_mrconv/*.py + bench/floor_model.py).",
        "",
        "Cells: median ms over interleaved repeats / peak MiB (training rows: / MiB saved for backward).",
        "",
    ]
    for B in sorted({r["batch_size"] for r in rows}):
        lines += [f"## batch size {B}", "", "| model | mode | " + " | ".join(f"L={L}" for L in lengths) + " |"]
        lines.append("|---|---|" + "---|" * len(lengths))
        for mode, names in (("inference", INFERENCE_MODELS), ("training", TRAINING_MODELS)):
            for name in names:
                cells = {
                    r["sequence_length"]: _cell(r)
                    for r in rows
                    if (r["model"], r["mode"], r["batch_size"]) == (name, mode, B)
                }
                if cells:
                    lines.append(
                        f"| {LABELS[name]} | {mode} | " + " | ".join(cells.get(L, "") for L in lengths) + " |"
                    )
        lines.append("")
    if not rows:  # a deployment-only run
        lines = lines[:5]
        lines += deployment_markdown(deployment) if deployment else []
        return "\n".join(lines)
    lines += ["## Ratios", "", "Time: ratio of medians (ratio of minima in parentheses); memory: ratio of peaks.", ""]
    lines += ["| ratio | B | L | time | memory |", "|---|---|---|---|---|"]
    for r in ratios:
        memory = f"{r['peak_memory']:.2f}" if r["peak_memory"] else ""
        time_cell = f"{r['time']:.2f} ({r['time_of_minima']:.2f})"
        lines.append(f"| {r['ratio']} | {r['batch_size']} | {r['sequence_length']} | {time_cell} | {memory} |")
    lines += ["", "## Scaling exponents (slope of log time vs log L)", "", "| model | mode | B | exponent | lengths |"]
    lines.append("|---|---|---|---|---|")
    for f in fits:
        lines.append(
            f"| {LABELS[f['model']]} | {f['mode']} | {f['batch_size']} | {f['exponent']:.2f} | {f['lengths']} |"
        )
    skipped = [r for r in rows if r["status"] != "ok" and not r["status"].startswith("skipped: scripts/floor")]
    if skipped:
        lines += ["", "## Not measured", ""]
        lines += [
            f"- {LABELS[r['model']]}, {r['mode']}, L={r['sequence_length']}, B={r['batch_size']}: {r['status']}"
            for r in skipped
        ]
    lines += ["", "## Method", "", f"- {meta['timing_method']}", f"- {meta['skip_policy']}"]
    lines += [*(f"- {m}" for m in meta["memory_method"].values()), ""]
    if deployment:
        lines += deployment_markdown(deployment)
    return "\n".join(lines)


def deployment_markdown(deployment: dict) -> list[str]:
    from modeling_mrconv.bench.deployment import markdown_section  # the deployment rows' own tables

    return markdown_section(deployment)


def _cell(row: dict) -> str:
    if row["status"] != "ok":
        return row["status"].split(" (")[0][:48]
    cell = f"{row['time_ms']:.1f} / {row['peak_mem_mb']:.0f}"
    return cell + (f" / {row['saved_mb']:.0f}" if row["saved_mb"] is not None else "")


def plot(rows: list[dict], path: Path) -> None:
    """Log-log time vs L: inference (the paper's appendix figure, plus the other rows) and training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (mode, names)
        for mode, names in (("inference", INFERENCE_MODELS), ("training", TRAINING_MODELS))
        if any(r["mode"] == mode for r in rows)  # --training_only: one panel
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    batch_sizes = sorted({r["batch_size"] for r in rows})
    for ax, (mode, names) in zip(axes[0], panels, strict=True):
        for name in names:
            for B in batch_sizes:
                points = sorted(
                    (r["sequence_length"], r["time_ms"])
                    for r in rows
                    if (r["model"], r["mode"], r["batch_size"], r["status"]) == (name, mode, B, "ok")
                )
                if points:
                    label = LABELS[name] + (f" (B={B})" if len(batch_sizes) > 1 else "")
                    index = list(LABELS).index(name)  # one color and marker per model in both panels
                    style = {
                        "color": f"C{index}",
                        "marker": "osD^vPX"[index],
                        "linestyle": "--" if index == 2 else "-",
                    }
                    ax.plot(*zip(*points, strict=True), label=label, markersize=5, **style)
        ax.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="median time (ms)")
        ax.set_title(f"{mode} ({'forward, no_grad' if mode == 'inference' else 'forward + backward + AdamW'})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(
    output_dir: Path, meta: dict, rows: list[dict], deployment: dict | None = None
) -> tuple[list[dict], list[dict]]:
    """results.json, results.md and (with main rows) time_vs_length.png under output_dir; returns ratios and fits.

    `deployment` ({"rows": [...], "ratios": [...]} from bench.deployment) goes under the JSON key "deployment" and
    into its own Markdown section.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    ratios, fits = compute_ratios(rows), fit_exponents(rows)
    payload = {"meta": meta, "results": rows, "ratios": ratios, "scaling_exponents": fits}
    if deployment is not None:
        payload["deployment"] = deployment
    (output_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (output_dir / "results.md").write_text(markdown(meta, rows, ratios, fits, deployment))
    if rows:
        plot(rows, output_dir / "time_vs_length.png")
    return ratios, fits


def format_row(row: dict) -> str:
    case = f"{row['mode']:<9} L={row['sequence_length']:<6} B={row['batch_size']:<3} {row['model']:<16}"
    if row["status"] != "ok":
        return f"{case} {row['status']}"
    saved = f", saved {row['saved_mb']:.0f} MiB" if row["saved_mb"] is not None else ""
    return f"{case} {row['time_ms']:10.1f} ms (x{row['repeats']}), peak {row['peak_mem_mb']:.0f} MiB{saved}"


def print_summary(ratios: list[dict], fits: list[dict], rows: list[dict]) -> None:
    print("\nratios (time: medians, minima in parentheses; peak memory):")
    for r in ratios:
        memory = f"; memory {r['peak_memory']:.2f}x" if r["peak_memory"] else ""
        case = f"{r['ratio']:<46} L={r['sequence_length']:<6} B={r['batch_size']:<3}"
        print(f"  {case} {r['time']:7.2f}x (minima {r['time_of_minima']:.2f}x){memory}")
    print("scaling exponents (slope of log time vs log L):")
    for f in fits:
        print(
            f"  {LABELS[f['model']]:<28} {f['mode']:<9} B={f['batch_size']:<3} {f['exponent']:5.2f}  L={f['lengths']}"
        )
    for r in rows:
        if r["status"] != "ok":
            print(f"  {r['model']} {r['mode']} L={r['sequence_length']} B={r['batch_size']}: {r['status']}")
