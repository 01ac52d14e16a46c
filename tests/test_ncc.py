"""normalized_cross_correlation against brute force, and its guarantees."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_normxcorr import (
    normalized_cross_correlation,
    normalized_cross_correlation_2d,
)
from reference import brute_force_ncc, seed_ncc

SHAPES = [((23,), (6,)), ((13, 17), (4, 7)), ((9, 8, 10), (3, 4, 2))]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("image_shape", "template_shape"), SHAPES)
def test_matches_brute_force(image_shape, template_shape, mode, kernel_path):
    """Every mode and 1-D/2-D/3-D equals direct summation to 1e-12."""
    rng = np.random.default_rng(0)
    image = rng.random(image_shape)
    template = rng.random(template_shape)
    got = normalized_cross_correlation(template, image, mode)
    expected = brute_force_ncc(template, image, mode)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_matches_seed_definition(mode):
    """Same values as the seed's formula on textured data."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=(70, 64))
    template = image[20:35, 30:41] + rng.normal(scale=0.5, size=(15, 11))
    got = normalized_cross_correlation(template, image, mode)
    np.testing.assert_allclose(
        got, seed_ncc(template, image, mode), rtol=0, atol=1e-9
    )


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_cut_out_patch_scores_one_at_its_place(ndim):
    """A patch cut from the image matches with value 1 where it was cut."""
    rng = np.random.default_rng(ndim)
    image = rng.random((30,) * ndim)
    corner = (7, 11, 4)[:ndim]
    size = (5, 6, 4)[:ndim]
    template = image[tuple(slice(c, c + s) for c, s in zip(corner, size))]
    ncc = normalized_cross_correlation(template, image, "valid")
    peak = np.unravel_index(np.argmax(ncc), ncc.shape)
    assert peak == corner
    assert ncc[peak] == pytest.approx(1.0, abs=1e-12)
    full = normalized_cross_correlation(template, image, "full")
    assert np.unravel_index(np.argmax(full), full.shape) == tuple(
        c + s - 1 for c, s in zip(corner, size)
    )


def test_invariant_to_gain_and_offset():
    """a * image + b (a > 0) gives the same surface in 'valid' mode."""
    rng = np.random.default_rng(2)
    image = rng.random((40, 45))
    template = rng.random((7, 9))
    base = normalized_cross_correlation(template, image, "valid")
    scaled = normalized_cross_correlation(
        3.5 * template - 2, 1e3 * image + 7e4, "valid"
    )
    np.testing.assert_allclose(scaled, base, rtol=0, atol=1e-11)


