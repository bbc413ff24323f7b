"""MRConvConfig: derived fields, JSON round trip, validation errors that name the field."""

import pytest

from modeling_mrconv import MRConvConfig


def test_derived_fields():
    config = MRConvConfig(max_sequence_length=16000, kernel_size=32)
    assert config.num_branches == 10  # 32 * 2^9 = 16384 >= 16000 (N = 1 + ceil(log2(L / l0)))
    assert config.branch_lengths[-1] == 16000 and config.branch_lengths[0] == 32
    assert config.fourier_modes == 16 and config.sparse_taps == 32
    assert MRConvConfig(max_sequence_length=1024, kernel_size=32).num_branches == 6


def test_round_trip(tmp_path):
    config = MRConvConfig(
        input_dim=3,
        kernel_type="fourier_sparse",
        bidirectional=False,
        prenorm=True,
        norm_type="layer",
        num_labels=4,
        id2label={0: "a", 1: "b", 2: "c", 3: "d"},
        problem_type="single_label_classification",
    )
    config.save_pretrained(tmp_path)
    loaded = MRConvConfig.from_pretrained(tmp_path)
    for field in (
        "input_dim",
        "kernel_type",
        "bidirectional",
        "prenorm",
        "norm_type",
        "num_branches",
        "fourier_modes",
        "problem_type",
        "reparameterized",
    ):
        assert getattr(loaded, field) == getattr(config, field), field
    assert loaded.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}
    assert loaded.to_dict() == config.to_dict()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kernel_type": "gaussian"}, "kernel_type"),
        ({"norm_type": "group"}, "norm_type"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_hidden_layers": 2.5}, "num_hidden_layers"),
        ({"input_dim": -1}, "input_dim"),
        ({"kernel_size": 4096, "max_sequence_length": 1024}, "kernel_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"fourier_modes": 100}, "fourier_modes"),
        ({"sparse_taps": 1000}, "sparse_taps"),
        ({"num_branches": 0}, "num_branches"),
        ({"batch_norm_momentum": 0.0}, "batch_norm_momentum"),
        ({"norm_eps": 0.0}, "norm_eps"),
        ({"max_sequence_length": True}, "max_sequence_length"),
    ],
)
def test_invalid_values_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        MRConvConfig(**overrides)
