"""Tests for modeling_mrconv/data/generators/listops.py (LRA ListOps rules)."""

import json
import re
import statistics
import subprocess
import sys

import numpy as np
import pytest

from modeling_mrconv.data.generators import listops


SMALL = {"max_depth": 5, "max_args": 5, "min_length": 20, "max_length": 200}


@pytest.fixture(scope="module")
def small_examples() -> list[dict]:
    return listops.generate_listops(300, seed=0, **SMALL)


# -- independent reference implementations (deliberately not using listops' own helpers) -------------------


def _apply(op: str, values: list[int]) -> int:
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        return int(statistics.median(values))
    if op == "[SM":
        return sum(values) % 10
    raise AssertionError(op)


def stack_evaluate(tokens: list[str]) -> int:
    """Evaluate a parenthesis-free token list with an explicit stack."""
    stack: list[tuple[str, list[int]]] = []
    result = None
    for token in tokens:
        if token.startswith("["):
            stack.append((token, []))
        elif token == "]":
            op, values = stack.pop()
            value = _apply(op, values)
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
        else:
            assert token.isdigit() and len(token) == 1, token
            if stack:
                stack[-1][1].append(int(token))
            else:
                result = int(token)
    assert not stack
    return result


def parse_lra_source(source: str):
    """Recursive-descent parse of LRA's parenthesised pair form into nested 2-tuples."""
    tokens = source.split()
    position = 0

    def element():
        nonlocal position
        token = tokens[position]
        position += 1
        if token != "(":
            return token
        left = element()
        right = element()
        assert tokens[position] == ")", (position, tokens[position])
        position += 1
        return (left, right)

    tree = element()
    assert position == len(tokens)
    return tree


def evaluate_pairs(node) -> int:
    """Evaluate the left-nested pair form: (((op, a), b), ..., ']')."""
    if isinstance(node, str):
        return int(node)
    assert node[1] == "]", node
    args = []
    spine = node[0]
    while isinstance(spine[0], tuple):
        args.append(spine[1])
        spine = spine[0]
    op, first = spine
    args.append(first)
    return _apply(op, [evaluate_pairs(a) for a in reversed(args)])


# -- tests -------------------------------------------------------------------------------------------------


def test_vocab_layout():
    vocab = listops.LISTOPS_VOCAB
    assert vocab[:3] == ["<pad>", "<eos>", "<unk>"]
    assert vocab[3:13] == [str(d) for d in range(10)]
    assert set(vocab[13:17]) == {"[MIN", "[MAX", "[MED", "[SM"}
    assert vocab[17] == "]"
    assert len(vocab) == len(set(vocab)) == 18


def test_documented_example():
    tree = ("[MAX", (2, 9))
    assert listops.tree_to_lra_source(tree) == "( ( ( [MAX 2 ) 9 ) ] )"
    assert listops.tree_to_tokens(tree) == ["[MAX", "2", "9", "]"]
    assert listops.lra_source_to_tokens("( ( ( [MAX 2 ) 9 ) ] )") == ["[MAX", "2", "9", "]"]
    assert listops.evaluate_tree(tree) == 9


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (("[MED", (1, 2, 8, 9)), 5),
        (("[MED", (3, 4)), 3),
        (("[MED", (7, 1, 4)), 4),
        (("[SM", (9, 8, 7)), 4),
        (("[MIN", (5, ("[MAX", (2, 9)), 6)), 5),
    ],
)
def test_evaluate_known_values(tree, expected):
    assert listops.evaluate_tree(tree) == expected
    assert stack_evaluate(listops.tree_to_tokens(tree)) == expected


def test_generate_tree_respects_depth_and_arity():
    rng = np.random.default_rng(3)

    def check(node, depth):
        if isinstance(node, int):
            assert 0 <= node <= 9
            return
        assert depth < 4
        op, children = node
        assert op in listops.OPERATORS
        assert 2 <= len(children) <= 6
        for child in children:
            check(child, depth + 1)

    trees = [listops.generate_tree(rng, max_depth=4, max_args=6) for _ in range(300)]
    for tree in trees:
        check(tree, 1)
    # The root is a leaf with probability 0.75.
    leaf_fraction = np.mean([isinstance(t, int) for t in trees])
    assert 0.65 < leaf_fraction < 0.85
    assert all(isinstance(listops.generate_tree(rng, max_depth=1, max_args=5), int) for _ in range(20))


