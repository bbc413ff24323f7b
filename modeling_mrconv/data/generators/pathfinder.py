"""Seeded Pathfinder / Path-X generator, numpy only.

The rules of Linsley et al. (2018) (drewlinsley/pathfinder ``snakes2.py``, ``snakes.py``, ``snakes2_wrapper.py``)
with the per-resolution parameters of LRA's ``lra_benchmarks/data/pathfinder.py``; an independent re-implementation
(supersampled rasterisation, block-mean downsampling and a numpy disk dilation instead of cv2/PIL/scipy). One image:

1. Paddles are segments of ``paddle_length`` x ``paddle_thickness`` px, drawn at ``antialias_scale`` times the
   resolution and block-mean downsampled. An occupancy mask holds every committed paddle dilated by ``margin`` (the
   border ``padding`` starts occupied); new paddles may not land on it, so contours never touch.
2. Two target snakes are seeded ``seed_distance`` px apart (A at least ``2 * seed_distance`` from the border) and
   grown in lock-step: the next pivot lies ``paddle_length + 2 * margin`` ahead, candidate end points ~1 px apart on
   a circle of radius ``paddle_length + margin`` around it, weighted by ``max(cos(min(delta * continuity, pi / 2)),
   0) ** 2`` and zeroed on occupied pixels. A stuck pair restarts.
3. Distractor snakes of ``distractor_length`` paddles are grown the same way from random free seeds.
4. Two marker disks: the origin tip of a random target, and the terminal tip of the same target (label 1) or of
   the other (label 0). Labels are Bernoulli(0.5); the image is rescaled to 0-255 uint8.
"""

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


# Parameters not overridden by LRA keep the snakes2 wrapper defaults (``snakes2_wrapper.py``).
_WRAPPER_DEFAULTS: dict[str, Any] = {
    "padding": 22,
    "antialias_scale": 4,
    "seed_distance": 27,
    "marker_radius": 3.0,
    "contour_length": 14,
    "paddle_length": 5,
    "paddle_thickness": 1.5,
    "paddle_margin_list": [4],
    "continuity": 1.4,
    "snake_contrast_list": [1.0],
    "paddle_contrast_list": [1.0],
    "max_paddle_retrial": 2,
    "max_distractor_contour_retrial": 4,
}

# Distractor paddle budget per resolution: num_distractor_snakes = budget / distractor_length. LRA's 32 px
# setting uses integer division for the distractor length (14 // 3); the others use true division (14 / 3).
_DISTRACTOR_BUDGET: dict[int, int] = {32: 20, 64: 22, 128: 35, 256: 30}


# LRA's settings per resolution (lra_benchmarks/data/pathfinder.py)
_LRA_OVERRIDES: dict[int, dict[str, Any]] = {
    32: {
        "padding": 1,
        "antialias_scale": 2,
        "paddle_length": 2,
        "paddle_thickness": 0.5,
        "paddle_margin_list": [1],
        "marker_radius": 1.5,
        "seed_distance": 7,
        "continuity": 1.0,
        "snake_contrast_list": [2.0],
        "paddle_contrast_list": [0.75],
    },
    64: {
        "padding": 1,
        "antialias_scale": 2,
        "paddle_margin_list": [1],
        "seed_distance": 12,
        "marker_radius": 2.5,
        "paddle_thickness": 1.0,
        "continuity": 1.8,
        "snake_contrast_list": [0.8],
    },
    128: {
        "padding": 1,
        "antialias_scale": 2,
        "paddle_margin_list": [2, 3],
        "seed_distance": 20,
        "marker_radius": 3.0,
        "paddle_thickness": 1.5,
        "continuity": 1.8,
        "snake_contrast_list": [0.9],
    },
    256: {
        # LRA's builder notes set antialias_scale = 4 and then = 2 for 64/128/256; the later value wins.
        "antialias_scale": 2,
        "paddle_margin_list": [3],
        "marker_radius": 5.0,
        "paddle_thickness": 2.0,
        "continuity": 1.8,
        "snake_contrast_list": [1.0],
    },
}

