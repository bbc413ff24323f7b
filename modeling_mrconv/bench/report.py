"""Reporting of benchmark rows (scripts/benchmark.py and `bench.deployment`): ratios between rows measured in the
same run, fitted length exponents, the Markdown tables, the plot, results.json / results.md and the printed lines."""

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
# (numerator, denominator, printed name): a main row is named by (model, mode), a deployment row by its variant
RATIOS = (
    (("mrconv_merged", "inference"), ("floor", "inference"), "merged / floor"),
    (("mrconv_unmerged", "inference"), ("mrconv_merged", "inference"), "unmerged eval / merged"),
    (("mrconv_unmerged", "training"), ("single_kernel", "training"), "MRConv train step / single-kernel train step"),
    (("attention", "inference"), ("mrconv_merged", "inference"), "attention / merged"),
    (("mamba", "inference"), ("mrconv_merged", "inference"), "mamba / merged"),
    (("s4d", "inference"), ("mrconv_merged", "inference"), "s4d / merged"),
)
DEPLOYMENT_RATIOS = (
    ("eager", "compiled", "eager / compiled"),
    ("recompute", "stream", "recompute prefix / stream"),
    ("stream_direct", "stream", "direct-only stream / hybrid stream"),
)
# the fields that say where a row was measured, with their short names in printed lines
CASE_FIELDS = {"history": "P", "chunk": "C", "sequence_length": "L", "batch_size": "B"}
# deployment tables: (suite, title, case columns, variant columns); the ratios of those variants follow
DEPLOYMENT_TABLES = (
    ("compile", "torch.compile vs eager", ("mode", "batch_size", "sequence_length", "backend"), ("eager", "compiled")),
    (
        "streaming",
        "Streaming: one chunk after a history vs recomputing the prefix",
        ("history", "chunk", "batch_size", "kernel_support", "fft_min_chunk"),
        ("stream", "stream_direct", "recompute"),
    ),
)


def _case(row: dict) -> tuple:
    """Where a row was measured, as (field, value) pairs: the rows a ratio compares share it."""
    fields = ("suite", "mode", "history", "chunk") if "suite" in row else ()
    return tuple((f, row[f]) for f in (*fields, "batch_size", "sequence_length") if f in row)


def compute_ratios(rows: list[dict], specs: tuple = RATIOS) -> list[dict]:
    """Every ratio of `specs` at each case where both rows were measured in this run: ratio of medians, of minima
    and (main rows) of peak memory."""
    ok = {(r.get("variant") or (r["model"], r["mode"]), _case(r)): r for r in rows if r["status"] == "ok"}
    ratios = []
    for num, den, name in specs:
        for (identity, case), a in sorted(ok.items(), key=lambda item: item[0][1]):
            if identity != num or (b := ok.get((den, case))) is None:
                continue
            ratio = {"ratio": name, **dict(case), "time": a["time_ms"] / b["time_ms"]}
            ratio["time_of_minima"] = a["time_ms_min"] / b["time_ms_min"]  # contention only adds time: a cross-check
            if "peak_mem_mb" in a:
                both = a["peak_mem_mb"] and b["peak_mem_mb"]
                ratio["peak_memory"] = a["peak_mem_mb"] / b["peak_mem_mb"] if both else None
            ratios.append(ratio)
    return ratios


def fit_exponents(rows: list[dict]) -> list[dict]:
    """Least-squares slope of log(time) against log(L) for each (model, mode, batch size) with 2+ lengths."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault((r["model"], r["mode"], r["batch_size"]), []).append(r)
    fits = []
    for (model, mode, B), group in groups.items():
        lengths = sorted(r["sequence_length"] for r in group)
        if len(set(lengths)) >= 2:
            x, y = [math.log(r["sequence_length"]) for r in group], [math.log(r["time_ms"]) for r in group]
            slope = statistics.linear_regression(x, y).slope
            fits.append({"model": model, "mode": mode, "batch_size": B, "exponent": slope, "lengths": lengths})
    return fits


def markdown_table(header: list, body: list[list]) -> list[str]:
    """The lines of a Markdown table, then an empty line."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(map(str, cells)) + " |" for cells in body), ""]


