"""Seeded ListOps generator (the LRA ListOps task), numpy only.

Implements the rules of LRA's (Tay et al. 2021)
``lra_benchmarks/data/listops.py`` (itself derived from the Nangia & Bowman 2018 generator) and the
tokenisation of the widely used S4 loader (``state-spaces/s4`` ``src/dataloaders/lra.py``). The code is an
independent re-implementation, not a copy.

* Trees: the root is at depth 1; below ``max_depth`` a node is a leaf (uniform digit) with probability 0.75,
  at ``max_depth`` always a leaf; an operator node picks MIN/MAX/MED/SM uniformly and has
  ``k ~ UniformInt[2, max_args]`` children.
* Length: a leaf counts 1, an operator 2 (its opening token and ``]``) plus its children; kept only if
  ``min_length < length < max_length`` (strict, as in LRA).
* Label: bottom-up evaluation; MED is ``int()`` of the median, SM is the sum modulo 10.
* Serialisation: LRA's TSV stores a left-nested pair structure with a parenthesis pair around every pair,
  e.g. ``( ( ( [MAX 2 ) 9 ) ] )``; the S4 loader deletes the parentheses and splits on whitespace, which
  gives ``["[MAX", "2", "9", "]"]``. ``lra_source_to_tokens`` does the same, so released LRA files and
  generated trees are tokenised identically.
"""

import argparse
import csv
from collections.abc import Callable, Iterable, Sequence
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

_BLOCK = 8192


class _TooLong(Exception):
    """Raised inside the sampler once a tree can no longer pass the length filter."""


def _uniform_stream(rng: np.random.Generator, block: int = _BLOCK) -> Callable[[], float]:
    """Return a zero-argument function yielding U[0, 1) floats drawn from ``rng`` in blocks.

    One numpy call per scalar costs ~1 us; drawing blocks keeps sampling at pure-Python speed while every
    value still comes from ``rng``, so the output is a deterministic function of the generator's state.
    """
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
    if depth >= max_depth or draw() > VALUE_P:
        size[0] += 1
        if limit is not None and size[0] >= limit:
            raise _TooLong
        return _choice(draw, 10)
    size[0] += 2
    if limit is not None and size[0] >= limit:
        raise _TooLong
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
    """Sample one ListOps tree by the LRA rules (root at depth 1).

    Args:
        rng: Source of randomness; it is consumed in blocks of uniforms, so only determinism per generator
            state is promised, not a particular number of draws.
        max_depth: Nodes at this depth are always leaves.
        max_args: Operators get ``UniformInt[2, max_args]`` children.

    Returns:
        A digit (leaf) or ``(operator, children)``.
    """
    _check_args(max_depth, max_args)
    return _sample(_uniform_stream(rng, block=256), 1, max_depth, max_args, [0], None)


def tree_length(tree: Tree) -> int:
    """Token count without parentheses: a leaf counts 1, an operator 2 plus its children."""
    if isinstance(tree, int):
        return 1
    return 2 + sum(tree_length(child) for child in tree[1])


def evaluate_tree(tree: Tree) -> int:
    """Evaluate a tree bottom-up; the root value (0-9) is the label."""
    if isinstance(tree, int):
        return tree
    op, children = tree
    values = [evaluate_tree(child) for child in children]
    if op == MIN:
        return min(values)
    if op == MAX:
        return max(values)
    if op == MED:
        values.sort()
        mid = len(values) // 2
        if len(values) % 2:
            return values[mid]
        # int() of the mean of the two middle values; digits are non-negative, so floor division is the same.
        return (values[mid - 1] + values[mid]) // 2
    if op == SUM_MOD:
        return sum(values) % 10
    raise ValueError(f"unknown operator {op!r}")


def _append_tokens(tree: Tree, out: list[str]) -> None:
    if isinstance(tree, int):
        out.append(str(tree))
        return
    out.append(tree[0])
    for child in tree[1]:
        _append_tokens(child, out)
    out.append(END)


def tree_to_tokens(tree: Tree) -> list[str]:
    """Token list as the S4 loader sees it, e.g. ``["[MAX", "2", "9", "]"]``."""
    out: list[str] = []
    _append_tokens(tree, out)
    return out


def _lra_source(tree: Tree) -> str:
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    # LRA nests ((op, c0), c1), ..., END) left-deep and parenthesises every pair, so an operator with k
    # children opens k + 1 parentheses up front and closes one after each child and after END.
    parts = ["( " * (len(children) + 1) + op + " " + _lra_source(children[0]) + " )"]
    parts.extend(_lra_source(child) + " )" for child in children[1:])
    parts.append(END + " )")
    return " ".join(parts)


