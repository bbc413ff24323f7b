"""The multi-resolution branch convolution of an MRConv layer: a fast exact training path and its reference.

Training form (paper eqs. 4-6), with z_i = k_i * u the output of branch i and BN_i its BatchNorm:

    y = sum_i alpha_i * BN_i(z_i) + D * u.

Given the batch statistics (mu_i, sigma_i) every BN_i is an affine map, so the sum folds into ONE convolution:

    y = (sum_i s_i k_i + D delta) * u + c,   s_i = alpha_i gamma_i / sigma_i,
    c = sum_i alpha_i (beta_i - gamma_i mu_i / sigma_i).

`MultiResConvFunction` reads the branch means off the shared spectrum of u (`tap_inner`: the taps against the
cross-correlation of the mask with u), forms y with the combined kernel (one transform, one inverse FFT of the batch)
and keeps no branch output, unlike the reference, whose N outputs autograd keeps and every BatchNorm op passes N
times. The second moments sum m (z_i - mu_i)^2 are exact in one of two ways:

- Long branches (l_i > L / 4), and every branch under a mask other than right padding: z_i is computed chunk by chunk
  of the batch for the two-pass variance and recomputed in backward (3 FFTs of the batch per branch and step; keeping
  it instead saved no measurable time on CPU, 0.94-1.07x, for one more (B, H, L) tensor per branch).
- Short branches (l_i <= L / 4, no mask or right padding; `edge_branches`): on the 2L circle k_i * u is z_i on
  [0, L) plus the causal tail t = L .. L + l_i - 2 and the anti-causal head t = 2L - l_i .. 2L - 1. So
  sum_t<L z_i^2 = sum_f w_f |K_i,f|^2 sum_b |U_b,f|^2 (Parseval: `edge_autocorrelation` against that of u) minus the
  energy of those pieces, which depend only on u[:W_i] and u[L-W_i:] (W_i >= l_i) and come from a 4 W_i circle
  (`edge_signal`; a causal kernel has no head, so u[L-W_i:] on a 2 W_i circle); no 2L spectrum per short branch.
  Backward splits the same way: k_i^T (m z_i) is |K_i|^2 U minus an edge correction, the kernel gradient
  K_i sum_b |U_b|^2 minus l_i lags of the outside part correlated with u. Both corrections depend on u alone: the
  forward pass forms them from its centred edge circle (`edge_adjoint`) and backward only scales them by b_i, with no
  transform of the edges. All sums are taken about the channel mean c of u (z_i = k_i * (u - c) + c k_i * 1), never
  as E[z^2] - mu^2, so float32 keeps its precision when |mu| >> sigma.
- Right padding (m_b = 1 on [0, n_b), u zero beyond; `right_padded_lengths`, checked once per call on CPU): the same
  split with the tail at t = n_b, from u[:W_i] and u[n_b-W_i : n_b] (gathered). Centred at the valid mean c,
  z_i = k_i * ((u - c) m_b) + c k_i * m_b, whose second part differs from c sum(k_i) only within l_i of t = 0 and of
  t = n_b (`right_padded_edge_squares`). When every n_b >= S_i W_i (`aligned`) that difference is the same for every
  sample and is read off batch sums, and W_i >= l_i as without a mask; else W_i >= 2 l_i, so that the circle also
  holds z_i near both ends of each sample. In backward k_i^T of the outside part lands on u[:W_i] and from
  u[n_b-W_i] on, padded positions included as in the reference (`edge_circle`: up to 2 l_i - 2 past n_b).

Cost per step: 4 batch FFTs shared by every branch (u, y, g, du: those of one long convolution), 3 per long branch
(2 long branches with l0 = 16), 4 of (B, H, 4 W_i) per short branch, all in the forward pass (together about 4 batch
FFTs: sum_i 4 W_i < 2L; half that for causal kernels, whose circles are 2 W_i), a few shared (H, 2L) transforms and
O(H sum_i l_i) work on the taps, on batch chunks that stay in cache on CPU (measured: benchmarks/training_cost/ and the
model card). Under right padding the circles are wider (`edge_circle`: 6 W_i for an aligned bidirectional branch,
4 W_i with W_i >= 2 l_i for an unaligned one), so only branches with W_i <= L / 8 take them (causal aligned ones on
2 W_i circles: l_i <= L / 4). A direct convolution of the few-tap dilated branches does not pay on CPU: a 16-tap
depthwise `F.conv1d` (oneDNN) takes 3-4x as long as the branch's FFT work.

Backward (per channel; n valid positions, m the 0/1 mask, g the gradient of y, x_i = (z_i - mu_i) / sigma_i):

    A = sum g,  G_i = sum g x_i,  dbeta_i = alpha_i A,  dgamma_i = alpha_i G_i,  dalpha_i = gamma_i G_i + beta_i A,
    dz_i = s_i g - m (s_i / n) (A + x_i G_i) = s_i g - a_i m - b_i m z_i,

so du = (sum_i s_i k_i + D)^T g - (sum_i a_i k_i)^T m - sum_i b_i k_i^T (m z_i), every sum of a product with u read
off the spectra (Parseval); only the last term needs z_i again (long branches) or its outside part (short ones).
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .batchnorm import MRConvBatchNorm
from .fftconv import compute_dtype, fft_conv, fft_conv_bias, kernel_spectrum, kernel_to_circular
from .reparam import merge_branches, merge_kernels


# CPU: complex elements transformed in one call (2 MiB in complex64): a chunk's temporaries stay in cache and are
# recycled by the allocator (mapped afresh above 32 MiB)
CPU_BLOCK_ELEMENTS = 2**18
# branches with l_i <= L / EDGE_BRANCH_RATIO take the edge path (`edge_branches`) when there is no mask
EDGE_BRANCH_RATIO = 4
# under right padding, those with edge width W_i <= L / RIGHT_PADDED_EDGE_RATIO (causal aligned ones: l_i <= L / 4)
RIGHT_PADDED_EDGE_RATIO = 8


def circular_to_kernels(circular: torch.Tensor, shapes: list[torch.Size]) -> list[torch.Tensor]:
    """The adjoint of `kernel_to_circular`'s layout: kernel gradients (S, H, l_i) from (N, H, 2L) circular ones."""
    L = circular.shape[-1] // 2
    grads = []
    for grad, (S, _, Lk) in zip(circular, shapes, strict=True):
        taps = min(Lk, L)  # taps beyond L never reach an output
        halves = [grad[:, :taps], grad[:, 2 * L - taps :].flip(-1)][:S]
        grads.append(F.pad(torch.stack(halves), (0, Lk - taps)))  # (S H l_i)
    return grads


