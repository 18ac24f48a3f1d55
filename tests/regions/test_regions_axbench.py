"""The exact AxBench kernels against known values and independent references."""

import io

import numpy as np
import pytest
from scipy import ndimage

from axdnn.errors import RegionError
from axdnn.regions import axbench as ax
from axdnn.regions import get_region, image_diff, list_regions, mean_relative_error, miss_rate

BUILT_IN = ["blackscholes", "fft", "inversek2j", "jmeint", "jpeg", "kmeans", "sobel"]


def test_built_ins_are_registered_with_micro2012_baselines():
    assert list_regions()[:7] == BUILT_IN
    texts = {name: get_region(name).to_dict()["baseline"] for name in BUILT_IN}
    assert texts == {
        "blackscholes": "6->8->8->1",
        "fft": "1->4->4->2",
        "inversek2j": "2->8->2",
        "jmeint": "18->32->8->2",
        "jpeg": "64->16->64",
        "kmeans": "6->8->4->1",
        "sobel": "9->8->1",
    }


@pytest.mark.parametrize("name", BUILT_IN)
def test_sampler_is_seeded_and_function_shapes(name):
    region = get_region(name)
    a, b = region.sample(60, 3), region.sample(60, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, region.sample(60, 4))
    y = region(a)
    assert y.shape == (len(a), region.out_dim) and np.isfinite(y).all()
    assert region.error(a, y) == 0.0


# Hull, Options, Futures and Other Derivatives: S=K=100, r=5%, sigma=20%, T=1
@pytest.mark.parametrize(
    "row, price",
    [
        ([100, 100, 0.05, 0.2, 1.0, 0], 10.450584),
        ([100, 100, 0.05, 0.2, 1.0, 1], 5.573526),
        ([42, 40, 0.10, 0.2, 0.5, 0], 4.759422),  # Hull, Example 15.6
        ([42, 40, 0.10, 0.2, 0.5, 1], 0.808599),
    ],
)
def test_blackscholes_closed_form(row, price):
    assert get_region("blackscholes")(np.array([row]))[0, 0] == pytest.approx(price, abs=1e-5)


def test_blackscholes_put_call_parity_and_bad_input():
    region = get_region("blackscholes")
    x = region.sample(200, 0)
    calls, puts = x.copy(), x.copy()
    calls[:, 5], puts[:, 5] = 0, 1
    s, k, r, _, t, _ = x.T
    parity = region(calls)[:, 0] - region(puts)[:, 0]
    np.testing.assert_allclose(parity, s - k * np.exp(-r * t), atol=1e-9)
    bad = x[:1].copy()
    bad[0, 3] = 0.0
    with pytest.raises(RegionError, match="volatility"):
        region(bad)


def test_fft_twiddles_give_numpy_fft():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=64) + 1j * rng.normal(size=64)
    np.testing.assert_allclose(ax.fft_radix2(signal), np.fft.fft(signal), atol=1e-10)
    region = get_region("fft")
    np.testing.assert_allclose(region(np.array([[0.25]])), [[0.0, -1.0]], atol=1e-12)
    with pytest.raises(RegionError, match="power-of-two"):
        ax.fft_radix2(np.ones(12))


def test_inversek2j_inverts_forward_kinematics():
    region = get_region("inversek2j")
    theta = np.column_stack([np.linspace(0, 1.5, 50), np.linspace(0.1, 3.0, 50)])
    xy = ax.forward_kinematics(theta)
    np.testing.assert_allclose(region(xy), theta, atol=1e-9)
    xy = region.sample(300, 1)
    np.testing.assert_allclose(ax.forward_kinematics(region(xy)), xy, atol=1e-12)
    with pytest.raises(RegionError, match="reach"):
        region(np.array([[2.0, 0.0]]))


def _pair(t1, t2):
    return np.concatenate([np.ravel(t1), np.ravel(t2)])[None].astype(float)