def test_negated_template_gives_negated_surface():
    rng = np.random.default_rng(3)
    image = rng.random((25, 25))
    template = rng.random((5, 5))
    np.testing.assert_allclose(
        normalized_cross_correlation(-template, image),
        -normalized_cross_correlation(template, image),
        atol=1e-13,
    )


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_values_stay_in_range(mode):
    """Exact matches and anti-matches never step outside [-1, 1]."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 3, size=(60, 60)).astype(float)
    template = image[10:20, 10:20]
    for t in (template, -template, template * 1e-8):
        ncc = normalized_cross_correlation(t, image, mode)
        assert ncc.max() <= 1.0
        assert ncc.min() >= -1.0


def test_flat_windows_are_exactly_zero():
    """Windows without variance give 0 exactly, also far from zero mean."""
    rng = np.random.default_rng(5)
    image = rng.random((200, 220)) * 50
    image[40:120, 60:170] = 1234.5678  # flat, far above the image mean
    template = rng.random((15, 15))
    ncc = normalized_cross_correlation(template, image, "valid")
    inside = ncc[40 : 120 - 14, 60 : 170 - 14]
    assert np.all(inside == 0.0)
    assert np.count_nonzero(ncc) > 0.5 * ncc.size


def test_flat_windows_beside_bright_texture_are_exactly_zero():
    """Running sums that passed through values a million times larger
    still leave flat windows at exactly 0, in every tile of a large image."""
    rng = np.random.default_rng(7)
    image = np.full((700, 3000), 7.0)
    image[:, :1500] += rng.standard_normal((700, 1500)) * 1e6
    image[300:400, 1500:] += rng.standard_normal((100, 1500)) * 1e6
    ncc = normalized_cross_correlation(rng.random((101, 101)), image, "valid")
    # Windows in the flat part that miss the bright band.
    flat = ncc[np.r_[0:200, 400:600], 1500:]
    assert np.all(flat == 0.0)
    assert np.count_nonzero(ncc[:, :1400]) == ncc[:, :1400].size


def test_flat_windows_in_a_volume_are_exactly_zero():
    """In 3-D the box sums come from tables summed over two axes: flat
    windows after bright texture along either of them still give 0."""
    rng = np.random.default_rng(8)
    volume = np.full((40, 50, 60), -3.0)
    volume[:15] += rng.standard_normal((15, 50, 60)) * 1e4
    volume[:, :20] += rng.standard_normal((40, 20, 60)) * 1e4
    ncc = normalized_cross_correlation(rng.random((6, 7, 8)), volume, "valid")
    assert np.all(ncc[15:, 20:] == 0.0)
    assert np.count_nonzero(ncc[:10]) == ncc[:10].size


def test_flat_template_gives_zero_everywhere():
    rng = np.random.default_rng(6)
    image = rng.random((30, 30))
    ncc = normalized_cross_correlation(np.full((5, 5), 0.1), image)
    assert np.all(ncc == 0.0)
    assert not np.any(np.isnan(ncc))


def test_uint16_with_large_offset_keeps_double_precision(kernel_path):
    """uint16 data near 60000 matches brute force to 1e-9 (no cancellation)."""
    rng = np.random.default_rng(7)
    image = (60000 + rng.integers(0, 300, size=(48, 52))).astype(np.uint16)
    template = image[10:22, 30:45].copy()
    got = normalized_cross_correlation(template, image, "full")
    expected = brute_force_ncc(template, image, "full")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    peak = np.unravel_index(np.argmax(got), got.shape)
    assert peak == (10 + 11, 30 + 14)


def test_float32_input_keeps_double_precision(kernel_path):
    rng = np.random.default_rng(8)
    image = (5000 + 100 * rng.random((40, 41))).astype(np.float32)
    template = image[5:14, 20:33]
    got = normalized_cross_correlation(template, image, "same")
    expected = brute_force_ncc(template, image, "same")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_single_precision_fft_is_close_and_finds_same_peak():
    rng = np.random.default_rng(9)
    image = rng.random((300, 280))
    template = image[100:141, 50:91] + 0.1 * rng.random((41, 41))
    double = normalized_cross_correlation(template, image, "valid")
    single = normalized_cross_correlation(
        template, image, "valid", fft_precision="single"
    )
    assert np.abs(single - double).max() < 1e-4
    assert np.argmax(single) == np.argmax(double)


def test_integer_and_bool_inputs_are_accepted():
    image = np.zeros((12, 12), dtype=bool)
    image[3:6, 4:8] = True
    got = normalized_cross_correlation(image[2:7, 3:9], image, "valid")
    assert np.unravel_index(np.argmax(got), got.shape) == (2, 3)


def test_2d_name_is_the_same_function():
    rng = np.random.default_rng(10)
    image, template = rng.random((20, 20)), rng.random((4, 4))
    np.testing.assert_array_equal(
        normalized_cross_correlation_2d(template, image, "same"),
        normalized_cross_correlation(template, image, "same"),
    )


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(4, 14), min_size=1, max_size=3),
    data=st.data(),
)
def test_property_patch_found_at_its_offset(shape, data):
    """For any shape and offset, a cut-out patch is found where it was cut."""
    size = [data.draw(st.integers(2, s)) for s in shape]
    corner = [data.draw(st.integers(0, s - t)) for s, t in zip(shape, size)]
    seed = data.draw(st.integers(0, 2**32 - 1))
    image = np.random.default_rng(seed).random(shape)
    patch = image[tuple(slice(c, c + t) for c, t in zip(corner, size))]
    ncc = normalized_cross_correlation(patch, image, "valid")
    # Window sums are exact to a few eps of the image's whole energy: a
    # nearly flat patch (little energy of its own) gets that much less.
    energy = np.sum(np.square(image - image.mean()))
    own = max(np.sum(np.square(patch - patch.mean())), 1e-300)
    tolerance = 1e-9 + 32 * np.finfo(float).eps * energy / own
    assert ncc.max() == pytest.approx(1.0, abs=tolerance)
    assert ncc[tuple(corner)] == pytest.approx(1.0, abs=tolerance)
    assert ncc.max() <= 1.0 and ncc.min() >= -1.0


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(3, 9), min_size=1, max_size=2),
    mode=st.sampled_from(["full", "same", "valid"]),
    data=st.data(),
)
def test_property_equals_brute_force(shape, mode, data):
    size = [data.draw(st.integers(1, s)) for s in shape]
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 4, size=shape).astype(float)
    template = rng.integers(0, 4, size=size).astype(float)
    np.testing.assert_allclose(
        normalized_cross_correlation(template, image, mode),
        brute_force_ncc(template, image, mode),
        rtol=0,
        atol=1e-9,
    )


# --- bad input -------------------------------------------------------------


def test_template_with_more_dims_than_image():
    with pytest.raises(ValueError, match=r"more dimensions.*swapped"):
        normalized_cross_correlation(np.ones((3, 3, 3)), np.ones((9, 9)))


def test_template_larger_than_image_names_axis():
    with pytest.raises(ValueError, match=r"larger than image.*axis \[1\]"):
        normalized_cross_correlation(np.ones((3, 12)), np.ones((9, 9)))


@pytest.mark.parametrize("which", ["template", "image"])
def test_empty_arrays(which):
    arrays = {"template": np.ones((3, 3)), "image": np.ones((9, 9))}
    arrays[which] = np.ones((0, 3))
    with pytest.raises(ValueError, match=f"{which} is empty"):
        normalized_cross_correlation(**arrays)


def test_nan_is_counted_and_located():
    image = np.ones((9, 9))
    image[2, 5] = np.nan
    image[7, 1] = np.inf
    with pytest.raises(
        ValueError, match=r"image holds 2 non-finite.*\(2, 5\)"
    ):
        normalized_cross_correlation(np.ones((3, 3)), image)


@pytest.mark.parametrize(
    "bad", [np.ones((3, 3), complex), np.array([["a", "b"], ["c", "d"]])]
)
def test_complex_and_text_are_refused(bad):
    with pytest.raises(ValueError, match="template"):
        normalized_cross_correlation(bad, np.ones((9, 9)))


def test_unknown_mode_and_precision():
    with pytest.raises(ValueError, match="mode must be one of"):
        normalized_cross_correlation(np.ones((3, 3)), np.ones((9, 9)), "wrap")
    with pytest.raises(ValueError, match="fft_precision"):
        normalized_cross_correlation(
            np.ones((3, 3)), np.ones((9, 9)), fft_precision="half"
        )


def test_workspace_reuses_arrays_and_stays_bounded():
    from napari_normxcorr.core._parallel import Workspace

    workspace = Workspace(limit=1000)
    first = workspace.get("a", (10,))  # 80 bytes
    assert workspace.get("a", (10,)) is first
    big = workspace.get("b", (120,))  # 960 bytes: over the limit
    assert workspace.get("b", (120,)) is big
    assert workspace.get("a", (10,)) is not first  # dropped to make room


def test_each_thread_keeps_its_own_workspace():
    import threading

    from napari_normxcorr.core._parallel import thread_workspace

    mine = thread_workspace()
    assert thread_workspace() is mine
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(thread_workspace()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
