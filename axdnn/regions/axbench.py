"""The AxBench kernels as numpy regions, each with AxBench's quality metric and the fixed
neural-acceleration topology of the literature as its baseline.

AxBench: A. Yazdanbakhsh, D. Mahajan, H. Esmaeilzadeh and P. Lotfi-Kamran, "AxBench: A
Multiplatform Benchmark Suite for Approximate Computing", IEEE Design & Test 34(2), 2017. Fixed
topologies: H. Esmaeilzadeh, A. Sampson, L. Ceze and D. Burger, "Neural Acceleration for
General-Purpose Approximate Programs", MICRO 2012, Table 1 (fft 1->4->4->2, inversek2j 2->8->2,
jmeint 18->32->8->2, jpeg 64->16->64, kmeans 6->8->4->1, sobel 9->8->1); blackscholes is not in
that paper, its 6->8->8->1 is AxBench's. The input distributions are ours (AxBench ships input
files we do not download): each sampler says what it draws. Images come from scikit-learn's two
bundled sample photographs.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr

from axdnn.errors import RegionError
from axdnn.regions.region import (
    image_diff,
    mean_relative_error,
    miss_rate,
    register_region,
)

MICRO2012 = (
    "Esmaeilzadeh et al., Neural Acceleration for General-Purpose Approximate Programs, MICRO 2012"
)
AXBENCH = "Yazdanbakhsh et al., AxBench, IEEE Design & Test 2017"


def _relative(inputs: np.ndarray, exact: np.ndarray, approx: np.ndarray) -> float:
    return mean_relative_error(exact, approx)


def _positive(values: np.ndarray, what: str, region: str) -> None:
    if (values <= 0).any():
        bad = values[values <= 0][0]
        raise RegionError(f"region {region!r}: {what} must be > 0, got {bad!r}")


# ---- images (scikit-learn's bundled photographs; nothing is downloaded) ----------------------


@functools.cache
def sample_images() -> tuple[np.ndarray, ...]:
    """The two RGB photographs scikit-learn ships (427x640x3, uint8)."""
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(img) for img in load_sample_images().images)


@functools.cache
def gray_images() -> tuple[np.ndarray, ...]:
    """The sample photographs in grayscale (ITU-R 601 luma), float64 in [0, 255]."""
    weights = np.array([0.299, 0.587, 0.114])
    return tuple(img.astype(np.float64) @ weights for img in sample_images())


def _windows(n: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """`n` random size x size grayscale windows, flattened row-major."""
    images = gray_images()
    which = rng.integers(0, len(images), n)
    out = np.empty((n, size * size))
    for k, img in enumerate(images):
        rows = np.flatnonzero(which == k)
        r = rng.integers(0, img.shape[0] - size + 1, len(rows))
        c = rng.integers(0, img.shape[1] - size + 1, len(rows))
        view = sliding_window_view(img, (size, size))
        out[rows] = view[r, c].reshape(len(rows), -1)
    return out


# ---- blackscholes ---------------------------------------------------------------------------


def black_scholes(x: np.ndarray) -> np.ndarray:
    """European option price, closed form without dividends; columns: spot, strike, rate,
    volatility, time to expiry (years), type (0 call, 1 put)."""
    spot, strike, rate, vol, time, kind = x.T
    for values, what in ((spot, "spot"), (strike, "strike"), (vol, "volatility"), (time, "time")):
        _positive(values, what, "blackscholes")
    root = vol * np.sqrt(time)
    d1 = (np.log(spot / strike) + (rate + 0.5 * vol**2) * time) / root
    d2 = d1 - root
    discounted = strike * np.exp(-rate * time)
    call = spot * ndtr(d1) - discounted * ndtr(d2)
    put = discounted * ndtr(-d2) - spot * ndtr(-d1)
    return np.where(kind >= 0.5, put, call)[:, None]


def _sample_blackscholes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Spot in [50, 150], strike at 0.8-1.2 x spot, rate 1-10%, volatility 5-65%, expiry
    0.05-1 year, calls and puts equally often (PARSEC's ranges, moneyness bounded)."""
    spot = rng.uniform(50, 150, n)
    strike = spot * rng.uniform(0.8, 1.2, n)
    cols = (rng.uniform(0.01, 0.1, n), rng.uniform(0.05, 0.65, n), rng.uniform(0.05, 1.0, n))
    return np.column_stack([spot, strike, *cols, rng.integers(0, 2, n)])