# Safety net only: a preset that cannot place its two targets should fail loudly, not loop forever.
_MAX_TARGET_RESTARTS = 10_000


def pathfinder_params(resolution: int = 32, contour_length: int | None = None) -> dict[str, Any]:
    """A new copy of LRA's preset; another ``contour_length`` re-derives the distractors as LRA does at that resolution."""
    if resolution not in _LRA_OVERRIDES:
        raise ValueError(f"no preset for resolution {resolution}; choose from {sorted(_LRA_OVERRIDES)}")
    params = copy.deepcopy(dict(_WRAPPER_DEFAULTS, window_size=resolution, **_LRA_OVERRIDES[resolution]))
    if contour_length is not None:
        if contour_length < 1:
            raise ValueError(f"contour_length must be >= 1, got {contour_length}")
        params["contour_length"] = contour_length
    length = params["contour_length"] // 3 if resolution == 32 else params["contour_length"] / 3
    params["distractor_length"] = length
    params["num_distractor_snakes"] = _DISTRACTOR_BUDGET[resolution] / length if length > 0 else 0.0
    return params


@dataclass
class PathfinderScene:
    """One generated image with the geometry behind it (coordinates are (y, x) in image pixels)."""

    image: np.ndarray  # (H W) uint8, rescaled so its maximum is 255
    label: int  # 1 if both markers sit on the same target snake
    margin: int
    target_paddles: list[np.ndarray]  # per target (contour_length 2 2): each paddle's (start, end)
    origin_tips: np.ndarray  # (2 2) first-paddle start of targets A and B
    terminal_tips: np.ndarray  # (2 2) last-paddle end of targets A and B
    marker_snakes: tuple[int, int]  # target (0 = A, 1 = B) under the first and the second marker
    markers: np.ndarray  # (2 2) marker centres
    target_masks: np.ndarray  # (2 H W) bool, pixels lit by each target
    num_distractors: int  # distractor snakes placed


@dataclass
class _Patch:
    """A rasterised paddle at (row, col): anti-aliased coverage, lit pixels, margin-dilated footprint."""

    row: int
    col: int
    coverage: np.ndarray
    lit: np.ndarray
    footprint: np.ndarray | None = None  # filled in by _Canvas.footprint once the paddle is accepted

    def window(self) -> tuple[slice, slice]:
        rows, cols = self.lit.shape
        return slice(self.row, self.row + rows), slice(self.col, self.col + cols)


@dataclass
class _Snake:
    pivot: tuple[float, float]
    theta: float
    contrast: float
    paddles: list[tuple[tuple[float, float], tuple[float, float]]]
    pending: _Patch | None  # latest paddle; committed to the mask only once the next one is placed
    patches: list[_Patch]


def _pick(rng: np.random.Generator, options: list) -> Any:
    """One of `options`, drawing from `rng` only when there is a choice (as snakes2 does)."""
    return options[0] if len(options) == 1 else options[int(rng.integers(len(options)))]