def _cell(row: dict) -> str:
    if row["status"] != "ok":
        return row["status"].split(" (")[0][:48]
    cell = f"{row['time_ms']:.1f} / {row['peak_mem_mb']:.0f}"
    return cell + (f" / {row['saved_mb']:.0f}" if row["saved_mb"] is not None else "")


def _ms(row: dict | None) -> str:
    if row is None:
        return ""
    if row["status"] != "ok":
        return row["status"][:60]
    return f"{row['time_ms']:.2f}" + (f" (compile {row['compile_s']:.1f} s)" if "compile_s" in row else "")


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value else ""


def _ratio(ratio: dict | None) -> str:
    return f"{_x(ratio['time'])} ({_x(ratio['time_of_minima'])})" if ratio else ""


def markdown(
    meta: dict, rows: list[dict], ratios: list[dict], fits: list[dict], deployment: dict | None = None
) -> str:
    """results.md: the main tables (when `rows` holds any), then the deployment section (when measured)."""
    args = meta["args"]
    shape = ("bidirectional" + ("; deployment rows causal" if deployment else "")) if rows else "causal"
    lines = [
        f"# MRConv benchmark: {meta['device_name']} ({meta['device']}, {meta['dtype']})",
        "",
        f"{meta['date']}; torch {meta['torch']}, transformers {meta['transformers']}, {meta['threads']} threads; "
        f"hidden {args['hidden_size']}, layers {args['num_layers']}, kernel {args['kernel_type']} "
        f"l0={args['kernel_size']}, {shape}.",
        f"Command: `{meta['command']}`; code sha256 {meta['code_sha256']} (modeling_mrconv/*.py + bench/floor_model.py).",
        "",
    ]
    if rows:
        lines += _main_tables(rows, ratios, fits)
        lines += ["## Method", "", f"- {meta['method']}"]
        lines += [*(f"- {m}" for m in meta["memory_method"].values()), ""]
    if deployment:
        lines += deployment_markdown(deployment)
    return "\n".join(lines)


def _main_tables(rows: list[dict], ratios: list[dict], fits: list[dict]) -> list[str]:
    lines = ["Cells: median ms over interleaved repeats / peak MiB (training rows: / MiB saved for backward).", ""]
    lengths = sorted({r["sequence_length"] for r in rows})
    cells = {(r["model"], r["mode"], r["batch_size"], r["sequence_length"]): _cell(r) for r in rows}
    for B in sorted({r["batch_size"] for r in rows}):
        body = []
        for mode, names in (("inference", INFERENCE_MODELS), ("training", TRAINING_MODELS)):
            for name in names:
                line = [cells.get((name, mode, B, L), "") for L in lengths]
                if any(line):
                    body.append([LABELS[name], mode, *line])
        lines += [f"## batch size {B}", "", *markdown_table(["model", "mode", *(f"L={L}" for L in lengths)], body)]
    lines += ["## Ratios", "", "Time: ratio of medians (ratio of minima); memory: ratio of peaks.", ""]
    body = [[r["ratio"], r["batch_size"], r["sequence_length"], _ratio(r), _x(r["peak_memory"])] for r in ratios]
    lines += markdown_table(["ratio", "B", "L", "time", "memory"], body)
    lines += ["## Scaling exponents (slope of log time vs log L)", ""]
    body = [[LABELS[f["model"]], f["mode"], f["batch_size"], f"{f['exponent']:.2f}", f["lengths"]] for f in fits]
    lines += markdown_table(["model", "mode", "B", "exponent", "lengths"], body)
    skipped = [r for r in rows if r["status"] != "ok"]
    if skipped:
        lines += ["## Not measured", ""]
        lines += [f"- {LABELS[r['model']]}, {r['mode']}, {_where(r)}: {r['status']}" for r in skipped] + [""]
    return lines


