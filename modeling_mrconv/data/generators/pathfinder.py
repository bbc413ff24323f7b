"""Seeded Pathfinder / Path-X generator, numpy only.

Implements the rules of the generator of
Linsley et al. (2018) (drewlinsley/pathfinder ``snakes2.py``, ``snakes.py``, ``snakes2_wrapper.py``) with the
per-resolution parameters of LRA's ``lra_benchmarks/data/pathfinder.py``. The code is an independent
re-implementation, not a port: cv2/PIL/scipy are replaced by supersampled rasterisation, block-mean
downsampling and a disk dilation written with numpy.

One image:

1. Paddles are line segments of ``paddle_length`` px and ``paddle_thickness`` px, drawn at
   ``antialias_scale`` times the resolution and block-mean downsampled (anti-aliasing).
2. An occupancy mask holds every committed paddle dilated by ``margin``; new paddles may not land on it,
   so contours never touch. The border ``padding`` starts occupied.
3. Two target snakes are seeded ``seed_distance`` px apart (A at least ``2 * seed_distance`` from the
   border) and grown in lock-step: the next pivot lies ``paddle_length + 2 * margin`` ahead, candidate end
   points lie ~1 px apart on a circle of radius ``paddle_length + margin`` around it, weighted by
   ``max(cos(min(delta * continuity, pi / 2)), 0) ** 2`` and zeroed on occupied pixels. A stuck pair restarts.
4. Distractor snakes of ``distractor_length`` paddles are grown the same way from random free seeds.
5. Two marker disks: the origin tip of a random target, and the terminal tip of the same target (label 1)
   or of the other target (label 0). Labels are Bernoulli(0.5); the image is rescaled to 0-255 uint8.
"""

import argparse
import math
from concurrent.futures import ProcessPoolExecutor
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
    "use_single_paddles": False,
}

# Distractor paddle budget per resolution: num_distractor_snakes = budget / distractor_length. LRA's 32 px
# setting uses integer division for the distractor length (14 // 3); the others use true division (14 / 3).
_DISTRACTOR_BUDGET: dict[int, int] = {32: 20, 64: 22, 128: 35, 256: 30}


def _distractors(resolution: int, contour_length: int) -> tuple[float, float]:
    length = contour_length // 3 if resolution == 32 else contour_length / 3
    count = _DISTRACTOR_BUDGET[resolution] / length if length > 0 else 0.0
    return length, count


def _preset(resolution: int, **overrides: Any) -> dict[str, Any]:
    params = dict(_WRAPPER_DEFAULTS, window_size=resolution, **overrides)
    params["distractor_length"], params["num_distractor_snakes"] = _distractors(resolution, params["contour_length"])
    return params


PATHFINDER_PRESETS: dict[int, dict[str, Any]] = {
    32: _preset(
        32,
        padding=1,
        antialias_scale=2,
        paddle_length=2,
        paddle_thickness=0.5,
        paddle_margin_list=[1],
        marker_radius=1.5,
        seed_distance=7,
        continuity=1.0,
        snake_contrast_list=[2.0],
        paddle_contrast_list=[0.75],
    ),
    64: _preset(
        64,
        padding=1,
        antialias_scale=2,
        paddle_margin_list=[1],
        seed_distance=12,
        marker_radius=2.5,
        paddle_thickness=1.0,
        continuity=1.8,
        snake_contrast_list=[0.8],
    ),
    128: _preset(
        128,
        padding=1,
        antialias_scale=2,
        paddle_margin_list=[2, 3],
        seed_distance=20,
        marker_radius=3.0,
        paddle_thickness=1.5,
        continuity=1.8,
        snake_contrast_list=[0.9],
    ),
    256: _preset(
        256,
        # LRA's builder notes set antialias_scale = 4 and then = 2 for 64/128/256; the later value wins.
        antialias_scale=2,
        paddle_margin_list=[3],
        marker_radius=5.0,
        paddle_thickness=2.0,
        continuity=1.8,
        snake_contrast_list=[1.0],
    ),
}

# Safety net only: a preset that cannot place its two targets should fail loudly, not loop forever.
_MAX_TARGET_RESTARTS = 10_000


