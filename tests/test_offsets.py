"""The seed's API: find_template_offset(_centered) and debug output."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from napari_normxcorr import (
    find_template_offset,
    find_template_offset_centered,
    visualize_cross_correlation,
)


@pytest.fixture
def textured():
    return np.random.default_rng(0).random((120, 140))


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_offset_is_top_left_corner_in_every_mode(textured, mode):
    template = textured[37:58, 81:100]
    *offset, fit = find_template_offset(template, textured, mode=mode)
    assert offset == [37, 81]
    assert all(isinstance(o, int) for o in offset)
    assert fit == pytest.approx(1.0)


def test_offset_in_3d():
    """N-D: one offset per axis (the seed's flips broke this)."""
    volume = np.random.default_rng(1).random((20, 22, 24))
    template = volume[3:9, 10:15, 7:19]
    assert find_template_offset(template, volume)[:3] == (3, 10, 7)


def test_subpixel_offset_of_a_smooth_shift():
    """Sub-pixel shifts come back to within 0.2 px.

    A three-point parabola on the NCC surface is biased toward whole pixels;
    match_points has the accurate refinement.
    """
    from scipy import ndimage

    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.random((80, 80)), 3)
    shifted = ndimage.shift(image, (0.5, -0.3), order=3)
    template = image[25:50, 30:55]
    y, x, _ = find_template_offset(template, shifted, subpixel=True)
    assert y == pytest.approx(25.5, abs=0.2)
    assert x == pytest.approx(29.7, abs=0.2)
    assert (y, x) != (25, 30)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_centered_recovers_known_shift(textured, mode):
    """POI displacement = known shift; windows are (2r + 1) and centred."""
    moved = np.roll(textured, (4, -7), axis=(0, 1))
    result = find_template_offset_centered(
        textured, moved, (60, 70), (60, 70), 10, 25, mode=mode
    )
    assert result[:2] == (4, -7)
    assert result[2] == pytest.approx(1.0)


def test_centered_window_is_2r_plus_1_and_centred(textured):
    """The template window handed to the correlation is 21 x 15 here."""
    seen = {}

    def adjust(image, *bounds):
        seen["bounds"] = bounds
        return (0, 0, 0, 0)

    find_template_offset_centered(
        textured,
        textured,
        (50, 60),
        (50, 60),
        (10, 7),
        20,
        adjust_template=adjust,
    )
    assert seen["bounds"] == (40, 61, 53, 68)


@pytest.mark.parametrize(
    "centre", [(1, 5), (117, 138), (0, 70), (60, 139), (119, 3)]
)
@pytest.mark.parametrize("mode", ["full", "valid"])
def test_centered_exact_under_edge_clipping(centre, mode):
    """Near the border both windows are clipped; the offset stays exact."""
    base = np.random.default_rng(4).random((140, 160))
    template_image = base[10:130, 10:150]
    # moved[y, x] = template_image[y - 5, x - 5]: content moves by (5, 5),
    # and every template window stays inside `moved`.
    moved = base[5:135, 5:155]
    dy, dx, fit = find_template_offset_centered(
        template_image, moved, centre, centre, 6, 15, mode=mode
    )
    assert (dy, dx) == (5, 5)
    assert fit == pytest.approx(1.0)


def test_centered_float_centre_keeps_fraction(textured):
    moved = np.roll(textured, (3, 5), axis=(0, 1))
    dy, dx, _ = find_template_offset_centered(
        textured, moved, (40.25, 50.0), (40, 50), 8, 20
    )
    assert (40 + dy, 50 + dx) == pytest.approx((43.25, 55.0))


def test_centered_3d():
    volume = np.random.default_rng(3).random((30, 32, 34))
    moved = np.roll(volume, (1, -2, 3), axis=(0, 1, 2))
    result = find_template_offset_centered(
        volume, moved, (15, 16, 17), (15, 16, 17), 4, 8
    )
    assert result[:3] == (1, -2, 3)


def test_adjust_template_shrinks_window(textured):
    moved = np.roll(textured, (4, -7), axis=(0, 1))
    result = find_template_offset_centered(
        textured,
        moved,
        (60, 70),
        (60, 70),
        10,
        25,
        adjust_template=lambda image, y0, y1, x0, x1: (3, 1, 2, 4),
    )
    assert result[:2] == (4, -7)


# --- bad input ---------------------------------------------------------


def test_negative_radius(textured):
    with pytest.raises(ValueError, match="template_radius must be >= 0"):
        find_template_offset_centered(textured, textured, (5, 5), (5, 5), -1)


def test_centre_outside_image(textured):
    with pytest.raises(ValueError, match=r"image_center .* outside"):
        find_template_offset_centered(
            textured, textured, (5, 5), (500, 5), 3, 9
        )


def test_centre_with_wrong_length(textured):
    with pytest.raises(ValueError, match="template_center must have 2"):
        find_template_offset_centered(textured, textured, (5,), (5, 5))


def test_template_window_larger_than_search_window(textured):
    with pytest.raises(ValueError, match="make image_radius larger"):
        find_template_offset_centered(
            textured, textured, (50, 50), (50, 50), 20, 5
        )


def test_nan_in_window_is_reported(textured):
    image = textured.copy()
    image[50, 52] = np.nan
    with pytest.raises(ValueError, match="image window holds 1 non-finite"):
        find_template_offset_centered(
            textured, image, (50, 50), (50, 50), 3, 9
        )


def test_swapped_arguments_are_named():
    with pytest.raises(ValueError, match="swapped"):
        find_template_offset(np.ones((20, 20)), np.ones((5, 5)))


# --- debug output ------------------------------------------------------


def test_debug_dir_gets_pictures_and_json(textured, tmp_path):
    folder = tmp_path / "new" / "debug"
    template = textured[30:50, 40:70]
    *_, fit = find_template_offset(template, textured, debug_dir=folder)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "cross_correlation.png",
        "cross_correlation_data.json",
        "image.png",
        "template.png",
    ]
    data = json.loads((folder / "cross_correlation_data.json").read_text())
    assert data["offset"] == [30, 40]
    assert data["peak"] == [30 + 19, 40 + 29]
    assert data["peak_magnitude"] == pytest.approx(fit)
    assert iio.imread(folder / "template.png").shape == (20, 30)
    assert iio.imread(folder / "image.png").shape == (120, 140)
    surface = iio.imread(folder / "cross_correlation.png")
    assert surface.shape == (139, 169, 3)
    # The peak (+1) is drawn pure red.
    assert tuple(surface[49, 69]) == (255, 0, 0)


def test_visualize_handles_1d_and_3d(tmp_path):
    visualize_cross_correlation(
        tmp_path,
        np.arange(4.0),
        np.arange(10.0),
        np.zeros(13),
        (3,),
        0.5,
        (1,),
    )
    assert iio.imread(tmp_path / "image.png").shape == (1, 10)
    visualize_cross_correlation(
        tmp_path,
        np.ones((2, 3, 4)),
        np.ones((5, 6, 7)),
        np.zeros((6, 8, 10)),
        (1, 2, 3),
        0.25,
        (0.5, 1, 2),
    )
    assert iio.imread(tmp_path / "image.png").shape == (6, 7)
    data = json.loads((tmp_path / "cross_correlation_data.json").read_text())
    assert data == {
        "peak": [1, 2, 3],
        "peak_magnitude": 0.25,
        "offset": [0.5, 1, 2],
    }
