"""Tests for modeling_mrconv/data/generators/pathfinder.py (Pathfinder / Path-X rules)."""

import math

import numpy as np
import pytest

from modeling_mrconv.data.generators import pathfinder


@pytest.fixture(scope="module")
def scenes() -> list[pathfinder.PathfinderScene]:
    params = pathfinder.pathfinder_params(32)
    return [pathfinder.sample_pathfinder_scene(pathfinder.image_rng(7, i), params) for i in range(40)]


def test_presets_match_lra():
    p32, p64, p128 = (pathfinder.pathfinder_params(r) for r in (32, 64, 128))
    assert (p32["window_size"], p32["padding"], p32["antialias_scale"], p32["paddle_length"]) == (32, 1, 2, 2)
    assert (p32["paddle_thickness"], p32["paddle_margin_list"], p32["marker_radius"]) == (0.5, [1], 1.5)
    assert (p32["seed_distance"], p32["continuity"], p32["contour_length"]) == (7, 1.0, 14)
    assert (p32["distractor_length"], p32["num_distractor_snakes"]) == (4, 5)
    assert (p32["snake_contrast_list"], p32["paddle_contrast_list"]) == ([2.0], [0.75])
    assert (p64["seed_distance"], p64["marker_radius"], p64["paddle_thickness"], p64["continuity"]) == (
        12,
        2.5,
        1,
        1.8,
    )
    assert p64["num_distractor_snakes"] == pytest.approx(22 / (14 / 3))
    assert (p128["paddle_margin_list"], p128["seed_distance"], p128["paddle_thickness"]) == ([2, 3], 20, 1.5)
    assert p128["num_distractor_snakes"] == pytest.approx(35 / (14 / 3))
    assert p128["snake_contrast_list"] == [0.9]
    assert pathfinder.pathfinder_params(256)["paddle_margin_list"] == [3]


def test_params_rederive_distractors():
    params = pathfinder.pathfinder_params(32, contour_length=9)
    assert (params["contour_length"], params["distractor_length"]) == (9, 3)
    assert params["num_distractor_snakes"] == pytest.approx(20 / 3)
    params["paddle_margin_list"].append(5)  # a copy: the preset must not change
    assert pathfinder.pathfinder_params(32)["paddle_margin_list"] == [1]


def test_image_rng_is_spawned_child():
    child = np.random.SeedSequence(3).spawn(4)[2]
    assert np.array_equal(np.random.default_rng(child).random(5), pathfinder.image_rng(3, 2).random(5))


def test_deterministic_per_seed_and_index():
    images3, labels3 = pathfinder.generate_pathfinder(3, seed=5)
    images5, labels5 = pathfinder.generate_pathfinder(5, seed=5)
    again, _ = pathfinder.generate_pathfinder(3, seed=5)
    other, _ = pathfinder.generate_pathfinder(3, seed=6)
    assert np.array_equal(images3, images5[:3]) and np.array_equal(labels3, labels5[:3])
    assert np.array_equal(images3, again)
    assert not np.array_equal(images3, other)


@pytest.mark.parametrize(("resolution", "contour_length"), [(32, None), (64, 9)])
def test_shapes_dtype_and_range(resolution, contour_length):
    images, labels = pathfinder.generate_pathfinder(3, seed=1, resolution=resolution, contour_length=contour_length)
    assert images.shape == (3, resolution, resolution) and images.dtype == np.uint8
    assert labels.shape == (3,) and labels.dtype == np.int64
    assert set(labels.tolist()) <= {0, 1}
    for image in images:
        assert image.min() == 0 and image.max() == 255
        assert len(np.unique(image)) > 3  # anti-aliasing gives intermediate grey levels


def test_labels_roughly_balanced():
    _, labels = pathfinder.generate_pathfinder(100, seed=0)
    assert 0.35 < labels.mean() < 0.65


def test_markers_sit_on_target_tips(scenes):
    for scene in scenes:
        first, second = scene.marker_snakes
        assert scene.label == int(first == second)
        assert np.allclose(scene.markers[0], scene.origin_tips[first])
        assert np.allclose(scene.markers[1], scene.terminal_tips[second])
        for index in (0, 1):
            paddles = scene.target_paddles[index]
            assert paddles.shape == (14, 2, 2)
            assert np.allclose(scene.origin_tips[index], paddles[0, 0])
            assert np.allclose(scene.terminal_tips[index], paddles[-1, 1])
        for marker in scene.markers:
            row, col = np.floor(marker + 0.5).astype(int)
            assert scene.image[row, col] >= 128  # a marker disk is drawn there
    assert {s.label for s in scenes} == {0, 1}


def test_targets_seeded_seed_distance_apart(scenes):
    for scene in scenes:
        gap = np.linalg.norm(scene.origin_tips[0] - scene.origin_tips[1])
        assert abs(gap - 7) <= 1  # B's tail is rounded to a pixel
        assert np.all((scene.origin_tips[0] >= 14) & (scene.origin_tips[0] < 32 - 14))


def test_snake_geometry_follows_growth_rule(scenes):
    margin, length, continuity = 1, 2, 1.0
    for scene in scenes:
        for paddles in scene.target_paddles:
            starts, ends = paddles[:, 0], paddles[:, 1]
            assert np.allclose(np.linalg.norm(ends - starts, axis=1), length)
            directions = np.arctan2(*(ends - starts).T)
            turns = np.abs((np.diff(directions) + math.pi) % (2 * math.pi) - math.pi)
            assert np.all(turns < math.pi / (2 * continuity) + 1e-9)
            # Consecutive paddles are separated by a gap of at most 2 * margin (exactly that when straight).
            gaps = np.linalg.norm(starts[1:] - ends[:-1], axis=1)
            assert np.all(gaps <= 2 * margin + 1e-9) and np.all(gaps > 0)


def test_target_snakes_never_touch(scenes):
    for scene in scenes:
        a, b = scene.target_masks
        assert a.any() and b.any()
        grown = np.zeros((a.shape[0] + 2, a.shape[1] + 2), dtype=bool)
        for dy in range(3):
            for dx in range(3):
                grown[dy : dy + a.shape[0], dx : dx + a.shape[1]] |= a
        # Not even diagonally adjacent: the occupancy margin keeps a gap of at least one pixel.
        assert not (grown[1:-1, 1:-1] & b).any()


def test_distractors_present(scenes):
    counts = [s.num_distractors for s in scenes]
    assert max(counts) <= 5 and np.mean(counts) > 2


def test_path_x_smoke():
    scene = pathfinder.sample_pathfinder_scene(pathfinder.image_rng(0, 0), pathfinder.pathfinder_params(128))
    assert scene.image.shape == (128, 128) and scene.margin in (2, 3)
    assert scene.num_distractors <= 8