def parseval_weights(L: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """w (L + 1) with sum_t x[t] y[t] = sum_f w_f Re(conj(X_f) Y_f) for real length-2L signals and their rfft."""
    w = torch.full((L + 1,), 1.0 / L, dtype=dtype, device=device)
    w[0] = w[-1] = 0.5 / L
    return w


def squared_magnitude(X: torch.Tensor) -> torch.Tensor:
    """|X|^2 of a complex tensor, real."""
    x = torch.view_as_real(X)
    return x[..., 0].square() + x[..., 1].square()


def spans(size: int, step: int) -> list[slice]:
    """`size` split into ceil(size / step) nearly equal consecutive slices."""
    parts = math.ceil(size / step)
    step = math.ceil(size / parts)
    return [slice(start, min(start + step, size)) for start in range(0, size, step)]


def batch_chunks(B: int, H: int, L: int, device: torch.device) -> list[slice]:
    """Batch chunks transformed in one call: the whole batch off CPU, else <= `CPU_BLOCK_ELEMENTS` (>= 1 sample)."""
    if device.type != "cpu":
        return [slice(0, B)]
    return spans(B, max(1, CPU_BLOCK_ELEMENTS // (H * (L + 1))))


def scratch_view(scratch: torch.Tensor, *shape: int) -> torch.Tensor:
    """A contiguous tensor of `shape` on the front of the flat buffer `scratch`."""
    return scratch[: math.prod(shape)].view(shape)


def accumulate_products(out: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """out += sum_b X_b Y_b over the leading (batch chunk) dim; X and Y broadcast, e.g. (b, 1, F) and (b, H, F).
    A few samples one by one, in place; more (small edge circles) in three ops."""
    if len(X) > 3:
        return out.add_(torch.mul(X, Y).sum(0))
    for x, y in zip(X, Y, strict=True):
        out.addcmul_(x, y)
    return out


def tap_inner(x: torch.Tensor, kernels: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """sum_t x[t] k_i[t] on the 2L circle for a real x (H, 2L) and kernels (S, H, l_i) as in `kernel_to_circular`:
    (N, H), i.e. Re(sum_f w_f conj(X_f) K_i,f) (Parseval) read off the l_i taps instead of the 2L spectrum.
    """
    n = x.shape[-1]
    sums = []
    for kernel in kernels:
        taps = min(kernel.shape[-1], n // 2)
        total = torch.linalg.vecdot(x[:, :taps], kernel[0, :, :taps])  # (H) causal taps at lags 0 .. l-1
        if kernel.shape[0] == 2:  # anti-causal tap j at lag -1-j
            total = total + torch.linalg.vecdot(x[:, n - taps :].flip(-1), kernel[1, :, :taps])
        sums.append(total)
    return torch.stack(sums)


def near_lags(x: torch.Tensor, n: int) -> torch.Tensor:
    """Lags -n/2 .. n/2 - 1 of x (..., 2L), laid out as on an n-sample edge circle (0 .. n/2 - 1 first): (..., n)."""
    return torch.cat([x[..., : n // 2], x[..., x.shape[-1] - n // 2 :]], dim=-1)


def edge_autocorrelation(K: torch.Tensor) -> torch.Tensor:
    """The autocorrelation sum_t k[t] k[t + tau] from a kernel's spectrum K (H, n/2 + 1) on its n-sample edge circle:
    (H, n) as `near_lags`. A kernel of length l <= W spans fewer than n/2 lags (n = 4W, or 2W for a causal kernel on
    the one-sided circle of `edge_signal`), so these are its lags on the 2L circle too.
    """
    return torch.fft.irfft(squared_magnitude(K), n=2 * (K.shape[-1] - 1))


def autocorrelation_spectrum(weights: torch.Tensor, autocorrelations: list[torch.Tensor], L: int) -> torch.Tensor:
    """sum_i weights_i |K_i|^2 on the 2L circle for weights (n, H) and `edge_autocorrelation`s: (H, L + 1) real."""
    circular = autocorrelations[0].new_zeros(autocorrelations[0].shape[0], 2 * L)  # (H 2L)
    for weight, lags in zip(weights, autocorrelations, strict=True):
        half = lags.shape[-1] // 2
        circular[:, :half].addcmul_(lags[:, :half], weight[:, None])
        circular[:, 2 * L - half :].addcmul_(lags[:, half:], weight[:, None])
    return torch.fft.rfft(circular).real


def aligned(kernel: torch.Tensor, right_padded: bool, shortest: int) -> bool:
    """Whether a short branch's mask response is the same for every sample near t = 0 and near t = n_b (read off batch
    sums, `aligned_edge_terms`), so that its edge circle needs only W = `edge_width`(l) samples either side of the end:
    always without a mask; under right padding when every n_b >= S W (`shortest`, S = 2 for a bidirectional kernel),
    where the neighbourhoods of the two ends do not meet.
    """
    return not right_padded or kernel.shape[0] * edge_width(kernel.shape[-1]) <= shortest


class EdgeCircle(NamedTuple):
    """A short branch's edge circle (`edge_signal`): u[:W] (`sides` 2) and the W = `width` samples before the end,
    zero-padded to `size`; backward adds the first `back` samples of k^T of its outside part (`edge_adjoint`)."""

    sides: int
    width: int
    size: int
    back: int
    aligned: bool  # the mask terms from batch sums (`aligned`)


def edge_circle(kernel: torch.Tensor, right_padded: bool, shortest: int) -> EdgeCircle:
    """The layout of a short branch's edge circle. Without a mask: W = `edge_width`(l), 4W samples (2W and the tail
    alone for a causal kernel). Under right padding the back also spans padded positions: k^T of the tail after n_b
    reaches l - 1 past it (2 l - 2 through anti-causal taps), so an `aligned` bidirectional circle takes 6W samples
    (its head stays clear of that reach), and an unaligned one W = `edge_width`(2 l) on 4W, which also holds z within
    l of t = 0 and t = n_b for the per-sample mask terms.
    """
    S, l = kernel.shape[0], kernel.shape[-1]
    if aligned(kernel, right_padded, shortest):
        W = edge_width(l)
        if not right_padded:
            return EdgeCircle(S, W, 2 * S * W, S * W, True)
        return EdgeCircle(1, W, 2 * W, 2 * W, True) if S == 1 else EdgeCircle(2, W, 6 * W, 4 * W, True)
    W = edge_width(2 * l)
    return EdgeCircle(2, W, 4 * W, 3 * W, False)


def edge_branches(
    kernels: list[torch.Tensor] | tuple[torch.Tensor, ...],
    L: int,
    masked: bool,
    right_padded: bool = False,
    shortest: int = 0,
) -> list[int]:
    """Indices of the branches computed on the edges of u: l_i <= L / EDGE_BRANCH_RATIO, none when `masked` (a mask
    other than right padding). Under right padding (`shortest` the least n_b) the same for causal `aligned` branches,
    else W_i <= L / RIGHT_PADDED_EDGE_RATIO (`edge_circle`; <= L / 2 keeps the kernel-gradient lags of the edge circle
    those of the 2L one).
    """
    if masked:
        return []
    if not right_padded:
        return [i for i, k in enumerate(kernels) if EDGE_BRANCH_RATIO * k.shape[-1] <= L]
    edge = []
    for i, k in enumerate(kernels):
        circle = edge_circle(k, True, shortest)
        one_sided = circle.sides == 1  # a causal aligned branch: its circle costs what it costs without a mask
        if (one_sided and EDGE_BRANCH_RATIO * k.shape[-1] <= L) or RIGHT_PADDED_EDGE_RATIO * circle.width <= L:
            edge.append(i)
    return edge


def right_padded_lengths(u: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    """The lengths n_b (B) when the (B, L) mask is right padding (m[b, t] = 1 exactly for t < n_b) and u is zero
    beyond n_b, as `MRConvBlock` passes it; else None (also off CPU or under torch.compile: no sync, no graph break).
    The one dispatch point of the masked paths; an all-ones mask is then dropped (same numbers, unpadded edge path).
    """
    if mask is None or u.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    lengths = (mask != 0).sum(-1)  # (B)
    if not bool((mask == (torch.arange(mask.shape[-1], device=mask.device) < lengths[:, None])).all()):
        return None
    if any(bool(u[b, :, n:].any()) for b, n in enumerate(lengths.tolist())):
        return None
    return lengths


def mask_response(kernel: torch.Tensor, lengths: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(k * m_b)[t] for the masks m_b = 1 on [0, n_b): (B, H, P) at positions (B, P), 0 <= t < n_b (partial sums)."""
    l = kernel.shape[-1]
    forward = kernel[0].cumsum(-1)[:, positions.clamp(0, l - 1)]  # (H B P)
    if kernel.shape[0] == 2:
        backward = F.pad(kernel[1].cumsum(-1), (1, 0))  # (H l+1): sums of the first j anti-causal taps
        forward = forward + backward[:, (lengths[:, None] - 1 - positions).clamp(0, l)]
    return forward.transpose(0, 1)


def edge_width(length: int) -> int:
    """W: the power of two >= a kernel length l; the branch's edge circle has 2W, 4W or 6W samples (`edge_circle`)."""
    return 1 << (length - 1).bit_length()


def edge_signal(edges: torch.Tensor, W: int, sides: int = 2, size: int = 0) -> torch.Tensor:
    """Spectrum of [u[:W], u[L-W:], 0, 0] on the 4W circle from `edges` (..., 2 W_max) = [u[:W_max], u[L-W_max:]];
    with `sides` 1 (a causal kernel), of [u[L-W:], 0] on the 2W circle; zero-padded to `size` samples if given (the
    6W circle of `edge_circle`).

    The 2L circle cut to the W samples either side of t = 0 and t = L, rotated by W: for l <= W <= L / 2 it holds
    exactly the output outside [0, L) (`edge_outside`), which the adjoint maps back onto u[:W] and u[L-W:]. A causal
    kernel has no output before t = 0, only the tail after t = L, which u[L-W:] alone gives: half the circle. Under
    right padding `edges` ends with u[n_b-W_max : n_b] (zero before t = 0): the circle is around t = 0 and t = n_b.
    """
    W_max = edges.shape[-1] // 2
    signal = edges.new_zeros(*edges.shape[:-1], size or 2 * sides * W)  # (.. n), written once (no cat, then pad)
    if sides == 2:
        signal[..., :W] = edges[..., :W]
    signal[..., (sides - 1) * W : sides * W] = edges[..., 2 * W_max - W :]
    return torch.fft.rfft(signal)  # (.. n/2+1)


def edge_outside(E: torch.Tensor, K: torch.Tensor, inside: int) -> torch.Tensor:
    """An `edge_signal` E convolved with K (H, n/2 + 1) on its n-sample circle, zeroed on the first `inside` samples
    (those of u): (..., n) real. On the 4W circle the causal tail t = L .. L + W - 1 lies on [2W, 3W) and the
    anti-causal head t = 2L - W .. 2L - 1 on [3W, 4W); on the one-sided 2W circle the tail lies on [W, 2W).
    """
    out = torch.fft.irfft(E * K, n=2 * (E.shape[-1] - 1))
    out[..., :inside] = 0
    return out


def edge_adjoint(
    E: torch.Tensor,
    outside: torch.Tensor,
    E_ones: torch.Tensor,
    Y_ones: torch.Tensor,
    c: torch.Tensor,
    K: torch.Tensor,
    lag_spectrum: torch.Tensor,
    width: int,
) -> torch.Tensor:
    """What backward needs of a short branch, from the forward pass's centred edge circle of a batch chunk.

    E (b, H, n/2 + 1): the `edge_signal` of the centred edges (u - c) m on an n-sample circle; outside (b, H, n): their
    output outside [0, L) (or [0, n_b)), zero on the samples of u. With E_ones, Y_ones (1 or b, 1 or H,
    n/2 + 1), the edge signal of m and the spectrum of its outside output, the uncentred ones are E + c E_ones and
    Y + c Y_ones (no transform of u again). Adds sum_b Y_b conj(E_b) to `lag_spectrum` (H, n/2 + 1) and returns k^T of
    the uncentred outside part on [0, width) of the circle: (b, H, width), laid out as the edges in `edge_signal`.
    """
    Y = torch.fft.rfft(outside).addcmul_(Y_ones, c[:, None])  # (b H 2W+1) spectrum of z outside [0, L)
    back = torch.fft.irfft(Y * K.conj(), n=outside.shape[-1])[..., :width]  # (b H width)
    accumulate_products(lag_spectrum, Y, E.addcmul_(E_ones, c[:, None]).conj_physical_())  # E is not needed any more
    return back


def aligned_edge_terms(
    kernel: torch.Tensor, K: torch.Tensor, W: int, sums: torch.Tensor, end: int, c: torch.Tensor, kappa: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """sum_b z'_b and e = c (k * m - sum(k)) (both (H, S W)) of an `aligned` branch on [0, W) and, for anti-causal
    taps, on [end - W, end), where e is the same for every sample (a causal kernel's e is zero near the end).

    `sums` (2, H, G): sum_b u'_b on [0, G) and on the G samples before each sample's end, G >= S W; K (H, n/2 + 1) the
    kernel's spectrum on its edge circle (n >= 2 S W samples), which holds z' there exactly. sum_b sum_t e z' is then
    the inner product of the two: no per-sample transform.
    """
    S = kernel.shape[0]
    n = 2 * (K.shape[-1] - 1)
    pieces = torch.stack([sums[0, :, : S * W], sums[1, :, sums.shape[-1] - 2 * W :]][:S])  # (S H SW)
    convolved = torch.fft.irfft(torch.fft.rfft(pieces, n=n) * K, n=n)  # (S H n)
    z_edges = torch.cat([convolved[0, :, :W], *convolved[1:, :, W : 2 * W]], dim=-1)  # (H SW)
    positions = torch.cat([torch.arange(W), end - W + torch.arange(W)][:S]).to(c.device)[None]  # (1 SW)
    lengths = torch.tensor([end], device=c.device)
    e = c[:, None] * (mask_response(kernel, lengths, positions)[0] - kappa[:, None])  # (H SW)
    return z_edges, e


def right_padded_edge_squares(
    c: torch.Tensor,
    centred_power: torch.Tensor,
    PC: torch.Tensor,
    lengths: torch.Tensor,
    u: torch.Tensor,
    kernels: list[torch.Tensor],
    edge: list[int],
    circles: list[EdgeCircle],
    edge_spectra: list[torch.Tensor],
    autocorrelations: list[torch.Tensor],
    mean: torch.Tensor,
    squares: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Writes sum m (z_i - mean_i)^2 of the short branches into `squares` for right-padded masks (u (B, H, L) zero
    beyond n_b); returns what backward needs of each (`edge_adjoint`): k_i^T of the outside part (B, H, back) on
    u[:W] (two sides) and from t = n_b - W on, and sum_b Y conj(E).

    Centred at the valid mean c (H): z_i = z'_i + c q_ib on [0, n_b), z'_i = k_i * ((u - c) m_b), q_ib = k_i * m_b.
    With rho_i = c sum(k_i) - mean_i and e_ib = c (q_ib - sum(k_i)) (zero but within l_i of t = 0 and t = n_b):

        sum m (z_i - mean_i)^2 = sum m z'^2 + 2 rho_i sum m z' + 2 sum e z' + n rho_i^2 + 2 rho_i sum e + sum e^2.

    sum m z'^2 is the 2L-circle energy (k_i's autocorrelation against that of u', from `centred_power` sum_b |U'_b|^2)
    minus the energy outside [0, n_b), from the branch's edge circle of [u'[:W], u'[n_b-W : n_b]] (`edge_signal`);
    sum m z' is the taps against sum_b m_b * u'_b (`PC` = sum_b conj(M_b) U'_b). An `aligned` branch's e is the same
    for every sample (`aligned_edge_terms`); otherwise W_i >= 2 l_i and the 4W circle (`edge_circle`) also holds z'
    near both ends of each sample: [0, W/2) holds t < W / 2, [3W/2, 2W) t = n_b - W/2 .. n_b - 1, [2W, 4W) the outside
    part. `autocorrelations`: those of the kernels on their edge circles (`edge_autocorrelation`).
    """
    B, H, L = u.shape
    kernels = [kernels[i] for i in edge]
    # samples at each end: W_i for the circles, 2 W_i for the sums of an aligned bidirectional branch
    G = max(circle.width * (2 if circle.aligned and circle.sides == 2 else 1) for circle in circles)
    tail = lengths[:, None] - G + torch.arange(G, device=c.device)  # (B G) the G positions before n_b
    ends = u.gather(-1, tail.clamp_min(0)[:, None].expand(B, H, G)) * (tail >= 0)[:, None]  # (B H G)
    valid = torch.cat([torch.arange(G, device=c.device) < lengths[:, None], tail >= 0], -1).to(c.dtype)  # (B 2G)
    centred = (torch.cat([u[..., :G], ends], dim=-1) - c[:, None]) * valid[:, None]  # (B H 2G) edges of (u - c) m
    sums = centred.sum(0).unflatten(-1, (2, G)).transpose(0, 1)  # (2 H G) sum_b u'_b at the start and before n_b
    shortest = int(lengths.min())
    ones = valid[:1] if bool(valid.all()) else valid  # (1 or B, 2G): the edges of m, one row unless some n_b < G
    centred_lags = torch.fft.irfft(centred_power, n=2 * L)  # (H 2L) autocorrelation of u', summed over the batch
    valid_sum = tap_inner(torch.fft.irfft(PC.conj(), n=2 * L), kernels)  # (n H) sum m z'
    n = lengths.sum().to(c.dtype)
    backs, lag_spectra = [], []
    for j, (i, kernel, K_i, layout) in enumerate(zip(edge, kernels, edge_spectra, circles, strict=True)):
        S, W, n_circle, span, is_aligned = layout
        circle = torch.linalg.vecdot(near_lags(centred_lags, n_circle), autocorrelations[j])  # (H) sum of z'^2, 2L
        kappa = kernel.sum((0, 2))  # (H)
        rho = c * kappa - mean[i]  # (H)
        outside_energy, cross = torch.zeros_like(rho), torch.zeros_like(rho)
        if is_aligned:
            z_edges, e_i = aligned_edge_terms(kernel, K_i, W, sums, shortest, c, kappa)  # (H SW) each
            cross += torch.linalg.vecdot(e_i, z_edges)
            e_sum, e_squares = B * e_i.sum(-1), B * torch.linalg.vecdot(e_i, e_i)  # (H)
        else:
            half = torch.arange(W // 2, device=c.device)
            start, end = half.expand(B, -1), lengths[:, None] - W // 2 + half  # (B W/2) positions t near 0 and n_b
            # e_ib on [0, W/2) and [n_b - W/2, n_b), each position counted once: t < n_b in the first, t >= W/2 in
            # the last
            e_start = c[:, None] * (mask_response(kernel, lengths, start) - kappa[:, None])  # (B H W/2)
            e_start *= (start < lengths[:, None])[:, None]
            e_end = c[:, None] * (mask_response(kernel, lengths, end) - kappa[:, None])  # (B H W/2)
            e_end *= (end >= W // 2)[:, None]
            e_sum = e_start.sum((0, 2)) + e_end.sum((0, 2))  # (H)
            e_squares = torch.linalg.vecdot(e_start, e_start).sum(0) + torch.linalg.vecdot(e_end, e_end).sum(0)
        E_ones = edge_signal(ones[:, None], W, S, n_circle)  # (1|B 1 n/2+1)
        Y_ones = torch.fft.rfft(edge_outside(E_ones, K_i, S * W))  # (1|B H n/2+1)
        lag_spectra.append(torch.zeros_like(K_i))
        backs.append(u.new_empty(B, H, span))
        for chunk in batch_chunks(B, H, n_circle // 2, c.device):
            E = edge_signal(centred[chunk], W, S, n_circle)  # (b H n/2+1)
            z = torch.fft.irfft(E * K_i, n=n_circle)  # (b H n) z'_i on the edge circle
            outside = z[..., S * W :]  # the tail after n_b (and the head before 0)
            outside_energy += torch.linalg.vecdot(outside, outside).sum(0)
            if not is_aligned:
                cross += torch.linalg.vecdot(z[..., : W // 2], e_start[chunk]).sum(0)
                cross += torch.linalg.vecdot(z[..., 3 * W // 2 : 2 * W], e_end[chunk]).sum(0)
            rows = chunk if ones.shape[0] > 1 else slice(None)
            z[..., : S * W] = 0
            backs[-1][chunk] = edge_adjoint(E, z, E_ones[rows], Y_ones[rows], c, K_i, lag_spectra[-1], span)
        squares[i] = (
            circle - outside_energy + 2 * (rho * valid_sum[j] + cross) + n * rho.square() + 2 * rho * e_sum
        ) + e_squares
    return backs, lag_spectra


class MultiResConvFunction(torch.autograd.Function):
    """y = sum_i alpha_i BN_i(k_i * u) + D u with training-mode (batch) statistics; see the module docstring.

    `apply(u, alpha, weight, bias, skip, mask, eps, *kernels)`: u (B, H, L); alpha, weight, bias (N, H) branch weights
    and BatchNorm affine parameters; skip (H); mask (B, L) or None; N kernels (S, H, l_i), all in u's dtype (float32
    or float64). Returns y (B, H, L) and the batch mean and biased variance (N, H), not differentiable. Saved for
    backward, no branch output: the spectra of u (B, H, L + 1) and of the long branches, sum_b M_b conj(U_b), the
    forward's combined spectrum, per short branch k_i^T of its outside part (B, H, back_i), its autocorrelation and the
    lags its kernel gradient needs (H, n_i) on its edge circle (`edge_circle`), the (N, H) statistics and the kernels.
    Cross spectra sum_b X_b conj(U_b) (H, L + 1) carry every batch-and-position sum of a product with u (Parseval).
    """

    @staticmethod
    def forward(ctx, u, alpha, weight, bias, skip, mask, eps, *kernels):
        B, H, L = u.shape
        lengths = right_padded_lengths(u, mask)  # (B) or None
        if lengths is not None and bool((lengths == L).all()):  # no padding: the unmasked path
            mask = lengths = None
        shortest = int(lengths.min()) if lengths is not None else 0
        edge = edge_branches(kernels, L, mask is not None and lengths is None, lengths is not None, shortest)
        circles = [edge_circle(kernels[i], lengths is not None, shortest) for i in edge]  # layouts (`edge_circle`)
        full = [i for i in range(len(kernels)) if i not in edge]
        chunks = batch_chunks(B, H, L, u.device)
        complex_dtype = torch.complex128 if u.dtype == torch.float64 else torch.complex64
        U = torch.empty(B, H, L + 1, dtype=complex_dtype, device=u.device)  # (B H L+1) shared by every branch
        # (n H L+1) 2L-circle spectra of the long branches only; the short ones are read off their taps
        spectra = torch.stack([kernel_spectrum(kernels[i], L) for i in full]) if full else U.new_empty(0, H, L + 1)
        if mask is None:
            count = u.new_tensor(float(B * L))
            M = torch.fft.rfft(u.new_ones(L), n=2 * L)  # (L+1) spectrum of the all-valid mask
        else:
            count = mask.sum().clamp_min(1.0)
            M = torch.fft.rfft(mask, n=2 * L)[:, None]  # (B 1 L+1)
            P = torch.zeros_like(U[0])  # (H L+1) sum_b M_b conj(U_b)
        right_padded_edge = bool(edge) and lengths is not None
        centred_edge = bool(edge) and (mask is None or right_padded_edge)  # sums about the channel mean c
        if mask is None:
            SU = torch.zeros_like(U[0])  # (H L+1) sum_b U_b
        if centred_edge:  # sums of the spectra of (u_b - c) m_b, c the mean of u over valid positions
            c = u.sum((0, 2)) / count  # (H)
            centred_power = u.new_zeros(H, 2 * (L + 1))  # sum_b |U_b - c M_b|^2, real and imaginary parts
        if right_padded_edge:
            M_conj = M.conj_physical()  # (B 1 L+1)
            PC = torch.zeros_like(U[0])  # (H L+1) sum_b conj(M_b) (U_b - c M_b)
        for chunk in chunks:  # the sums over the batch read each chunk's spectra while they are in cache
            torch.fft.rfft(u[chunk], n=2 * L, out=U[chunk])
            if mask is None:
                SU += U[chunk].sum(0)
            elif not right_padded_edge:  # P accumulated conjugated, sum_b conj(M_b) U_b: no conjugate copy of U
                accumulate_products(P, M[chunk].conj_physical(), U[chunk])
            if centred_edge:
                for b in range(chunk.start, chunk.stop):
                    D_b = torch.addcmul(U[b], M if mask is None else M[b], c[:, None], value=-1)  # (H L+1)
                    d = torch.view_as_real(D_b).flatten(-2)  # (H 2L+2)
                    centred_power.addcmul_(d, d)
                    if right_padded_edge:
                        PC.addcmul_(M_conj[b], D_b)
        if mask is not None and not right_padded_edge:
            P = P.conj_physical_()
        if right_padded_edge:
            mask_power = squared_magnitude(M).sum(0)  # (1 L+1) sum_b |M_b|^2
            P = (PC + c[:, None] * mask_power).conj_physical_()
        if mask is None:
            P = M * SU.conj()
        # (N H) sum of m z_i over batch and positions / count: the taps against the cross-correlation of m with u
        mean = tap_inner(torch.fft.irfft(P, n=2 * L), kernels) / count
        squares = torch.zeros_like(mean)  # (N H) sum of m (z_i - mean_i)^2
        W_max = max([circle.width for circle in circles], default=0)  # a list: torch.compile traces this
        edge_spectra = [
            torch.fft.rfft(kernel_to_circular(kernels[i], circle.size // 2)) for i, circle in zip(edge, circles)
        ]  # (H n_i/2+1) each
        autocorrelations = [edge_autocorrelation(K_i) for K_i in edge_spectra]  # (H n_i) each
        backs, lag_spectra = [], []  # per short branch: k_i^T of its outside part, sum_b Y conj(E) (`edge_adjoint`)
        if right_padded_edge:
            centred_power = centred_power.view(H, L + 1, 2).sum(-1)  # (H L+1)
            backs, lag_spectra = right_padded_edge_squares(
                c,
                centred_power,
                PC,
                lengths,
                u,
                kernels,
                edge,
                circles,
                edge_spectra,
                autocorrelations,
                mean,
                squares,
            )
            # the uncentred sum_b |U_b|^2, for the kernel gradients
            power = centred_power.add_(2 * c[:, None] * PC.real).add_(c[:, None].square() * mask_power)
        elif edge:
            # z_i = z'_i + c q_i with z'_i = k_i * (u - c) and q_i = k_i * 1: centred at the channel mean c of u,
            # sum (z_i - mean_i)^2 = sum z'^2 + 2 sum r z' + B sum r^2 (r = c q_i - mean_i) is a sum of small terms.
            # r = rho_i + e_i with rho_i = c sum(k_i) - mean_i and e_i = c (q_i - sum(k_i)), zero but within l_i of
            # t = 0 and of t = L: sum r z' needs sum_t z'_i and z'_i on [0, W) and [L - W, L) only.
            power = centred_power.view(H, L + 1, 2).sum(-1)  # (H L+1) sum_b |U_b - c M|^2
            SUC = SU - B * M * c[:, None]  # (H L+1) sum_b of the centred spectra
            centred_lags = torch.fft.irfft(power, n=2 * L)  # (H 2L) autocorrelation of u - c, summed over the batch
            edge_kernels = [kernels[i] for i in edge]
            z_totals = tap_inner(torch.fft.irfft(M * SUC.conj(), n=2 * L), edge_kernels)  # (n H) sum_b sum_t<L z'_i
            # sum_b (u - c) on the first and the last 2 W_max samples (2 W_max <= L / 2)
            ends = torch.stack([u[..., : 2 * W_max].sum(0), u[..., L - 2 * W_max :].sum(0)]) - B * c[:, None]
            centred = torch.cat([u[..., :W_max], u[..., L - W_max :]], dim=-1) - c[:, None]  # (B H 2W_max) edges
            ones = u.new_ones(1, 1, 2 * W_max)  # the edges of the all-valid mask
            for j, (i, kernel, K_i, (S, W, n, span, _)) in enumerate(zip(edge, edge_kernels, edge_spectra, circles)):
                circle = torch.linalg.vecdot(near_lags(centred_lags, n), autocorrelations[j])  # (H) 2L circle
                kappa = kernel.sum((0, 2))  # (H)
                rho = c * kappa - mean[i]  # (H)
                z_edges, e_i = aligned_edge_terms(kernel, K_i, W, ends, L, c, kappa)  # (H SW) each
                cross = rho * z_totals[j] + torch.linalg.vecdot(e_i, z_edges)  # (H) sum r z'
                r_squares = L * rho.square() + 2 * rho * e_i.sum(-1) + torch.linalg.vecdot(e_i, e_i)  # (H) sum r^2
                squares[i] = circle + 2 * cross + B * r_squares
                E_ones = edge_signal(ones, W, S)  # (1 1 SW+1)
                Y_ones = torch.fft.rfft(edge_outside(E_ones, K_i, S * W))  # (1 H SW+1)
                lag_spectra.append(torch.zeros_like(K_i))
                backs.append(u.new_empty(B, H, span))
                for chunk in batch_chunks(B, H, S * W, u.device):
                    E = edge_signal(centred[chunk], W, S)  # (b H SW+1)
                    outside = edge_outside(E, K_i, S * W)  # (b H 2SW) z'_i outside [0, L) on the second half
                    squares[i] -= torch.linalg.vecdot(outside, outside).sum(0)
                    backs[-1][chunk] = edge_adjoint(E, outside, E_ones, Y_ones, c, K_i, lag_spectra[-1], span)
            # the uncentred sum_b |U_b|^2, for the kernel gradients
            power.add_(2 * c[:, None] * (SUC * M.conj()).real).add_(B * c[:, None].square() * squared_magnitude(M))
        # kernel gradients of the short branches need l_i lags of k_i * (the autocorrelation of u) minus those of the
        # outside part's cross-correlation with u: forward quantities, read on the edge circles (n samples) of the
        # lags within n/2 of 0
        edge_lags = []  # (H n) each
        if edge:
            power_lags = torch.fft.irfft(power.to(U.dtype), n=2 * L)  # (H 2L) autocorrelation of u, batch summed
            for K_i, lag_spectrum, (_, _, n, _, _) in zip(edge_spectra, lag_spectra, circles, strict=True):
                spectrum = torch.fft.rfft(near_lags(power_lags, n)).mul_(K_i).sub_(lag_spectrum)  # (H n/2+1)
                edge_lags.append(torch.fft.irfft(spectrum, n=n))
        scratch = U.new_empty((chunks[0].stop - chunks[0].start) * H * (L + 1))
        for j, i in enumerate(full):
            for chunk in chunks:
                product = scratch_view(scratch, chunk.stop - chunk.start, H, L + 1)
                z = torch.fft.irfft(torch.mul(U[chunk], spectra[j], out=product), n=2 * L)[..., :L]  # (b H L)
                z.sub_(mean[i, :, None])
                if mask is None:
                    squares[i] += torch.linalg.vecdot(z, z).sum(0)
                else:
                    squares[i] += torch.einsum("bhl,bl->h", z.square_(), mask[chunk])
        var = squares / count  # (N H) biased
        inv_std = torch.rsqrt(var + eps)  # (N H)
        scale = alpha * weight * inv_std  # (N H)
        shift = (alpha * (bias - weight * mean * inv_std)).sum(0)  # (H)
        folded = merge_kernels(kernels, scale, L, u.dtype)  # (S H L) BN-folded kernel
        combined = kernel_spectrum(folded, L) + skip[:, None]  # (H L+1) plus D
        y = torch.empty_like(u, memory_format=torch.contiguous_format)  # (B H L)
        for chunk in chunks:
            U_c = U[chunk]
            product = scratch_view(scratch, U_c.shape[0], H, L + 1)
            z = torch.fft.irfft(torch.mul(U_c, combined, out=product), n=2 * L)[..., :L]  # (b H L)
            torch.add(z, shift[:, None], out=y[chunk])
        ctx.save_for_backward(
            *(U, spectra, alpha, weight, bias, skip, mask, lengths, mean, inv_std, count, combined),
            P,
            *autocorrelations,
            *backs,
            *edge_lags,
            *kernels,
        )
        ctx.kernel_shapes = [k.shape for k in kernels]
        ctx.edge, ctx.circles = edge, circles
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y, grad_mean, grad_var):
        U, spectra, alpha, weight, bias, skip, mask, lengths, mean, inv_std, count, combined, P, *rest = (
            ctx.saved_tensors
        )
        edge = ctx.edge
        n = len(edge)
        autocorrelations, backs, edge_lags, kernels = rest[:n], rest[n : 2 * n], rest[2 * n : 3 * n], rest[3 * n :]
        B, H, F = U.shape
        L = F - 1
        full = [i for i in range(len(kernels)) if i not in edge]
        chunks = batch_chunks(B, H, L, U.device)
        if mask is not None:
            M = torch.fft.rfft(mask, n=2 * L)[:, None]  # (B 1 L+1)
        GY = torch.empty_like(U)  # (B H L+1) spectrum of g
        Q = torch.zeros_like(U[0])  # (H L+1) sum_b GY_b conj(U_b)
        conjugates = U.new_empty((chunks[0].stop - chunks[0].start) * H * F)  # conj(U) of a chunk, one buffer
        for chunk in chunks:
            torch.fft.rfft(grad_y[chunk], n=2 * L, out=GY[chunk])
            U_conj = torch.conj_physical(U[chunk], out=scratch_view(conjugates, chunk.stop - chunk.start, H, F))
            accumulate_products(Q, GY[chunk], U_conj)
        w = parseval_weights(L, inv_std.dtype, U.device)  # (L+1)
        shared = torch.fft.irfft(torch.stack([Q, P]), n=2 * L)  # (2 H 2L) cross-correlations of g and of m with u
        A = grad_y.sum((0, 2))  # (H) sum of g
        G = (tap_inner(shared[0], kernels) - mean * A) * inv_std  # (N H) sum of g * x_i
        scale = alpha * weight * inv_std  # (N H) s_i
        a = scale * (A - mean * inv_std * G) / count  # (N H)
        b = scale * inv_std * G / count  # (N H)
        grad_alpha = weight * G + bias * A
        grad_weight = alpha * G
        grad_bias = alpha * A
        grad_skip = (Q.real * w).sum(-1)  # (H) sum of g * u
        # du: transposed convolutions of dz_i = s_i g - a_i m - b_i m z_i summed over the branches, in spectra
        dtype = inv_std.dtype
        combined = combined.conj_physical()  # (H L+1) the forward pass's folded kernel plus D, transposed
        mask_kernel = merge_kernels(kernels, a, L, dtype)  # (S H L)
        if mask is None:  # the a_i term is the same for every sample: sum_i a_i k_i^T 1, prefix sums of the taps
            offset = mask_kernel[0].cumsum(-1).flip(-1)  # (H L) causal taps 0 .. L-1-t reach [0, L) from t
            if mask_kernel.shape[0] == 2:
                offset[:, 1:] += mask_kernel[1, :, :-1].cumsum(-1)  # anti-causal taps 0 .. t-1
        else:
            mask_term = kernel_spectrum(mask_kernel, L).conj_physical_()  # (H L+1)
        if edge:  # m z_i = z_i on [0, L): b_i |K_i|^2 U here, minus the part outside [0, L) on the edges below
            edge_term = autocorrelation_spectrum(b[edge], autocorrelations, L).to(U.dtype)  # (H L+1) complex: no cast
        grad_u = torch.empty_like(grad_y, memory_format=torch.contiguous_format)  # (B H L)
        S = torch.zeros_like(spectra)  # (n H L+1) sum_b R_ib conj(U_b), R_i the spectrum of m z_i; conjugated
        if full:
            branch_terms = spectra.conj_physical().mul_(b[full, :, None])  # (n H L+1)
            scratch = U.new_empty((chunks[0].stop - chunks[0].start) * H * F)
        for chunk in chunks:
            dU = GY[chunk].mul_(combined)  # (b H L+1), GY is not needed any more
            if mask is not None:
                dU.addcmul_(M[chunk], mask_term, value=-1)
            if edge:
                dU.addcmul_(U[chunk], edge_term, value=-1)
            for j in range(len(full)):
                product = scratch_view(scratch, dU.shape[0], H, F)
                z = torch.fft.irfft(torch.mul(U[chunk], spectra[j], out=product), n=2 * L)  # (b H 2L) z_i again
                z[..., L:].zero_()
                if mask is not None:
                    z[..., :L].mul_(mask[chunk, None])
                R = torch.fft.rfft(z)  # (b H L+1) spectrum of m z_i
                dU.addcmul_(R, branch_terms[j], value=-1)
                accumulate_products(S[j], R.conj_physical_(), U[chunk])  # conj(S_i), without a copy of U
            z = torch.fft.irfft(dU, n=2 * L)[..., :L]  # (b H L)
            if mask is None:
                torch.sub(z, offset, out=grad_u[chunk])
            else:
                grad_u[chunk] = z
        shapes = ctx.kernel_shapes
        grad_kernels = [None] * len(shapes)
        # kernel gradients: circular cross-correlations of dz_i with u, irfft(sum_b DZ_ib conj(U_b)) on the 2L circle
        S = S.conj_physical_()
        grad_spectra = torch.empty_like(S)  # (n H L+1), branch by branch (in cache)
        for j, i in enumerate(full):
            out = torch.mul(Q, scale[i, :, None], out=grad_spectra[j]).addcmul_(P, a[i, :, None], value=-1)
            out.addcmul_(S[j], b[i, :, None], value=-1)
        if full:
            circular = torch.fft.irfft(grad_spectra, n=2 * L)  # (n H 2L)
            for i, grad in zip(full, circular_to_kernels(circular, [shapes[i] for i in full]), strict=True):
                grad_kernels[i] = grad
        # short branches: k_i^T of the outside part lands on u[:W] and u[L-W:] (`edge_adjoint`, from the forward pass;
        # u[L-W:] alone for a causal kernel's one-sided circle); kernels need l_i lags of irfft(Q) and irfft(P)
        # (`shared`) on the edge circle (n samples) of the lags within n/2 of 0, and the forward pass's lags of the
        # m z_i term (`edge_lags`)
        for i, (S, W, n, span, _), back, lags in zip(edge, ctx.circles, backs, edge_lags, strict=True):
            if S == 2:
                grad_u[..., :W].addcmul_(back[..., :W], b[i, :, None])
            if lengths is None:  # one-sided circle: [0, W) holds u[L-W:]
                grad_u[..., L - W :].addcmul_(back[..., (S - 1) * W : S * W], b[i, :, None])
            else:  # [(S-1)W, span) holds t = n_b - W, ...; padded positions before L get a gradient too
                at = lengths[:, None] - W + torch.arange(span - (S - 1) * W, device=U.device)  # (B span-(S-1)W)
                part = back[..., (S - 1) * W :] * b[i, :, None] * ((at >= 0) & (at < L))[:, None]
                grad_u.scatter_add_(-1, at.clamp(0, L - 1)[:, None].expand_as(part), part)
            near = near_lags(shared, n)  # (2 H n) lags -n/2 .. n/2-1
            small = near[0] * scale[i, :, None] - near[1] * a[i, :, None] - lags * b[i, :, None]
            grad_kernels[i] = circular_to_kernels(small[None], [shapes[i]])[0]
        return grad_u, grad_alpha, grad_weight, grad_bias, grad_skip, None, None, *grad_kernels


def reference_multires_forward(
    x: torch.Tensor,
    kernels: list[torch.Tensor],
    batch_norm: MRConvBatchNorm,
    alpha: torch.Tensor,
    skip: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The straightforward training and eval form: N branch convolutions, N BatchNorms, the alpha-weighted sum.

    x (B, H, L) with padded positions zeroed; N `kernels` (S, H, l_i) as the `kernels.py` modules return them; the
    branches' (N, H) `batch_norm` (running statistics updated in training mode); alpha (N, H); skip (H), the D term;
    mask (B, L) or None. Returns (B, H, L) in x's dtype.
    """
    dtype = compute_dtype(x.dtype)
    L = x.shape[-1]
    spectra = torch.stack([kernel_spectrum(k, L) for k in kernels])  # (N H L+1)
    z = fft_conv(x[:, None], spectra)  # (B N H L)
    c = batch_norm(z, mask)  # (B N H L)
    y = (c * alpha.to(dtype)[..., None]).sum(1) + skip.to(dtype)[:, None] * x.to(dtype)  # (B H L)
    return y.to(x.dtype)


def folded_multires_forward(
    x: torch.Tensor,
    kernels: list[torch.Tensor],
    batch_norm: MRConvBatchNorm,
    alpha: torch.Tensor,
    skip: torch.Tensor,
) -> torch.Tensor:
    """Eval form with running statistics: paper eq. 7's merge applied on the fly (exact), one FFT convolution.

    Differentiable in every argument; arguments as `reference_multires_forward`, no mask (eval statistics are fixed).
    """
    dtype, L = compute_dtype(x.dtype), x.shape[-1]
    kernel, shift = merge_branches(kernels, alpha, batch_norm, skip, L)  # (S H L), (H) float64
    kernel, shift = kernel.to(dtype), shift.to(dtype)
    return fft_conv_bias(x, kernel_spectrum(kernel, L), shift).to(x.dtype)


def fast_multires_forward(
    x: torch.Tensor,
    kernels: list[torch.Tensor],
    batch_norm: MRConvBatchNorm,
    alpha: torch.Tensor,
    skip: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """`reference_multires_forward` the cheap way: `MultiResConvFunction` in training mode (the same running
    statistics), the folded kernel in eval mode. Local BatchNorm statistics only (`branch_forward` dispatches).
    """
    if not batch_norm.training:
        return folded_multires_forward(x, kernels, batch_norm, alpha, skip)
    dtype = compute_dtype(x.dtype)
    with torch.autocast(x.device.type, enabled=False):
        u = x.to(dtype)
        m = mask.to(dtype) if mask is not None else None
        weight, bias = batch_norm.weight.to(dtype), batch_norm.bias.to(dtype)
        y, mean, var = MultiResConvFunction.apply(
            u, alpha.to(dtype), weight, bias, skip.to(dtype), m, batch_norm.eps, *[k.to(dtype) for k in kernels]
        )
        count = m.sum() if m is not None else u.new_tensor(float(u.shape[0] * u.shape[-1]))
        batch_norm.update_running_stats(mean, var, count)  # a no-op without a valid position (count 0)
    return y.to(x.dtype)


__all__ = [
    "MultiResConvFunction",
    "fast_multires_forward",
    "folded_multires_forward",
    "reference_multires_forward",
]
