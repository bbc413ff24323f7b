"""modeling_mrconv/bench/mrconvnext.py on tiny configs: rows, parameter counts, merged == unmerged, CLI output."""

import json

import pytest
import torch
from transformers import ConvNextConfig

from modeling_mrconv import MRConvNextConfig
from modeling_mrconv.bench.mrconvnext import benchmark, build_models, main


TINY = {"num_stages": 2, "depths": [1, 1], "hidden_sizes": [8, 16], "num_labels": 3}


def test_benchmark_rows_on_tiny_models():
    models = build_models(MRConvNextConfig(**TINY, image_size=32), ConvNextConfig(**TINY, image_size=32))
    rows = benchmark(models, image_size=32, batch_sizes=(1, 2), repeats=2)
    assert [(r["model"], r["batch_size"]) for r in rows] == [
        (name, b) for b in (1, 2) for name in ("mrconvnext_unmerged", "mrconvnext_merged", "convnext")
    ]
    for row in rows:
        assert row["parameters"] == sum(p.numel() for p in models[row["model"]].parameters())
        assert row["images_per_s"] == pytest.approx(row["batch_size"] / (row["time_ms"] / 1000))
    merged = [r for r in rows if r["model"] == "mrconvnext_merged"]
    assert (
        all(r["max_abs_diff_vs_unmerged"] < 1e-4 for r in merged)
        and models["mrconvnext_merged"].config.reparameterized
    )
    assert not models["mrconvnext_unmerged"].config.reparameterized
    # reference: the merged model's logits against the unmerged one in float64
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        a = models["mrconvnext_unmerged"].double()(pixel_values=x).logits
        b = models["mrconvnext_merged"].double()(pixel_values=x).logits
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        benchmark(models, image_size=32, batch_sizes=(1,), repeats=0)


def test_cli_writes_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(MRConvNextConfig, "tiny", classmethod(lambda cls, **kw: cls(**TINY, **kw)))
    out = tmp_path / "bench.json"
    rows = main(["--image_size", "32", "--batch_sizes", "1", "--repeats", "1", "--output_file", str(out)])
    saved = json.loads(out.read_text())
    assert saved["rows"] == rows and saved["meta"]["size"] == "tiny" and len(rows) == 3
    assert "| mrconvnext_merged | 1 |" in capsys.readouterr().out
