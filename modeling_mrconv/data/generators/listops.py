"""Seeded ListOps generator (the LRA ListOps task), numpy only.

The rules of LRA's (Tay et al. 2021) ``lra_benchmarks/data/listops.py`` (after Nangia & Bowman 2018) and the
tokenisation of the S4 loader (``state-spaces/s4`` ``src/dataloaders/lra.py``), independently re-implemented.

* Trees: the root is at depth 1; below ``max_depth`` a node is a leaf (uniform digit) with probability 0.75, at
  ``max_depth`` always; an operator node picks MIN/MAX/MED/SM uniformly and has ``UniformInt[2, max_args]`` children.
* Length: a leaf counts 1, an operator 2 (its opening token and ``]``) plus its children; kept only if
  ``min_length < length < max_length`` (strict, as in LRA). Label: bottom-up evaluation.
* Serialisation: LRA's TSV stores a left-nested pair structure with parentheses around every pair, e.g.
  ``( ( ( [MAX 2 ) 9 ) ] )``; the S4 loader (and ``lra_source_to_tokens``) deletes the parentheses and splits on
  whitespace: ``["[MAX", "2", "9", "]"]``, so released LRA files and generated trees are tokenised identically.
"""

import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeAlias

import numpy as np


MIN = "[MIN"
MAX = "[MAX"
MED = "[MED"
SUM_MOD = "[SM"
END = "]"
OPERATORS: tuple[str, ...] = (MIN, MAX, MED, SUM_MOD)
# LRA: a node below max_depth is an operator iff u <= VALUE_P (u ~ U[0, 1)), i.e. a leaf with probability 0.75.
VALUE_P = 0.25

# LRA's operators; MED is int() of the median (the mean of the two middle values).
_EVALUATE = {MIN: min, MAX: max, MED: lambda v: int(statistics.median(v)), SUM_MOD: lambda v: sum(v) % 10}

# A tree is a digit (leaf) or (operator, children).
Tree: TypeAlias = int | tuple[str, tuple["Tree", ...]]

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
LISTOPS_VOCAB: list[str] = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, *(str(d) for d in range(10)), *OPERATORS, END]
TOKEN_TO_ID: dict[str, int] = {token: index for index, token in enumerate(LISTOPS_VOCAB)}
PAD_ID = TOKEN_TO_ID[PAD_TOKEN]
EOS_ID = TOKEN_TO_ID[EOS_TOKEN]
UNK_ID = TOKEN_TO_ID[UNK_TOKEN]


class _TooLong(Exception):
    """Raised inside the sampler once a tree can no longer pass the length filter."""


def _uniform_stream(rng: np.random.Generator, block: int = 8192) -> Callable[[], float]:
    """A function returning U[0, 1) floats of ``rng``, drawn in blocks (one numpy call per scalar costs ~1 us)."""
    buffer: list[float] = []

    def draw() -> float:
        if not buffer:
            # Reverse so pop() hands values out in generation order.
            buffer.extend(reversed(rng.random(block).tolist()))
        return buffer.pop()

    return draw


def _choice(draw: Callable[[], float], n: int) -> int:
    # min() guards against u * n rounding up to n for u just below 1.
    return min(int(draw() * n), n - 1)


def _sample(
    draw: Callable[[], float], depth: int, max_depth: int, max_args: int, size: list[int], limit: int | None
) -> Tree:
    leaf = depth >= max_depth or draw() > VALUE_P
    size[0] += 1 if leaf else 2
    if limit is not None and size[0] >= limit:
        raise _TooLong
    if leaf:
        return _choice(draw, 10)
    op = OPERATORS[_choice(draw, len(OPERATORS))]
    num_children = 2 + _choice(draw, max_args - 1)
    children = tuple(_sample(draw, depth + 1, max_depth, max_args, size, limit) for _ in range(num_children))
    return (op, children)


def _check_args(max_depth: int, max_args: int) -> None:
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    if max_args < 2:
        raise ValueError(f"max_args must be >= 2, got {max_args}")


def generate_tree(rng: np.random.Generator, max_depth: int, max_args: int) -> Tree:
    """One ListOps tree by the LRA rules (root at depth 1): a digit (leaf) or ``(operator, children)``. ``rng`` is
    consumed in blocks, so only determinism per generator state is promised, not a number of draws."""
    _check_args(max_depth, max_args)
    return _sample(_uniform_stream(rng, block=256), 1, max_depth, max_args, [0], None)