def test_jmeint_on_constructed_triangles():
    region = get_region("jmeint")
    flat = [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    cases = [
        ([[0.2, 0.2, -1], [0.2, 0.2, 1], [0.3, 0.4, 1]], True),  # pierces the flat one
        ([[0.2, 0.2, 0.5], [0.8, 0.1, 0.5], [0.1, 0.8, 0.9]], False),  # above it
        ([[2, 2, -1], [2, 2, 1], [3, 2, 1]], False),  # beside its plane crossing
        ([[0.1, 0.1, 0], [0.5, 0.1, 0], [0.1, 0.5, 0]], True),  # coplanar, inside
        ([[2, 2, 0], [3, 2, 0], [2, 3, 0]], False),  # coplanar, apart
        ([[0.5, 0.5, 0], [2, 0, 0], [0, 2, 0]], True),  # coplanar, overlapping edges
    ]
    for tri, hit in cases:
        for a, b in ((flat, tri), (tri, flat)):
            assert region(_pair(a, b))[0].tolist() == ([1.0, 0.0] if hit else [0.0, 1.0])


def test_jmeint_sampler_mixes_both_outcomes():
    region = get_region("jmeint")
    x = region.sample(400, 2)
    hits = region(x)[:, 0].astype(bool)
    assert 0.1 < hits.mean() < 0.5
    assert miss_rate(region(x), region(x)[:, ::-1]) == 1.0


def test_jpeg_dct_matches_scipy_and_table_is_annex_k():
    from scipy.fft import dctn

    rng = np.random.default_rng(0)
    block = rng.uniform(0, 255, (1, 64))
    coeffs = np.einsum(
        "ki,nij,lj->nkl", ax.dct_matrix(), block.reshape(1, 8, 8) - 128, ax.dct_matrix()
    )
    np.testing.assert_allclose(coeffs[0], dctn(block.reshape(8, 8) - 128, norm="ortho"))
    assert ax.jpeg_table(50)[0, :4].tolist() == [16, 11, 10, 16]
    assert ax.jpeg_table(100).max() == 1
    expected = np.round(dctn(block.reshape(8, 8) - 128, norm="ortho") / ax.JPEG_LUMA).ravel()
    np.testing.assert_array_equal(get_region("jpeg")(block)[0], expected)


def test_jpeg_round_trip_quality_matches_libjpeg():
    from PIL import Image

    image = np.round(ax.gray_images()[0][:424, :640])
    ours = ax.jpeg_round_trip(image, 50)
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8), "L").save(buffer, "JPEG", quality=50)
    reference = np.asarray(Image.open(buffer), dtype=np.float64)

    def psnr(a):
        return 10 * np.log10(255**2 / np.mean((a - image) ** 2))

    assert 28 < psnr(ours) < 45
    assert abs(psnr(ours) - psnr(reference)) < 1.0
    assert image_diff(image, ours) < 0.05


def test_kmeans_distance_and_known_clusters():
    region = get_region("kmeans")
    assert region(np.array([[0, 0, 0, 0.3, 0.4, 0.0]] * 6))[0, 0] == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    centers = np.array([[0.1, 0.1, 0.1], [0.9, 0.1, 0.5], [0.4, 0.9, 0.9]])
    truth = rng.integers(0, 3, 300)
    points = centers[truth] + rng.normal(0, 0.02, (300, 3))
    labels, found = ax.kmeans_segment(points, 3, seed=1)
    order = [int(np.argmin(np.linalg.norm(found - c, axis=1))) for c in centers]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_array_equal(np.array(order)[truth], labels)
    np.testing.assert_allclose(found[order], centers, atol=0.01)


def test_kmeans_metric_reads_groups():
    region = get_region("kmeans")
    x = region.sample(60, 0)
    exact = region(x)
    assert region.error(x, exact + 0.5) == 0.0  # a shift keeps every assignment
    assert region.error(x, -exact) > 0.0
    with pytest.raises(RegionError, match="groups of 6"):
        region(x[:5])


def test_sobel_matches_scipy_ndimage():
    image = ax.gray_images()[1][100:160, 200:280]
    ours = ax.sobel_image(image)
    gx, gy = ndimage.sobel(image, axis=1), ndimage.sobel(image, axis=0)
    reference = np.minimum(np.hypot(gx, gy), 255.0)[1:-1, 1:-1]
    np.testing.assert_allclose(ours, reference, atol=1e-9)
    assert ours.max() > 50


def test_metrics():
    exact = np.array([[1.0, 10.0], [2.0, 0.0]])
    assert mean_relative_error(exact, exact * 1.1) == pytest.approx(0.075)
    assert image_diff(np.zeros((2, 2)), np.full((2, 2), 25.5)) == pytest.approx(0.1)
    assert miss_rate(np.eye(2), np.eye(2)[::-1]) == 1.0


@pytest.mark.parametrize("bad", [np.zeros((3, 5)), np.zeros(9), np.full((2, 9), np.nan)])
def test_bad_inputs_are_region_errors(bad):
    with pytest.raises(RegionError, match="sobel"):
        get_region("sobel")(bad)