BLACKSCHOLES = register_region(
    "blackscholes",
    sampler=_sample_blackscholes,
    metric=_relative,
    in_dim=6,
    out_dim=1,
    bound=0.15,
    baseline=(8, 8),
    description="Black-Scholes option price (PARSEC/AxBench)",
    cite=AXBENCH,
)(black_scholes)


# ---- fft -------------------------------------------------------------------------------------


def fft_twiddle(x: np.ndarray) -> np.ndarray:
    """AxBench fft's region: the twiddle factor exp(-2 pi i x) as (cos, sin) for x in [0, 1)."""
    angle = -2.0 * np.pi * x[:, 0]
    return np.column_stack([np.cos(angle), np.sin(angle)])


def _sample_fft(n: int, rng: np.random.Generator) -> np.ndarray:
    """Fractions k/N uniform in [0, 1)."""
    return rng.uniform(0.0, 1.0, (n, 1))


FFT = register_region(
    "fft",
    sampler=_sample_fft,
    metric=_relative,
    in_dim=1,
    out_dim=2,
    bound=0.1,
    baseline=(4, 4),
    description="radix-2 FFT twiddle factor (cos, sin of -2 pi x)",
    cite=MICRO2012,
)(fft_twiddle)


def fft_radix2(signal: np.ndarray, twiddle=fft_twiddle) -> np.ndarray:
    """Iterative radix-2 Cooley-Tukey FFT of a power-of-two-long signal whose twiddle factors
    come from `twiddle` (the region, or an approximation of it)."""
    x = np.asarray(signal, dtype=np.complex128)
    n = len(x)
    if x.ndim != 1 or n < 1 or n & (n - 1):
        raise RegionError(f"fft_radix2 needs a 1-D signal of power-of-two length, got {x.shape}")
    bits = n.bit_length() - 1
    index = np.arange(n)
    reversed_index = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        reversed_index |= ((index >> b) & 1) << (bits - 1 - b)
    x = x[reversed_index]
    size = 2
    while size <= n:
        half = size // 2
        w = np.asarray(twiddle((np.arange(half) / size)[:, None]))
        factor = w[:, 0] + 1j * w[:, 1]
        blocks = x.reshape(-1, size)
        even, odd = blocks[:, :half], blocks[:, half:] * factor
        x = np.concatenate([even + odd, even - odd], axis=1).reshape(-1)
        size *= 2
    return x


# ---- inversek2j ------------------------------------------------------------------------------

ARM = (0.5, 0.5)  # AxBench's link lengths


def forward_kinematics(theta: np.ndarray, arm: tuple[float, float] = ARM) -> np.ndarray:
    """End-effector (x, y) of a two-joint planar arm at joint angles (theta1, theta2)."""
    l1, l2 = arm
    t1, t2 = np.asarray(theta, dtype=np.float64).T
    return np.column_stack(
        [l1 * np.cos(t1) + l2 * np.cos(t1 + t2), l1 * np.sin(t1) + l2 * np.sin(t1 + t2)]
    )


def inverse_kinematics(xy: np.ndarray, arm: tuple[float, float] = ARM) -> np.ndarray:
    """Joint angles (theta1, theta2 in [0, pi]) that put the arm's end at (x, y)."""
    l1, l2 = arm
    x, y = xy.T
    cos2 = (x**2 + y**2 - l1**2 - l2**2) / (2 * l1 * l2)
    if (np.abs(cos2) > 1 + 1e-9).any():
        far = xy[np.abs(cos2) > 1 + 1e-9][0]
        raise RegionError(
            f"region 'inversek2j': point {far.tolist()} is out of the arm's reach "
            f"(between {abs(l1 - l2)} and {l1 + l2} from the origin)"
        )
    t2 = np.arccos(np.clip(cos2, -1.0, 1.0))
    t1 = np.arctan2(y, x) - np.arctan2(l2 * np.sin(t2), l1 + l2 * np.cos(t2))
    return np.column_stack([t1, t2])