def evaluate_tree(tree: Tree) -> int:
    """Evaluate a tree bottom-up; the root value (0-9) is the label."""
    if isinstance(tree, int):
        return tree
    op, children = tree
    if op not in _EVALUATE:
        raise ValueError(f"unknown operator {op!r}")
    return _EVALUATE[op]([evaluate_tree(child) for child in children])


def tree_to_tokens(tree: Tree, out: list[str] | None = None) -> list[str]:
    """Token list as the S4 loader sees it, e.g. ``["[MAX", "2", "9", "]"]`` (appended to ``out`` if given)."""
    out = [] if out is None else out
    if isinstance(tree, int):
        out.append(str(tree))
        return out
    out.append(tree[0])
    for child in tree[1]:
        tree_to_tokens(child, out)
    out.append(END)
    return out


def tree_to_lra_source(tree: Tree) -> str:
    """LRA TSV ``Source`` string, e.g. ``( ( ( [MAX 2 ) 9 ) ] )``."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    # LRA nests ((op, c0), c1), ..., END) left-deep and parenthesises every pair, so an operator with k
    # children opens k + 1 parentheses up front and closes one after each child and after END.
    parts = ["( " * (len(children) + 1) + op + " " + tree_to_lra_source(children[0]) + " )"]
    parts.extend(tree_to_lra_source(child) + " )" for child in children[1:])
    parts.append(END + " )")
    return " ".join(parts)


def lra_source_to_tokens(source: str) -> list[str]:
    """Tokenise an LRA ``Source`` string the S4 way: delete parentheses, split on whitespace (S4 also renames ``]``
    to ``X``, LRA's own tokenizer drops non-alphanumerics; the token identity is unchanged, so ``]`` is kept)."""
    return source.replace("(", " ").replace(")", " ").split()


def encode_tokens(tokens: Iterable[str]) -> list[int]:
    """Map tokens to ``LISTOPS_VOCAB`` ids (unknown tokens to ``<unk>``) and append ``<eos>``."""
    return [TOKEN_TO_ID.get(token, UNK_ID) for token in tokens] + [EOS_ID]


def generate_listops(
    num_examples: int,
    seed: int,
    max_depth: int = 10,
    max_args: int = 10,
    min_length: int = 500,
    max_length: int = 2000,
) -> list[dict]:
    """``num_examples`` unique examples (dicts of ``source``, the LRA TSV form, ``input_ids`` with EOS and ``label``)
    by LRA's rejection sampling (defaults: LRA's), seeded by ``seed``.

    LRA dedupes through a set; here a token string's first occurrence is kept, in generation order, so the result is
    reproducible across processes. A tree is abandoned once its running length reaches ``max_length`` (it would be
    rejected anyway, so the accepted distribution is unchanged).
    """
    _check_args(max_depth, max_args)
    if max_length <= min_length + 1:
        raise ValueError(f"empty length window ({min_length}, {max_length})")
    draw = _uniform_stream(np.random.default_rng(seed))
    examples: dict[str, dict] = {}
    while len(examples) < num_examples:
        size = [0]
        try:
            tree = _sample(draw, 1, max_depth, max_args, size, max_length)
        except _TooLong:
            continue
        if size[0] <= min_length:
            continue
        tokens = tree_to_tokens(tree)
        key = " ".join(tokens)
        if key in examples:
            continue
        examples[key] = {
            "source": tree_to_lra_source(tree),
            "input_ids": encode_tokens(tokens),
            "label": evaluate_tree(tree),
        }
    return list(examples.values())


def read_lra_tsv(path: str | Path) -> list[dict]:
    """An LRA ListOps TSV (e.g. ``basic_train.tsv``: a ``Source<TAB>Target`` header, an expression and its value per
    line) as ``generate_listops`` dicts plus ``line`` (1-based); an empty file gives ``[]``. A wrong header, a row
    without two fields or a non-integer target is a ValueError naming the file and line."""
    examples = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if number == 1:
                if [f.strip() for f in fields] != ["Source", "Target"]:
                    raise ValueError(f"{path} line 1: expected the header 'Source<TAB>Target', got {line[:60]!r}")
                continue
            if not line.strip():
                continue
            if len(fields) != 2:
                raise ValueError(
                    f"{path} line {number}: expected 2 tab-separated fields (Source, Target), got {len(fields)}"
                )
            try:
                label = int(fields[1])
            except ValueError:
                raise ValueError(f"{path} line {number}: Target must be an integer 0..9, got {fields[1]!r}") from None
            tokens = encode_tokens(lra_source_to_tokens(fields[0]))
            examples.append({"source": fields[0], "input_ids": tokens, "label": label, "line": number})
    return examples
