"""Export a merged MRConv model to ONNX, check it with onnxruntime against PyTorch, and time both on CPU.

    python scripts/export_onnx.py --model_dir DIR --output model.onnx

A training-form checkpoint is merged first (exact in eval mode). The graph has dynamic batch and length (up to
`config.max_sequence_length`) and takes a tokenizer's output as is: int64 `input_ids` and `attention_mask` (B, L), so
`session.run(None, dict(tokenizer(texts, padding=True, return_tensors="np")))` works; continuous models take float32
`input_values` (B, L, input_dim) instead of ids. It outputs `logits` (classifiers) or `last_hidden_state`
(`MRConvModel`). Each merged layer exports as `export_conv.dft_conv_bias`: PyTorch's circular convolution with the DFT
as real matrix products (ONNX `MatMul`; no complex tensors, no `DFT` op).
"""

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification

from modeling_mrconv import MRConvModel, MRConvPreTrainedModel
from modeling_mrconv.bench.measure import interleaved_times, make_step


class ExportWrapper(nn.Module):
    """Positional (inputs, int64 attention_mask (B L)) -> tensor view of an MRConv model, for `torch.onnx.export`."""

    def __init__(self, model: MRConvPreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        outputs = self.model(**{self.model.main_input_name: inputs, "attention_mask": attention_mask})
        return outputs.last_hidden_state if isinstance(self.model, MRConvModel) else outputs.logits


def example_inputs(config, batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs as the graph takes them, int64 ids (B, L) or float32 values (B, L, input_dim), and an int64 mask
    (B, L) right-padded to a random valid length per row as a tokenizer pads (the first row full)."""
    generator = torch.Generator().manual_seed(seed)
    if config.input_dim is None:
        inputs = torch.randint(1, config.vocab_size, (batch, length), generator=generator)
    else:
        inputs = torch.randn(batch, length, config.input_dim, generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()  # (B L), int64 as a tokenizer returns it
    return inputs, mask


def export_onnx(model: MRConvPreTrainedModel, output: str | Path) -> Path:
    """Merge `model` in place (eval mode, float32) and export it with dynamic batch and length; returns the path."""
    if type(model).__name__ == "MRConvForDocumentPairClassification":
        raise ValueError("ONNX export supports MRConvModel and MRConvForSequenceClassification, not document pairs.")
    model.float().eval().reparameterize()
    max_length = model.config.max_sequence_length
    # an example length other than 1 and the maximum, so neither gets specialised into the graph
    inputs, mask = example_inputs(model.config, batch=2, length=max(2, min(max_length - 1, 8)))
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=max_length)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            ExportWrapper(model).eval(),
            (inputs, mask),
            dynamo=True,
            dynamic_shapes={"inputs": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
            input_names=[model.main_input_name, "attention_mask"],
            output_names=["last_hidden_state" if isinstance(model, MRConvModel) else "logits"],
            verbose=False,
        )
    program.save(str(output))
    return output


def expected_input_types(config) -> dict[str, str]:
    """The graph's inputs and onnxruntime types: what a tokenizer (or a float32 feature array) gives."""
    main = ("input_ids", "tensor(int64)") if config.input_dim is None else ("input_values", "tensor(float)")
    return dict([main, ("attention_mask", "tensor(int64)")])


def onnx_session(path: str | Path, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, inputs: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {names[0]: inputs.numpy(), names[1]: mask.numpy()})[0]


def verify_onnx(model: MRConvPreTrainedModel, path: str | Path) -> dict[str, float]:
    """`max_abs_diff` between onnxruntime and the exported (merged) PyTorch `model` over several (batch, length),
    `scale` (max |PyTorch output|) and `relative` = max_abs_diff / scale."""
    L = model.config.max_sequence_length
    session = onnx_session(path)
    declared = {i.name: i.type for i in session.get_inputs()}
    if declared != expected_input_types(model.config):
        raise AssertionError(f"ONNX inputs {declared} != {expected_input_types(model.config)}")
    diff, scale = 0.0, 0.0
    for i, (batch, length) in enumerate([(1, 1), (3, max(1, L // 3)), (2, L)]):
        inputs, mask = example_inputs(model.config, batch, length, seed=i + 1)
        with torch.no_grad():
            expected = ExportWrapper(model)(inputs, mask).numpy()
        got = run_onnx(session, inputs, mask)
        if got.shape != expected.shape:
            raise AssertionError(f"onnxruntime output shape {got.shape} != PyTorch {expected.shape}")
        diff = max(diff, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    return {"max_abs_diff": diff, "scale": scale, "relative": diff / max(scale, 1e-30)}


def compare_speed(model: MRConvPreTrainedModel, path: Path, batch: int, length: int, repeats: int) -> dict[str, float]:
    """Median CPU seconds per forward of the exported `model` (FFT form) and onnxruntime (DFT-by-GEMM), same threads."""
    inputs, mask = example_inputs(model.config, batch, length)
    session = onnx_session(path, threads=torch.get_num_threads())
    torch_forward = make_step(ExportWrapper(model), "inference", {"inputs": inputs, "attention_mask": mask})
    steps = {"torch_s": torch_forward, "onnxruntime_s": lambda: run_onnx(session, inputs, mask)}
    times = interleaved_times(steps, torch.device("cpu"), repeats, warmup=1)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a save_pretrained folder (merged or training form)")
    parser.add_argument("--output", required=True, help="path of the .onnx file to write")
    parser.add_argument("--batch_size", type=int, default=8, help="batch size of the speed comparison")
    parser.add_argument("--length", type=int, default=None, help="length of the speed comparison (default: max)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="allowed max |diff| / logit scale")
    args = parser.parse_args(argv)

    try:
        model = AutoModelForSequenceClassification.from_pretrained(args.model_dir)
    except (ValueError, KeyError, OSError, RuntimeError):  # no classification head: the `MRConvModel` backbone
        model = AutoModel.from_pretrained(args.model_dir)
    path = export_onnx(model, args.output)
    result = verify_onnx(model, path)
    print(
        f"exported {path} ({path.stat().st_size / 2**20:.2f} MiB); onnxruntime vs PyTorch: max |diff| "
        f"{result['max_abs_diff']:.3g}, output scale {result['scale']:.3g}, relative {result['relative']:.3g}"
    )
    if not result["relative"] <= args.tolerance:
        raise SystemExit(f"ONNX output differs from PyTorch: relative {result['relative']:.3g} > {args.tolerance}")
    length = args.length or model.config.max_sequence_length
    speed = compare_speed(model, path, args.batch_size, length, args.repeats)
    print(
        f"CPU forward, batch {args.batch_size} x length {length}, {torch.get_num_threads()} threads: PyTorch "
        f"{speed['torch_s'] * 1e3:.2f} ms, onnxruntime {speed['onnxruntime_s'] * 1e3:.2f} ms "
        f"({speed['onnxruntime_s'] / speed['torch_s']:.2f}x)"
    )
    return {**result, **speed}


if __name__ == "__main__":
    main()