def tree_to_lra_source(tree: Tree) -> str:
    """LRA TSV ``Source`` string, e.g. ``( ( ( [MAX 2 ) 9 ) ] )``."""
    return _lra_source(tree)


def lra_source_to_tokens(source: str) -> list[str]:
    """Tokenise an LRA ``Source`` string the S4 way: delete parentheses, split on whitespace.

    S4 additionally renames ``]`` to ``X`` (LRA's own tokenizer drops non-alphanumerics); the token identity
    is unchanged, so ``]`` is kept here.
    """
    return source.replace("(", " ").replace(")", " ").split()


def encode_tokens(tokens: Iterable[str], append_eos: bool = True) -> list[int]:
    """Map tokens to ``LISTOPS_VOCAB`` ids (unknown tokens to ``<unk>``), optionally appending ``<eos>``."""
    ids = [TOKEN_TO_ID.get(token, UNK_ID) for token in tokens]
    if append_eos:
        ids.append(EOS_ID)
    return ids


def decode_ids(ids: Iterable[int], skip_special: bool = True) -> list[str]:
    """Map ids back to tokens, dropping ``<pad>`` and ``<eos>`` unless ``skip_special`` is False."""
    skip = {PAD_ID, EOS_ID} if skip_special else set()
    return [LISTOPS_VOCAB[i] for i in ids if i not in skip]


def generate_listops(
    num_examples: int,
    seed: int,
    max_depth: int = 10,
    max_args: int = 10,
    min_length: int = 500,
    max_length: int = 2000,
) -> list[dict]:
    """Generate unique ListOps examples by LRA's rejection sampling.

    Trees are drawn until ``num_examples`` distinct token strings with ``min_length < length < max_length``
    are found (LRA dedupes through a set; here the first occurrence is kept and generation order is the
    output order, so the result is reproducible across processes). A tree is abandoned as soon as its
    running length reaches ``max_length``; it would be rejected anyway, so the accepted distribution is
    unchanged.

    Args:
        num_examples: Number of unique examples to return.
        seed: Seed for ``numpy.random.default_rng``.
        max_depth: Maximum tree depth (LRA: 10).
        max_args: Maximum operator arity (LRA: 10).
        min_length: Exclusive lower bound on the token count (LRA: 500).
        max_length: Exclusive upper bound on the token count (LRA: 2000).

    Returns:
        Dicts with ``source`` (LRA TSV form), ``input_ids`` (``encode_tokens`` with EOS) and ``label`` (0-9).
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


def write_lra_tsv(examples: Sequence[dict], path: str | Path) -> None:
    """Write examples in LRA's released layout: header ``Source\\tTarget``, one tab-separated row each."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["Source", "Target"])
        for example in examples:
            writer.writerow([example["source"], int(example["label"])])


def read_lra_tsv(path: str | Path, append_eos: bool = True) -> list[dict]:
    """Read an LRA ListOps TSV (e.g. the released ``basic_train.tsv``): a ``Source<TAB>Target`` header, then one
    expression and its value 0..9 per line.

    Returns:
        Dicts shaped like ``generate_listops`` output (``source``, ``input_ids``, ``label``) plus ``line``, the 1-based
        line number. A wrong header, a row without exactly two fields or a target that is not an integer raises
        ValueError naming the file and the line; an empty file gives ``[]``.
    """
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
            tokens = encode_tokens(lra_source_to_tokens(fields[0]), append_eos=append_eos)
            examples.append({"source": fields[0], "input_ids": tokens, "label": label, "line": number})
    return examples


def main() -> None:
    """CLI: generate ListOps examples and write them as an LRA-format TSV."""
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_depth", type=int, default=10)
    parser.add_argument("--max_args", type=int, default=10)
    parser.add_argument("--min_length", type=int, default=500)
    parser.add_argument("--max_length", type=int, default=2000)
    parser.add_argument("--output", type=Path, required=True, help="TSV path (LRA layout: Source<TAB>Target)")
    args = parser.parse_args()

    start = time.perf_counter()
    examples = generate_listops(
        args.num_examples, args.seed, args.max_depth, args.max_args, args.min_length, args.max_length
    )
    elapsed = time.perf_counter() - start
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_lra_tsv(examples, args.output)
    labels = np.bincount([e["label"] for e in examples], minlength=10)
    lengths = [len(e["input_ids"]) - 1 for e in examples]
    print(f"wrote {len(examples)} examples to {args.output} in {elapsed:.1f}s")
    print(f"length min/median/max: {min(lengths)}/{int(np.median(lengths))}/{max(lengths)}")
    print(f"label counts: {labels.tolist()}")


if __name__ == "__main__":
    main()