def test_deterministic_and_seed_dependent():
    a = listops.generate_listops(40, seed=11, **SMALL)
    b = listops.generate_listops(40, seed=11, **SMALL)
    c = listops.generate_listops(40, seed=12, **SMALL)
    assert a == b
    assert [e["source"] for e in a] != [e["source"] for e in c]


@pytest.mark.slow
def test_deterministic_across_processes():
    here = [e["source"] for e in listops.generate_listops(20, seed=5, **SMALL)]
    code = (
        "import json; from modeling_mrconv.data.generators import listops;"
        "print(json.dumps([e['source'] for e in listops.generate_listops(20, seed=5, max_depth=5, max_args=5,"
        " min_length=20, max_length=200)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == here


def test_labels_match_independent_evaluators(small_examples):
    for example in small_examples:
        tokens = listops.lra_source_to_tokens(example["source"])
        assert stack_evaluate(tokens) == example["label"]
        assert evaluate_pairs(parse_lra_source(example["source"])) == example["label"]


def test_strict_length_window(small_examples):
    lengths = [len(e["input_ids"]) - 1 for e in small_examples]  # minus the EOS
    assert all(20 < n < 200 for n in lengths)
    # A window admitting a single length: the bounds really are exclusive.
    narrow = listops.generate_listops(10, seed=1, max_depth=5, max_args=5, min_length=20, max_length=22)
    assert {len(e["input_ids"]) - 1 for e in narrow} == {21}


def test_unique_examples(small_examples):
    assert len({e["source"] for e in small_examples}) == len(small_examples) == 300


def test_label_distribution_not_degenerate(small_examples):
    labels = [e["label"] for e in small_examples]
    assert all(0 <= y <= 9 for y in labels)
    assert len(set(labels)) > 5


def test_token_id_round_trip(small_examples):
    for example in small_examples[:50]:
        ids = example["input_ids"]
        assert ids[-1] == listops.EOS_ID
        assert listops.PAD_ID not in ids and listops.UNK_ID not in ids
        assert listops.encode_tokens(listops.lra_source_to_tokens(example["source"])) == ids
    assert listops.encode_tokens(["3", "X"]) == [listops.TOKEN_TO_ID["3"], listops.UNK_ID, listops.EOS_ID]


def test_source_tokens_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(100):
        tree = listops.generate_tree(rng, max_depth=5, max_args=5)
        source = listops.tree_to_lra_source(tree)
        assert listops.lra_source_to_tokens(source) == listops.tree_to_tokens(tree)
        assert source.count("(") == source.count(")")
        if not isinstance(tree, int):
            assert evaluate_pairs(parse_lra_source(source)) == listops.evaluate_tree(tree)


def test_tsv_round_trip(tmp_path, small_examples):
    path = tmp_path / "basic_train.tsv"
    path.write_text("Source\tTarget\n" + "".join(f"{e['source']}\t{e['label']}\n" for e in small_examples[:30]))
    rows = listops.read_lra_tsv(path)
    assert [r.pop("line") for r in rows] == list(range(2, 32))
    assert rows == small_examples[:30]


def test_read_lra_tsv_names_file_and_line_of_a_short_row(tmp_path):
    path = tmp_path / "basic_val.tsv"
    path.write_text("Source\tTarget\n( [MAX 2 3 ] )\t3\n( [MIN 4 5 ] )\n")
    with pytest.raises(ValueError, match=re.escape(f"{path} line 3: expected 2 tab-separated fields")):
        listops.read_lra_tsv(path)


def test_read_hand_written_lra_row(tmp_path):
    path = tmp_path / "basic_val.tsv"
    path.write_text("Source\tTarget\n( ( ( ( [SM 4 ) ( ( ( [MIN 7 ) 3 ) ] ) ) 9 ) ] )\t6\n")
    (row,) = listops.read_lra_tsv(path)
    assert row["label"] == 6
    assert row["input_ids"] == listops.encode_tokens(["[SM", "4", "[MIN", "7", "3", "]", "9", "]"])


def test_lra_sized_examples_are_fast_enough():
    examples = listops.generate_listops(20, seed=0)
    lengths = [len(e["input_ids"]) - 1 for e in examples]
    assert all(500 < n < 2000 for n in lengths)
