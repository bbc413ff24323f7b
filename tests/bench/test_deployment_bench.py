"""modeling_mrconv/bench/deployment.py row builders on tiny models (no timing thresholds; compile rows via aot_eager)."""

import json
import math

import torch
from mrconv_testing import tiny_config

from modeling_mrconv import MRConvForSequenceClassification
from modeling_mrconv.bench.deployment import compile_rows, fork, stream_step, streaming_rows
from modeling_mrconv.bench.report import DEPLOYMENT_RATIOS, compute_ratios, deployment_markdown, write_outputs


def test_compile_rows_hold_numbers_and_ratios():
    """aot_eager (Dynamo full-graph capture + AOTAutograd) keeps this fast; the benchmark defaults to inductor."""
    config = tiny_config(bidirectional=False, num_hidden_layers=2, max_sequence_length=32, kernel_type="dilated")
    rows = compile_rows(config, batch_size=2, length=32, warmup=1, repeats=2, backend="aot_eager")
    assert [(r["mode"], r["variant"]) for r in rows] == [
        ("inference", "eager"),
        ("inference", "compiled"),
        ("training", "eager"),
        ("training", "compiled"),
    ]
    for row in rows:
        assert row["status"] == "ok" and row["time_ms"] > 0 and row["repeats"] == 2, row
        assert row["backend"] == "aot_eager" and row["sequence_length"] == 32
    assert all(r["compile_s"] >= 0 for r in rows if r["variant"] == "compiled")
    ratios = compute_ratios(rows, DEPLOYMENT_RATIOS)
    assert [(r["ratio"], r["mode"]) for r in ratios] == [
        ("eager / compiled", "inference"),
        ("eager / compiled", "training"),
    ]
    assert all(math.isfinite(r["time"]) and r["time"] > 0 for r in ratios)
    table = "\n".join(deployment_markdown({"rows": rows, "ratios": ratios}))
    assert "| inference | 2 | 32 | aot_eager |" in table and "| training | 2 | 32 | aot_eager |" in table


def test_compile_failure_becomes_an_error_row():
    config = tiny_config(bidirectional=False, num_hidden_layers=1, max_sequence_length=16, kernel_type="dilated")
    rows = compile_rows(config, 1, 16, 1, 1, backend="no_such_backend", modes=("inference",))
    assert [r["variant"] for r in rows] == ["eager", "compiled"]
    assert all(r["status"].startswith("error: ") for r in rows)


def test_streamed_step_starts_every_call_from_the_same_history():
    """The timed streaming step must not advance the primed cache: each call gives the same logits, equal to the
    full forward's over history + chunk."""
    torch.manual_seed(0)
    config = tiny_config(bidirectional=False, num_hidden_layers=2, max_sequence_length=64, kernel_type="fourier")
    model = MRConvForSequenceClassification(config).eval().reparameterize()
    ids = torch.randint(1, config.vocab_size, (1, 50))
    with torch.no_grad():
        primed = model(input_ids=ids[:, :30], use_cache=True).cache
        seen = []
        original = model.forward

        def record(*args, **kwargs):
            out = original(*args, **kwargs)
            seen.append(out.logits)
            return out

        model.forward = record
        step = stream_step(model, ids[:, 30:], primed, fft_min_chunk=1)
        step()
        step()
        model.forward = original
        full = model(input_ids=ids).logits
    assert primed.seen_tokens == 30 and primed.memory_positions() == 30
    torch.testing.assert_close(seen[0], seen[1], rtol=0, atol=0)
    torch.testing.assert_close(seen[0], full, rtol=1e-5, atol=1e-5)
    copy = fork(primed)
    assert copy.history is not primed.history and copy.spectra is primed.spectra


def test_streaming_rows_and_deployment_only_report(tmp_path):
    config = tiny_config(bidirectional=False, num_hidden_layers=1, max_sequence_length=40, kernel_type="dilated")
    rows = streaming_rows(config, batch_size=1, histories=[8, 24], chunks=[1, 16], warmup=1, repeats=1)
    assert {(r["history"], r["chunk"], r["variant"]) for r in rows} == {
        (P, C, v) for P in (8, 24) for C in (1, 16) for v in ("stream", "recompute")
    }  # chunks below FFT_MIN_CHUNK: no direct-only row (it would be the same path)
    deployment = {"rows": rows, "ratios": compute_ratios(rows, DEPLOYMENT_RATIOS)}
    meta = {"device_name": "cpu", "device": "cpu", "dtype": "float32", "date": "d", "torch": "t"}
    meta |= {"transformers": "x", "threads": 1, "command": "c", "code_sha256": "s"}
    meta["args"] = {"hidden_size": 16, "num_layers": 1, "kernel_type": "dilated", "kernel_size": 4}
    write_outputs(tmp_path, meta, [], deployment)  # a --deployment_only run: no main rows, no plot
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["results"] == [] and len(payload["deployment"]["ratios"]) == 4
    table = (tmp_path / "results.md").read_text()
    assert "causal." in table and "| 24 | 16 |" in table and "| model | mode |" not in table
    assert not (tmp_path / "time_vs_length.png").exists()
    try:
        streaming_rows(config, 1, [30], [16], 1, 1)
    except ValueError as error:
        assert "config.max_sequence_length=40 must be >= max(histories) + max(chunks) = 46" in str(error)
    else:
        raise AssertionError("too short a max_sequence_length was accepted")