class _Canvas:
    """State of one image. Arrays carry a border of ``pad`` px (pre-occupied) so no drawing needs clipping."""

    def __init__(
        self, params: dict[str, Any], margin: int, rng: np.random.Generator, turn_weights: dict[float, np.ndarray]
    ) -> None:
        self.rng = rng
        self.size = int(params["window_size"])
        self.scale = int(params["antialias_scale"])
        self.length = float(params["paddle_length"])
        self.half_thickness = float(params["paddle_thickness"]) / 2
        self.margin = margin
        self.continuity = float(params["continuity"])
        self.retries = 1 + int(params["max_paddle_retrial"])
        self.paddle_contrasts = [float(c) for c in params["paddle_contrast_list"]]
        # Dilating lit pixels by a disk of radius margin + 0.5 keeps strokes of different paddles more than
        # `margin` px apart centre to centre; for margin 1 it is the full 3x3 block, so they never touch even
        # diagonally. The disk as rows: (dy, half-width) with dy**2 + dx**2 <= r**2 for |dx| <= half-width.
        self.reach = math.floor(margin + 0.5)
        r2 = (margin + 0.5) ** 2
        self.dilation_rows = [(dy, math.floor(math.sqrt(r2 - dy * dy))) for dy in range(-self.reach, self.reach + 1)]
        # Candidate directions ~1 px apart along the arc of radius paddle_length + margin.
        radius = self.length + margin
        count = max(8, math.ceil(2 * math.pi * radius))
        self.angles = np.arange(count) * (2 * math.pi / count)
        self.arc_y, self.arc_x = radius * np.sin(self.angles), radius * np.cos(self.angles)
        self.pad = math.ceil(self.length + 2 * margin + self.half_thickness + self.reach) + 3
        full = self.size + 2 * self.pad
        # Sub-pixel sample coordinates of the whole canvas (pixel r covers [r - 0.5, r + 0.5)); patches slice it.
        self.grid = ((np.arange(full)[:, None] + (np.arange(self.scale) + 0.5) / self.scale) - 0.5).ravel()
        self.turn_weights = turn_weights  # shared across restarts of one image
        self.image = np.zeros((full, full))
        self.occupied = np.ones((full, full), dtype=bool)
        inner = slice(self.pad + int(params["padding"]), self.pad + self.size - int(params["padding"]))
        self.occupied[inner, inner] = False

    def inside(self, y: float, x: float) -> bool:
        low, high = self.pad - 0.5, self.pad + self.size - 0.5
        return low <= y < high and low <= x < high

    def _sample_grid(self, lo_r: int, hi_r: int, lo_c: int, hi_c: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.scale
        return self.grid[lo_r * s : (hi_r + 1) * s, None], self.grid[None, lo_c * s : (hi_c + 1) * s]

    def rasterise(self, start: tuple[float, float], end: tuple[float, float]) -> _Patch:
        """Draw a flat-ended segment of the paddle thickness by supersampling and block-mean downsampling."""
        (y0, x0), (y1, x1) = start, end
        extra = self.half_thickness + 1 + self.reach
        lo_r, hi_r = math.floor(min(y0, y1) - extra), math.ceil(max(y0, y1) + extra)
        lo_c, hi_c = math.floor(min(x0, x1) - extra), math.ceil(max(x0, x1) + extra)
        ys, xs = self._sample_grid(lo_r, hi_r, lo_c, hi_c)
        dy, dx = y1 - y0, x1 - x0
        norm = math.hypot(dy, dx)
        uy, ux = dy / norm, dx / norm
        ry, rx = ys - y0, xs - x0
        along = ry * uy + rx * ux
        across = rx * uy - ry * ux
        # The epsilon keeps a 1-sample-wide line from dropping samples that sit exactly on its edge.
        inside = (np.abs(across) <= self.half_thickness + 1e-9) & (along >= -1e-9) & (along <= norm + 1e-9)
        return self._patch(lo_r, lo_c, inside)

    def _patch(self, row: int, col: int, inside: np.ndarray) -> _Patch:
        """The patch at (row, col) of the sub-pixel mask `inside`, block-mean downsampled (anti-aliased coverage)."""
        s = self.scale
        coverage = inside.reshape(inside.shape[0] // s, s, inside.shape[1] // s, s).sum(axis=(1, 3)) / s**2
        return _Patch(row, col, coverage, coverage > 0)

    def footprint(self, patch: _Patch) -> np.ndarray:
        """Lit pixels dilated by the margin disk; computed lazily since most rejected paddles never need it."""
        if patch.footprint is not None:
            return patch.footprint
        # The patch has a zero border wider than the dilation reach, so shifting inside it loses nothing.
        # Separate the disk into rows: widen horizontally once per half-width, then OR shifted rows.
        lit = patch.lit
        widened = [lit]
        for width in range(1, self.reach + 1):
            wider = widened[-1].copy()
            wider[:, width:] |= lit[:, :-width]
            wider[:, :-width] |= lit[:, width:]
            widened.append(wider)
        rows = lit.shape[0]
        out = np.zeros_like(lit)
        for dy, width in self.dilation_rows:
            if dy >= 0:
                out[dy:] |= widened[width][: rows - dy]
            else:
                out[:dy] |= widened[width][-dy:]
        patch.footprint = out
        return out

    def disk(self, centre: tuple[float, float], radius: float) -> _Patch:
        """Anti-aliased filled disk (marker)."""
        cy, cx = centre
        lo_r, hi_r = math.floor(cy - radius) - 1, math.ceil(cy + radius) + 1
        lo_c, hi_c = math.floor(cx - radius) - 1, math.ceil(cx + radius) + 1
        ys, xs = self._sample_grid(lo_r, hi_r, lo_c, hi_c)
        return self._patch(lo_r, lo_c, (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2)

    def collides(self, patch: _Patch, blocked: np.ndarray) -> bool:
        return bool((patch.lit & blocked[patch.window()]).any())

    def paint(self, patch: _Patch, intensity: float) -> None:
        window = patch.window()
        np.maximum(self.image[window], patch.coverage * intensity, out=self.image[window])

    def commit(self, patch: _Patch | None) -> None:
        if patch is not None:
            self.occupied[patch.window()] |= self.footprint(patch)

    def blocked_for(self, others: list[_Snake]) -> np.ndarray:
        """Occupancy as seen by one snake: committed paddles plus the other snakes' pending paddles."""
        pendings = [s.pending for s in others if s.pending is not None]
        if not pendings:
            return self.occupied
        blocked = self.occupied.copy()
        for patch in pendings:
            blocked[patch.window()] |= self.footprint(patch)
        return blocked

    def seed(self, tail: tuple[float, float], theta: float, blocked: np.ndarray, contrast: float) -> _Snake | None:
        """Place a snake's first paddle from ``tail`` along ``theta``; None if it does not fit."""
        uy, ux = math.sin(theta), math.cos(theta)
        head = (tail[0] + self.length * uy, tail[1] + self.length * ux)
        # The pivot sits `margin` behind the tail, so the next pivot lands `margin` beyond the head.
        pivot = (tail[0] - self.margin * uy, tail[1] - self.margin * ux)
        if not (self.inside(*tail) and self.inside(*head) and self.inside(*pivot)):
            return None
        patch = self.rasterise(tail, head)
        if self.collides(patch, blocked):
            return None
        self.paint(patch, contrast * _pick(self.rng, self.paddle_contrasts))
        return _Snake(pivot, theta, contrast, [(tail, head)], patch, [patch])

    def _turn_weights(self, theta: float) -> np.ndarray:
        """Continuity weights max(cos(min(delta * continuity, pi / 2)), 0) ** 2 of all candidate directions."""
        # Orientations repeat (candidate angles, integer-degree seeds), so caching saves most of the work.
        weights = self.turn_weights.get(theta)
        if weights is None:
            delta = np.abs((self.angles - theta + math.pi) % (2 * math.pi) - math.pi) * self.continuity
            weights = np.where(delta < math.pi / 2, np.cos(np.minimum(delta, math.pi / 2)) ** 2, 0.0)
            self.turn_weights[theta] = weights
        return weights

    def extend(self, snake: _Snake, blocked: np.ndarray) -> bool:
        """Add one paddle by continuity-weighted sampling on the candidate circle; False if stuck."""
        step = self.length + 2 * self.margin
        py, px = snake.pivot[0] + step * math.sin(snake.theta), snake.pivot[1] + step * math.cos(snake.theta)
        cand_y, cand_x = py + self.arc_y, px + self.arc_x
        weights = self._turn_weights(snake.theta)
        # The candidate end pixel must be free; the border of the padded arrays is occupied, so this also
        # rejects end points outside the image.
        rows = np.floor(cand_y + 0.5).astype(np.intp)
        cols = np.floor(cand_x + 0.5).astype(np.intp)
        weights = weights * ~blocked[rows, cols]
        for _ in range(self.retries):
            cumulative = np.cumsum(weights)
            total = cumulative[-1]
            if total <= 1e-12:
                return False
            index = min(int(np.searchsorted(cumulative, self.rng.random() * total, side="right")), len(weights) - 1)
            theta = float(self.angles[index])
            start = (py + self.margin * math.sin(theta), px + self.margin * math.cos(theta))
            end = (float(cand_y[index]), float(cand_x[index]))
            patch = self.rasterise(start, end)
            if self.collides(patch, blocked):
                # Drop the failed candidate so a retry cannot draw it again.
                weights[index] = 0.0
                continue
            self.commit(snake.pending)
            snake.pending = patch
            snake.pivot, snake.theta = (py, px), theta
            snake.paddles.append((start, end))
            snake.patches.append(patch)
            self.paint(patch, snake.contrast * _pick(self.rng, self.paddle_contrasts))
            return True
        return False


def _random_theta(rng: np.random.Generator) -> float:
    return int(rng.integers(-180, 180)) * math.pi / 180


def _grow_targets(canvas: _Canvas, params: dict[str, Any]) -> list[_Snake] | None:
    """Seed the two targets close together and grow them in lock-step; None if either gets stuck."""
    rng, pad, size = canvas.rng, canvas.pad, canvas.size
    distance = int(params["seed_distance"])
    # Snake A starts at least 2 * seed_distance from the border (falls back to the padding for tiny windows).
    low = max(2 * distance, int(params["padding"]))
    high = size - low
    if high <= low:
        low, high = int(params["padding"]), size - int(params["padding"])
    snakes: list[_Snake] = []
    for which in range(2):
        contrast = float(_pick(rng, params["snake_contrast_list"]))
        placed = None
        for _ in range(canvas.retries):
            if which == 0:
                tail = (float(pad + rng.integers(low, high)), float(pad + rng.integers(low, high)))
            else:
                # Snake B: exactly seed_distance from A's tail, in a random integer-degree direction.
                phi = int(rng.integers(0, 360)) * math.pi / 180
                ay, ax = snakes[0].paddles[0][0]
                tail = (float(round(ay + distance * math.sin(phi))), float(round(ax + distance * math.cos(phi))))
            placed = canvas.seed(tail, _random_theta(rng), canvas.blocked_for(snakes), contrast)
            if placed is not None:
                break
        if placed is None:
            return None
        snakes.append(placed)
    for _ in range(int(params["contour_length"]) - 1):
        for index, snake in enumerate(snakes):
            if not canvas.extend(snake, canvas.blocked_for([snakes[1 - index]])):
                return None
    for snake in snakes:
        canvas.commit(snake.pending)
        snake.pending = None
    return snakes


def _add_distractor(canvas: _Canvas, params: dict[str, Any], num_paddles: int, max_trials: int) -> bool:
    """Grow one complete distractor from a random free seed; a failed attempt is rolled back."""
    rng = canvas.rng
    for _ in range(max_trials):
        # A seed that does not fit changes nothing, so single paddles need no snapshot to roll back.
        snapshot = (canvas.image.copy(), canvas.occupied.copy()) if num_paddles > 1 else None
        free = np.flatnonzero(~canvas.occupied)
        if free.size == 0:
            return False
        contrast = float(_pick(rng, params["snake_contrast_list"]))
        snake = None
        for _ in range(canvas.retries):
            row, col = divmod(int(free[rng.integers(free.size)]), canvas.occupied.shape[1])
            snake = canvas.seed((float(row), float(col)), _random_theta(rng), canvas.occupied, contrast)
            if snake is not None:
                break
        if snake is not None and all(canvas.extend(snake, canvas.occupied) for _ in range(num_paddles - 1)):
            canvas.commit(snake.pending)
            return True
        if snapshot is not None:
            canvas.image, canvas.occupied = snapshot
    return False


def _add_distractors(canvas: _Canvas, params: dict[str, Any]) -> int:
    # snakes2 loops `while isnake < num_snakes` (fractional counts round up) and builds snakes of
    # int(distractor_length) paddles; a snake that fails all its trials is skipped. The tolerance keeps
    # float noise such as 35 / (15 / 3) = 7.000000000000001 from adding a snake. No single-paddle distractors: the
    # published snakes2 wrapper script switches them off (LRA does not say which it used).
    num_snakes, num_paddles = math.ceil(params["num_distractor_snakes"] - 1e-9), int(params["distractor_length"])
    placed = 0
    if num_paddles < 1:
        return placed
    trials = 1 + int(params["max_distractor_contour_retrial"] if num_paddles > 1 else params["max_paddle_retrial"])
    window = slice(canvas.pad, canvas.pad + canvas.size)
    for _ in range(num_snakes):
        # Like snakes2, stop once less than 1% of the image is still free.
        if 1.0 - float(canvas.occupied[window, window].mean()) < 0.01:
            return placed
        placed += _add_distractor(canvas, params, num_paddles, trials)
    return placed


def sample_pathfinder_scene(rng: np.random.Generator, params: dict[str, Any]) -> PathfinderScene:
    """One image of `params` (a ``pathfinder_params`` output) with its geometry; RuntimeError if the two targets
    cannot be placed after many restarts (infeasible parameters)."""
    label = int(rng.integers(2))
    margin = int(_pick(rng, params["paddle_margin_list"]))
    turn_weights: dict[float, np.ndarray] = {}
    for _ in range(_MAX_TARGET_RESTARTS):
        canvas = _Canvas(params, margin, rng, turn_weights)
        targets = _grow_targets(canvas, params)
        if targets is not None:
            break
    else:
        raise RuntimeError(f"could not place two target snakes in {_MAX_TARGET_RESTARTS} attempts")
    num_distractors = _add_distractors(canvas, params)

    first = int(rng.integers(2))
    second = first if label == 1 else 1 - first
    markers = [targets[first].paddles[0][0], targets[second].paddles[-1][1]]
    for centre in markers:
        # Markers are drawn at intensity 1 and combined by a pixel-wise max, as in snakes2.
        canvas.paint(canvas.disk(centre, float(params["marker_radius"])), 1.0)

    window = slice(canvas.pad, canvas.pad + canvas.size)
    image = canvas.image[window, window]
    image = np.rint(image * (255.0 / image.max())).astype(np.uint8)
    masks = np.zeros((2, *canvas.image.shape), dtype=bool)
    for index, snake in enumerate(targets):
        for patch in snake.patches:
            masks[index][patch.window()] |= patch.lit
    paddles = [np.array(snake.paddles) - canvas.pad for snake in targets]  # (contour_length 2 2) in the image
    return PathfinderScene(
        image=image,
        label=label,
        margin=margin,
        target_paddles=paddles,
        origin_tips=np.array([p[0, 0] for p in paddles]),
        terminal_tips=np.array([p[-1, 1] for p in paddles]),
        marker_snakes=(first, second),
        markers=np.array(markers) - canvas.pad,
        target_masks=masks[:, window, window],
        num_distractors=num_distractors,
    )


def image_rng(seed: int, index: int) -> np.random.Generator:
    """Generator for image ``index``: the ``index``-th child of ``SeedSequence(seed)`` (as ``spawn`` gives)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def generate_pathfinder(
    num_examples: int, seed: int, resolution: int = 32, contour_length: int | None = None, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start`` to ``start + num_examples - 1`` ((N, H, W) uint8) and their labels ((N,) int64).

    Image ``i`` depends only on ``(seed, i)`` (``image_rng``). ``resolution`` selects the LRA preset (128: Path-X);
    ``contour_length``: the target length in paddles (LRA: 14; 6 and 9 are the easier levels).
    """
    params = pathfinder_params(resolution, contour_length)
    size = int(params["window_size"])
    images = np.empty((num_examples, size, size), dtype=np.uint8)
    labels = np.empty(num_examples, dtype=np.int64)
    for offset in range(num_examples):
        scene = sample_pathfinder_scene(image_rng(seed, start + offset), params)
        images[offset], labels[offset] = scene.image, scene.label
    return images, labels
