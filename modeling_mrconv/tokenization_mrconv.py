"""Byte-level tokenizer (as the paper's LRA Text task): ByT5's, which needs no vocabulary file or download."""

from transformers import ByT5Tokenizer


def build_byte_tokenizer(max_sequence_length: int) -> ByT5Tokenizer:
    """pad=0, eos=1, unk=2, bytes 3..258: `len(tokenizer) == 259 == MRConvConfig().vocab_size`.

    Truncation (`tokenizer(text, truncation=True)`) keeps the first `max_sequence_length` ids, EOS included.
    """
    return ByT5Tokenizer(extra_ids=0, model_max_length=max_sequence_length)


__all__ = ["build_byte_tokenizer"]