def deployment_markdown(deployment: dict) -> list[str]:
    """The deployment section: per case, each variant's median ms and the ratios between them."""
    rows, ratios = deployment["rows"], deployment["ratios"]
    lines = ["## Deployment (causal model)", ""]
    for suite, title, fields, variants in DEPLOYMENT_TABLES:
        names = [name for num, _, name in DEPLOYMENT_RATIOS if num in variants]
        body = []
        for case in sorted({tuple(r[f] for f in fields) for r in rows if r["suite"] == suite}):
            at = [r for r in rows if r["suite"] == suite and tuple(r[f] for f in fields) == case]
            cells = {r["variant"]: r for r in at}
            found = {r["ratio"]: r for r in ratios if _case(r) == _case(at[0])}
            body.append([*case, *(_ms(cells.get(v)) for v in variants), *(_ratio(found.get(n)) for n in names)])
        if body:
            lines += [f"### {title}", "", *markdown_table([*fields, *(f"{v} ms" for v in variants), *names], body)]
    return lines + ["Ratios: median over median (minimum over minimum in parentheses); > 1: the second is faster.", ""]


def plot(rows: list[dict], path: Path) -> None:
    """Log-log time vs L: inference (the paper's appendix figure, plus the other rows) and training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [mode for mode in ("inference", "training") if any(r["mode"] == mode for r in rows)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    batch_sizes = sorted({r["batch_size"] for r in rows})
    for ax, mode in zip(axes[0], modes, strict=True):
        for name in INFERENCE_MODELS if mode == "inference" else TRAINING_MODELS:
            index = list(LABELS).index(name)  # one color and marker per model in both panels
            style = {"color": f"C{index}", "marker": "osD^vPX"[index], "linestyle": "--" if index == 2 else "-"}
            for B in batch_sizes:
                points = sorted(
                    (r["sequence_length"], r["time_ms"])
                    for r in rows
                    if (r["model"], r["mode"], r["batch_size"], r["status"]) == (name, mode, B, "ok")
                )
                if points:
                    label = LABELS[name] + (f" (B={B})" if len(batch_sizes) > 1 else "")
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
    `deployment` ({"rows": [...], "ratios": [...]}) goes under the JSON key "deployment" and into its own section."""
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


def _where(row: dict) -> str:
    return " ".join(f"{short}={row[field]}" for field, short in CASE_FIELDS.items() if field in row)


def format_row(row: dict) -> str:
    """The printed line of one measured row (main or deployment)."""
    head = " ".join(row[f] for f in ("suite", "mode") if f in row)
    case = f"{head:<19} {_where(row):<22} {row.get('variant') or row['model']:<16}"
    if row["status"] != "ok":
        return f"{case} {row['status']}"
    line = f"{case} {row['time_ms']:10.2f} ms (x{row['repeats']})"
    if "peak_mem_mb" in row:
        line += f", peak {row['peak_mem_mb']:.0f} MiB"
    if row.get("saved_mb") is not None:
        line += f", saved {row['saved_mb']:.0f} MiB"
    return line + (f", compile {row['compile_s']:.1f} s" if "compile_s" in row else "")


def print_summary(ratios: list[dict], fits: list[dict], rows: list[dict]) -> None:
    print("\nratios (time: medians, minima in parentheses; > 1: the second is faster; peak memory):")
    for r in ratios:
        memory = f"; memory {r['peak_memory']:.2f}x" if r.get("peak_memory") else ""
        where = f"{r['mode']} {_where(r)}" if "mode" in r else _where(r)
        print(f"  {r['ratio']:<46} {where:<26} {r['time']:7.2f}x (minima {r['time_of_minima']:.2f}x){memory}")
    if fits:
        print("scaling exponents (slope of log time vs log L):")
    for f in fits:
        print(
            f"  {LABELS[f['model']]:<28} {f['mode']:<9} B={f['batch_size']:<3} {f['exponent']:5.2f}  L={f['lengths']}"
        )
    for r in rows:
        if r["status"] != "ok":
            print(f"  {r['model']} {r['mode']} {_where(r)}: {r['status']}")