def pathfinder_params(resolution: int = 32, contour_length: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Copy of an LRA preset, optionally with another contour length and further overrides.

    Changing ``contour_length`` re-derives ``distractor_length`` and ``num_distractor_snakes`` the way LRA does
    for that resolution.
    """
    if resolution not in PATHFINDER_PRESETS:
        raise ValueError(f"no preset for resolution {resolution}; choose from {sorted(PATHFINDER_PRESETS)}")
    params = {
        key: list(value) if isinstance(value, list) else value for key, value in PATHFINDER_PRESETS[resolution].items()
    }
    if contour_length is not None:
        if contour_length < 1:
            raise ValueError(f"contour_length must be >= 1, got {contour_length}")
        params["contour_length"] = contour_length
        params["distractor_length"], params["num_distractor_snakes"] = _distractors(resolution, contour_length)
    params.update(overrides)
    return params


@dataclass
class PathfinderScene:
    """One generated image with the geometry behind it (coordinates are (y, x) in image pixels).

    Attributes:
        image: (H, W) uint8 image, rescaled so its maximum is 255.
        label: 1 if both markers sit on the same target snake, else 0.
        margin: Paddle margin used for this image.
        target_paddles: Two arrays of shape (contour_length, 2, 2): per paddle its (start, end) points.
        origin_tips: (2, 2) first-paddle start of targets A and B.
        terminal_tips: (2, 2) last-paddle end of targets A and B.
        marker_snakes: Target index (0 = A, 1 = B) under the first and the second marker.
        markers: (2, 2) marker centres.
        target_masks: (2, H, W) bool, pixels lit by each target snake.
        num_distractors: Distractor snakes actually placed.
        num_restarts: Times the target pair got stuck and was restarted.
    """

    image: np.ndarray
    label: int
    margin: int
    target_paddles: list[np.ndarray]
    origin_tips: np.ndarray
    terminal_tips: np.ndarray
    marker_snakes: tuple[int, int]
    markers: np.ndarray
    target_masks: np.ndarray
    num_distractors: int
    num_restarts: int


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


def _disk_rows(radius: float) -> list[tuple[int, int]]:
    """A digital disk as rows: (dy, half-width) with dy**2 + dx**2 <= radius**2 for |dx| <= half-width."""
    reach = math.floor(radius)
    return [(dy, math.floor(math.sqrt(radius**2 - dy * dy))) for dy in range(-reach, reach + 1)]


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
        # diagonally.
        self.dilation_rows = _disk_rows(margin + 0.5)
        self.reach = math.floor(margin + 0.5)
        # Candidate directions ~1 px apart along the arc of radius paddle_length + margin.
        self.radius = self.length + margin
        count = max(8, math.ceil(2 * math.pi * self.radius))
        self.angles = np.arange(count) * (2 * math.pi / count)
        self.arc_y = self.radius * np.sin(self.angles)
        self.arc_x = self.radius * np.cos(self.angles)

        self.pad = math.ceil(self.length + 2 * margin + self.half_thickness + self.reach) + 3
        full = self.size + 2 * self.pad
        # Sub-pixel sample coordinates of the whole canvas (pixel r covers [r - 0.5, r + 0.5)); patches slice it.
        self.grid = ((np.arange(full)[:, None] + (np.arange(self.scale) + 0.5) / self.scale) - 0.5).ravel()
        self.turn_weights = turn_weights  # shared across restarts of one image
        self.image = np.zeros((full, full))
        self.occupied = np.ones((full, full), dtype=bool)
        inner = slice(self.pad + int(params["padding"]), self.pad + self.size - int(params["padding"]))
        self.occupied[inner, inner] = False

    # -- geometry -----------------------------------------------------------------------------------------
    def inside(self, y: float, x: float) -> bool:
        low, high = self.pad - 0.5, self.pad + self.size - 0.5
        return low <= y < high and low <= x < high

    def to_image(self, point: tuple[float, float]) -> tuple[float, float]:
        return point[0] - self.pad, point[1] - self.pad

    def _sample_grid(self, lo_r: int, hi_r: int, lo_c: int, hi_c: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.scale
        return self.grid[lo_r * s : (hi_r + 1) * s, None], self.grid[None, lo_c * s : (hi_c + 1) * s]

    def _downsample(self, inside: np.ndarray) -> np.ndarray:
        rows, cols = inside.shape[0] // self.scale, inside.shape[1] // self.scale
        blocks = inside.reshape(rows, self.scale, cols, self.scale)
        return blocks.sum(axis=(1, 3)) / self.scale**2

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
        coverage = self._downsample(inside)
        lit = coverage > 0
        return _Patch(lo_r, lo_c, coverage, lit)

    def footprint(self, patch: _Patch) -> np.ndarray:
        """Lit pixels dilated by the margin disk; computed lazily since most rejected paddles never need it."""
        if patch.footprint is None:
            patch.footprint = self._dilate(patch.lit)
        return patch.footprint

    def _dilate(self, lit: np.ndarray) -> np.ndarray:
        # The patch has a zero border wider than the dilation reach, so shifting inside it loses nothing.
        # Separate the disk into rows: widen horizontally once per half-width, then OR shifted rows.
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
        return out

    def disk(self, centre: tuple[float, float], radius: float) -> _Patch:
        """Anti-aliased filled disk (marker)."""
        cy, cx = centre
        lo_r, hi_r = math.floor(cy - radius) - 1, math.ceil(cy + radius) + 1
        lo_c, hi_c = math.floor(cx - radius) - 1, math.ceil(cx + radius) + 1
        ys, xs = self._sample_grid(lo_r, hi_r, lo_c, hi_c)
        coverage = self._downsample((ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2)
        lit = coverage > 0
        return _Patch(lo_r, lo_c, coverage, lit)

    # -- state updates ------------------------------------------------------------------------------------
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

    def free_fraction(self) -> float:
        window = slice(self.pad, self.pad + self.size)
        return 1.0 - float(self.occupied[window, window].mean())

    # -- snakes -------------------------------------------------------------------------------------------
    def _paddle_contrast(self) -> float:
        if len(self.paddle_contrasts) == 1:
            return self.paddle_contrasts[0]
        return self.paddle_contrasts[int(self.rng.integers(len(self.paddle_contrasts)))]

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
        snake = _Snake(pivot, theta, contrast, [(tail, head)], patch, [patch])
        self.paint(patch, contrast * self._paddle_contrast())
        return snake

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
        py = snake.pivot[0] + step * math.sin(snake.theta)
        px = snake.pivot[1] + step * math.cos(snake.theta)
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
            self.paint(patch, snake.contrast * self._paddle_contrast())
            return True
        return False


def _random_theta(rng: np.random.Generator) -> float:
    return int(rng.integers(-180, 180)) * math.pi / 180


def _snake_contrast(rng: np.random.Generator, params: dict[str, Any]) -> float:
    options = params["snake_contrast_list"]
    return float(options[0] if len(options) == 1 else options[int(rng.integers(len(options)))])


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
        contrast = _snake_contrast(rng, params)
        placed = None
        for _ in range(canvas.retries):
            if which == 0:
                tail = (float(pad + rng.integers(low, high)), float(pad + rng.integers(low, high)))
            else:
                # Snake B: exactly seed_distance from A's tail, in a random integer-degree direction.
                phi = int(rng.integers(0, 360)) * math.pi / 180
                tail_a = snakes[0].paddles[0][0]
                tail = (
                    float(round(tail_a[0] + distance * math.sin(phi))),
                    float(round(tail_a[1] + distance * math.cos(phi))),
                )
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
        contrast = _snake_contrast(rng, params)
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
    # float noise such as 35 / (15 / 3) = 7.000000000000001 from adding a snake.
    jobs = [(math.ceil(params["num_distractor_snakes"] - 1e-9), int(params["distractor_length"]))]
    if params.get("use_single_paddles"):
        margin = canvas.margin
        total = int(150 * 123.5 / (7.5 + 13 * margin + 4 * margin * margin))
        singles = total - 2 * int(params["contour_length"]) - jobs[0][0] * jobs[0][1]
        jobs.append((max(singles, 0), 1))
    placed = 0
    for num_snakes, num_paddles in jobs:
        if num_paddles < 1:
            continue
        trials = 1 + int(params["max_distractor_contour_retrial"] if num_paddles > 1 else params["max_paddle_retrial"])
        for _ in range(num_snakes):
            # Like snakes2, stop once less than 1% of the image is still free.
            if canvas.free_fraction() < 0.01:
                return placed
            placed += _add_distractor(canvas, params, num_paddles, trials)
    return placed


def sample_pathfinder_scene(rng: np.random.Generator, params: dict[str, Any]) -> PathfinderScene:
    """Generate one image and return it with its geometry (see ``PathfinderScene``).

    Args:
        rng: Source of randomness for this image.
        params: A ``PATHFINDER_PRESETS`` entry or ``pathfinder_params(...)`` output.

    Raises:
        RuntimeError: If the two targets cannot be placed after many restarts (infeasible parameters).
    """
    label = int(rng.integers(2))
    margins = params["paddle_margin_list"]
    margin = int(margins[0] if len(margins) == 1 else margins[int(rng.integers(len(margins)))])
    restarts = 0
    turn_weights: dict[float, np.ndarray] = {}
    while True:
        canvas = _Canvas(params, margin, rng, turn_weights)
        targets = _grow_targets(canvas, params)
        if targets is not None:
            break
        restarts += 1
        if restarts >= _MAX_TARGET_RESTARTS:
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
    return PathfinderScene(
        image=image,
        label=label,
        margin=margin,
        target_paddles=[
            np.array([[canvas.to_image(start), canvas.to_image(end)] for start, end in snake.paddles])
            for snake in targets
        ],
        origin_tips=np.array([canvas.to_image(snake.paddles[0][0]) for snake in targets]),
        terminal_tips=np.array([canvas.to_image(snake.paddles[-1][1]) for snake in targets]),
        marker_snakes=(first, second),
        markers=np.array([canvas.to_image(point) for point in markers]),
        target_masks=masks[:, window, window],
        num_distractors=num_distractors,
        num_restarts=restarts,
    )


def generate_pathfinder_image(rng: np.random.Generator, params: dict[str, Any]) -> tuple[np.ndarray, int]:
    """Generate one Pathfinder image.

    Returns:
        ``(image, label)``: (H, W) uint8 image scaled to 0-255, and 1 (connected) or 0 (not connected).
    """
    scene = sample_pathfinder_scene(rng, params)
    return scene.image, scene.label


def image_rng(seed: int, index: int) -> np.random.Generator:
    """Generator for image ``index``: the ``index``-th child of ``SeedSequence(seed)`` (as ``spawn`` gives)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _generate_range(seed: int, start: int, stop: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    size = int(params["window_size"])
    images = np.empty((stop - start, size, size), dtype=np.uint8)
    labels = np.empty(stop - start, dtype=np.int64)
    for offset, index in enumerate(range(start, stop)):
        images[offset], labels[offset] = generate_pathfinder_image(image_rng(seed, index), params)
    return images, labels


def generate_pathfinder(
    num_examples: int,
    seed: int,
    resolution: int = 32,
    contour_length: int | None = None,
    num_workers: int = 1,
    start: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a Pathfinder dataset (images ``start`` to ``start + num_examples - 1``); image ``i`` depends only on
    ``(seed, i)``.

    Args:
        num_examples: Number of images.
        seed: Dataset seed; image ``i`` uses ``image_rng(seed, i)``.
        resolution: 32, 64, 128 (Path-X) or 256, selecting the LRA preset.
        contour_length: Target snake length in paddles (LRA: 14; 6 and 9 are the easier levels).
        num_workers: Processes to use; the output does not depend on it.
        start: Index of the first image.

    Returns:
        ``(images, labels)``: (N, H, W) uint8 and (N,) int64.
    """
    params = pathfinder_params(resolution, contour_length)
    if num_workers <= 1 or num_examples < 2:
        return _generate_range(seed, start, start + num_examples, params)
    bounds = start + np.linspace(0, num_examples, min(num_workers * 4, num_examples) + 1).astype(int)
    with ProcessPoolExecutor(max_workers=num_workers) as pool:
        futures = [
            pool.submit(_generate_range, seed, int(a), int(b), params)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a
        ]
        parts = [future.result() for future in futures]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _save_preview(images: np.ndarray, labels: np.ndarray, path: str, count: int = 16) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    count = min(count, len(images))
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images[:count], labels[:count], strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"label {label}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main() -> None:
    """CLI: generate images and save ``images``/``labels`` to an ``.npz`` (optionally a PNG preview grid)."""
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resolution", type=int, default=32, choices=sorted(PATHFINDER_PRESETS))
    parser.add_argument("--contour_length", type=int, default=None, help="default: the preset's 14")
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--output", required=True, help=".npz path with arrays 'images' (N,H,W) and 'labels' (N,)")
    parser.add_argument("--preview", default=None, help="optional PNG grid of the first 16 images (needs matplotlib)")
    args = parser.parse_args()

    start = time.perf_counter()
    images, labels = generate_pathfinder(
        args.num_examples, args.seed, args.resolution, args.contour_length, args.num_workers
    )
    elapsed = time.perf_counter() - start
    np.savez_compressed(args.output, images=images, labels=labels)
    print(f"wrote {len(images)} images {images.shape[1:]} to {args.output} in {elapsed:.1f}s")
    print(f"{len(images) / max(elapsed, 1e-9):.1f} images/s; label 1 fraction {labels.mean():.3f}")
    if args.preview:
        if _save_preview(images, labels, args.preview):
            print(f"preview: {args.preview}")
        else:
            print("matplotlib not installed; no preview written")


if __name__ == "__main__":
    main()
