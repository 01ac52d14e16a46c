"""grid_points: a regular grid of points, inside margins, off masked pixels."""

import numpy as np
import pytest

from napari_normxcorr.fields._grid import grid_points


@pytest.mark.parametrize(
    ("shape", "spacing", "margin"),
    [((120, 200), 10, 15), ((64, 64), (8, 16), 0), ((40, 50, 60), 7, 5)],
)
def test_points_are_evenly_spaced_inside_the_margins(shape, spacing, margin):
    points = grid_points(shape, spacing, margin=margin)
    step = np.broadcast_to(spacing, (len(shape),))
    for axis, (n, s) in enumerate(zip(shape, step)):
        values = np.unique(points[:, axis])
        np.testing.assert_allclose(np.diff(values), s)
        assert values.min() >= margin and values.max() <= n - 1 - margin
        # As many as fit: one more step would cross a margin.
        assert values.max() + s > n - 1 - margin or values.min() - s < margin
        # Centred: the rooms left at both ends differ by at most a pixel.
        room = (values.min() - margin, n - 1 - margin - values.max())
        assert abs(room[0] - room[1]) <= 1
    counts = [len(np.unique(points[:, a])) for a in range(len(shape))]
    assert len(points) == np.prod(counts)


def test_whole_pixel_positions_for_whole_spacings():
    points = grid_points((101, 77), 10)
    np.testing.assert_array_equal(points, np.rint(points))


def test_masked_pixels_are_skipped():
    mask = np.zeros((100, 100), dtype=bool)
    mask[:, :50] = True  # the left half holds no data
    every = grid_points((100, 100), 10)
    kept = grid_points((100, 100), 10, mask=mask)
    np.testing.assert_array_equal(kept, every[every[:, 1] >= 50])


def test_default_margin_is_half_a_spacing():
    points = grid_points((100, 100), 20)
    assert points.min() >= 10 and points.max() <= 89


def test_an_image_smaller_than_its_margins_has_no_points():
    assert grid_points((10, 10), 5, margin=6).shape == (0, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing": 0}, "spacing must be finite and > 0"),
        ({"spacing": np.nan}, "spacing must be finite and > 0"),
        ({"spacing": (5, np.inf)}, "spacing must be finite and > 0"),
        ({"spacing": (5, 5, 5)}, "spacing has 3 entries"),
        ({"spacing": 5, "margin": -1}, "margin must be finite and >= 0"),
        ({"spacing": 5, "margin": np.nan}, "margin must be finite and >= 0"),
        ({"spacing": 5, "mask": np.zeros((3, 3), bool)}, "mask has shape"),
    ],
)
def test_bad_arguments_say_which(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grid_points((20, 20), **kwargs)