def _sample_inversek2j(n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions reached by joint angles uniform in [0, pi/2] x [0.1, pi/2] (forward kinematics)."""
    theta = np.column_stack([rng.uniform(0, np.pi / 2, n), rng.uniform(0.1, np.pi / 2, n)])
    return forward_kinematics(theta)


INVERSEK2J = register_region(
    "inversek2j",
    sampler=_sample_inversek2j,
    metric=_relative,
    in_dim=2,
    out_dim=2,
    bound=0.12,
    baseline=(8,),
    description="inverse kinematics of a two-joint arm",
    cite=MICRO2012,
)(inverse_kinematics)


# ---- jmeint ----------------------------------------------------------------------------------

_EPS = 1e-12


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _segment_hits(p, q, a, b, c) -> np.ndarray:
    """Segment p-q meets triangle abc (Moeller-Trumbore, closed bounds; parallel: no)."""
    d, e1, e2 = q - p, b - a, c - a
    h = np.cross(d, e2)
    det = _dot(e1, h)
    ok = np.abs(det) > _EPS
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p - a
    u = inv * _dot(s, h)
    qv = np.cross(s, e1)
    v = inv * _dot(d, qv)
    t = inv * _dot(e2, qv)
    return ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t <= 1)


def _cross2(o, a, b) -> np.ndarray:
    return (a[:, 0] - o[:, 0]) * (b[:, 1] - o[:, 1]) - (a[:, 1] - o[:, 1]) * (b[:, 0] - o[:, 0])


def _segments_cross_2d(p, q, r, s) -> np.ndarray:
    d1, d2 = _cross2(r, s, p), _cross2(r, s, q)
    d3, d4 = _cross2(p, q, r), _cross2(p, q, s)
    return (d1 * d2 <= 0) & (d3 * d4 <= 0)


def _inside_2d(p, a, b, c) -> np.ndarray:
    s1, s2, s3 = _cross2(a, b, p), _cross2(b, c, p), _cross2(c, a, p)
    return ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))


def _coplanar_intersect(t1: np.ndarray, t2: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Coplanar triangles (N, 3, 3): project on the plane's two dominant axes, then any edge
    crossing or a vertex inside the other triangle."""
    drop = np.argmax(np.abs(normal), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[drop]
    p1 = np.take_along_axis(t1, keep[:, None, :], axis=2)
    p2 = np.take_along_axis(t2, keep[:, None, :], axis=2)
    hit = _inside_2d(p1[:, 0], *p2.transpose(1, 0, 2)) | _inside_2d(
        p2[:, 0], *p1.transpose(1, 0, 2)
    )
    for i in range(3):
        for j in range(3):
            hit |= _segments_cross_2d(p1[:, i], p1[:, (i + 1) % 3], p2[:, j], p2[:, (j + 1) % 3])
    return hit


def triangles_intersect(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Whether each pair of triangles (N, 3, 3) meets: some edge of one crosses the other
    (the endpoints of the intersection segment lie on edges), coplanar pairs in 2-D."""
    hit = np.zeros(len(t1), dtype=bool)
    for tri, other in ((t1, t2), (t2, t1)):
        for i in range(3):
            hit |= _segment_hits(tri[:, i], tri[:, (i + 1) % 3], *other.transpose(1, 0, 2))
    normal = np.cross(t1[:, 1] - t1[:, 0], t1[:, 2] - t1[:, 0])
    scale = np.linalg.norm(normal, axis=1) + _EPS
    distance = np.abs(np.einsum("ikj,ij->ik", t2 - t1[:, :1], normal)) / scale[:, None]
    size = np.abs(t1).max(axis=(1, 2)) + np.abs(t2).max(axis=(1, 2)) + 1.0
    coplanar = (distance <= 1e-9 * size[:, None]).all(axis=1)
    if coplanar.any():
        hit[coplanar] = _coplanar_intersect(t1[coplanar], t2[coplanar], normal[coplanar])
    return hit


def jmeint(x: np.ndarray) -> np.ndarray:
    """AxBench jmeint's region: two triangles (18 coordinates) -> one-hot (intersect, apart)."""
    t1, t2 = x[:, :9].reshape(-1, 3, 3), x[:, 9:].reshape(-1, 3, 3)
    hit = triangles_intersect(t1, t2)
    return np.column_stack([hit, ~hit]).astype(np.float64)


def _sample_jmeint(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two triangles per row, every vertex uniform in the unit cube."""
    return rng.uniform(0.0, 1.0, (n, 18))


def _miss(inputs: np.ndarray, exact: np.ndarray, approx: np.ndarray) -> float:
    return miss_rate(exact, approx)


JMEINT = register_region(
    "jmeint",
    sampler=_sample_jmeint,
    metric=_miss,
    in_dim=18,
    out_dim=2,
    metric_name="miss rate",
    bound=0.25,
    baseline=(32, 8),
    description="triangle-triangle intersection (jMonkeyEngine)",
    cite=MICRO2012,
)(jmeint)


# ---- jpeg ------------------------------------------------------------------------------------

JPEG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
)
"""Luminance quantisation table, ITU-T T.81 Annex K, Table K.1."""


def jpeg_table(quality: int = 50) -> np.ndarray:
    """The luminance table scaled to a quality 1..100 as libjpeg (IJG) scales it."""
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise RegionError(f"jpeg quality {quality!r} must be an int in 1..100")
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((JPEG_LUMA * scale + 50) / 100), 1, 255)


def dct_matrix(n: int = 8) -> np.ndarray:
    """Orthonormal DCT-II matrix C (C @ block @ C.T is the 2-D DCT)."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def jpeg_encode_blocks(x: np.ndarray, quality: int = 50) -> np.ndarray:
    """AxBench jpeg's region: 8x8 pixel blocks (N, 64) -> quantised DCT coefficients (N, 64)."""
    c = dct_matrix()
    blocks = x.reshape(-1, 8, 8) - 128.0
    coeffs = np.einsum("ki,nij,lj->nkl", c, blocks, c)
    return np.round(coeffs / jpeg_table(quality)).reshape(-1, 64)


def jpeg_decode_blocks(coeffs: np.ndarray, quality: int = 50) -> np.ndarray:
    """Inverse of the region: rounded coefficients dequantised, inverse DCT, pixels in 0..255."""
    c = dct_matrix()
    q = np.round(coeffs).reshape(-1, 8, 8) * jpeg_table(quality)
    pixels = np.einsum("ki,nkl,lj->nij", c, q, c) + 128.0
    return np.clip(np.round(pixels), 0, 255).reshape(-1, 64)


def jpeg_round_trip(image: np.ndarray, quality: int = 50) -> np.ndarray:
    """Encode and decode a grayscale image (sides multiples of 8) block by block."""
    h, w = image.shape
    if h % 8 or w % 8:
        raise RegionError(f"jpeg_round_trip needs sides that are multiples of 8, got {h}x{w}")
    blocks = image.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    out = jpeg_decode_blocks(jpeg_encode_blocks(blocks, quality), quality)
    return out.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def _jpeg_diff(inputs: np.ndarray, exact: np.ndarray, approx: np.ndarray) -> float:
    return image_diff(jpeg_decode_blocks(exact), jpeg_decode_blocks(approx))


def _sample_jpeg(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random 8x8 grayscale blocks of the sample photographs."""
    return _windows(n, rng, 8)


JPEG = register_region(
    "jpeg",
    sampler=_sample_jpeg,
    metric=_jpeg_diff,
    in_dim=64,
    out_dim=64,
    metric_name="image diff",
    bound=0.07,
    baseline=(16,),
    description="JPEG DCT and quantisation of an 8x8 block (quality 50)",
    cite=MICRO2012,
)(jpeg_encode_blocks)


# ---- kmeans ----------------------------------------------------------------------------------

KMEANS_K = 6  # centroids each pixel is compared with, one sample group


def kmeans_distance(x: np.ndarray) -> np.ndarray:
    """AxBench kmeans's region: Euclidean distance between an RGB pixel and a centroid."""
    return np.linalg.norm(x[:, :3] - x[:, 3:], axis=1)[:, None]


def _assigned_colors(inputs: np.ndarray, distances: np.ndarray) -> np.ndarray:
    groups = inputs.reshape(-1, KMEANS_K, 6)
    nearest = np.argmin(distances.reshape(-1, KMEANS_K), axis=1)
    return groups[np.arange(len(groups)), nearest, 3:]


def _kmeans_diff(inputs: np.ndarray, exact: np.ndarray, approx: np.ndarray) -> float:
    """Image difference of the segmented pixels: the colour of the centroid each pixel goes to."""
    exact_colors = _assigned_colors(inputs, exact)
    return image_diff(exact_colors, _assigned_colors(inputs, approx), peak=1.0)


def _sample_kmeans(n: int, rng: np.random.Generator) -> np.ndarray:
    """Groups of KMEANS_K rows: one random photograph pixel against KMEANS_K random pixels as
    centroids, RGB in [0, 1]."""
    pixels = np.concatenate([img.reshape(-1, 3) for img in sample_images()]) / 255.0
    groups = n // KMEANS_K
    pixel = pixels[rng.integers(0, len(pixels), groups)]
    centroids = pixels[rng.integers(0, len(pixels), (groups, KMEANS_K))]
    rows = np.concatenate([np.repeat(pixel[:, None], KMEANS_K, axis=1), centroids], axis=2)
    return rows.reshape(-1, 6)


KMEANS = register_region(
    "kmeans",
    sampler=_sample_kmeans,
    metric=_kmeans_diff,
    in_dim=6,
    out_dim=1,
    metric_name="image diff",
    bound=0.06,
    group=KMEANS_K,
    baseline=(8, 4),
    description="k-means pixel-to-centroid distance (image segmentation)",
    cite=MICRO2012,
)(kmeans_distance)


def kmeans_segment(
    pixels: np.ndarray, k: int, seed: int = 0, *, iters: int = 20, distance=kmeans_distance
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means of points (N, 3) with `distance` over (pixel, centroid) rows: (labels,
    centroids). Centroids start at k distinct random points."""
    pixels = np.asarray(pixels, dtype=np.float64)
    if k < 1 or k > len(pixels):
        raise RegionError(f"kmeans_segment: k={k!r} must be in 1..{len(pixels)}")
    rng = np.random.default_rng(seed)
    centroids = pixels[rng.choice(len(pixels), k, replace=False)]
    for _ in range(iters):
        rows = np.concatenate(
            [np.repeat(pixels, k, axis=0), np.tile(centroids, (len(pixels), 1))], axis=1
        )
        labels = np.argmin(np.asarray(distance(rows)).reshape(len(pixels), k), axis=1)
        for j in range(k):
            if (labels == j).any():
                centroids[j] = pixels[labels == j].mean(axis=0)
    return labels, centroids


# ---- sobel -----------------------------------------------------------------------------------

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


def sobel(x: np.ndarray) -> np.ndarray:
    """AxBench sobel's region: gradient magnitude of a 3x3 window (row-major), clipped to 255."""
    w = x.reshape(-1, 3, 3)
    gx = np.einsum("nij,ij->n", w, SOBEL_X)
    gy = np.einsum("nij,ij->n", w, SOBEL_X.T)
    return np.minimum(np.hypot(gx, gy), 255.0)[:, None]


def sobel_image(image: np.ndarray, window=sobel) -> np.ndarray:
    """The edge image of a grayscale image (its interior, (H-2) x (W-2)) through `window`."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 3:
        raise RegionError(f"sobel_image needs a 2-D image of at least 3x3, got {image.shape}")
    view = sliding_window_view(image, (3, 3))
    out = np.asarray(window(view.reshape(-1, 9)))
    return out.reshape(view.shape[:2])


def _sobel_diff(inputs: np.ndarray, exact: np.ndarray, approx: np.ndarray) -> float:
    return image_diff(exact, approx)


def _sample_sobel(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random 3x3 grayscale windows of the sample photographs."""
    return _windows(n, rng, 3)


SOBEL = register_region(
    "sobel",
    sampler=_sample_sobel,
    metric=_sobel_diff,
    in_dim=9,
    out_dim=1,
    metric_name="image diff",
    bound=0.07,
    baseline=(8,),
    description="Sobel edge detector (gradient magnitude of a 3x3 window)",
    cite=MICRO2012,
)(sobel)

BUILT_IN = (BLACKSCHOLES, FFT, INVERSEK2J, JMEINT, JPEG, KMEANS, SOBEL)
