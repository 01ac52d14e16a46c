"""Strain of tracked and matched points against a speckle series of known
uniaxial tension (DIC), and the displacement field of each frame."""

import numpy as np
import pytest

import ground_truth as gt
from napari_normxcorr import displacement_field, match_points, track_points


@pytest.fixture(scope="module")
def tension():
    stack, maps = gt.speckle_series(
        shape=(220, 220), strains=(0.0, 0.01, 0.02)
    )
    centre = (np.asarray(stack.shape[1:]) - 1) / 2
    axis = np.arange(-2, 3) * 28.0
    nodes = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    nodes += centre
    points = np.column_stack([np.zeros(len(nodes)), nodes])
    result = track_points(stack, points, template_radius=15, search_radius=22)
    return stack, maps, nodes, result


def green(map_):
    a = map_.matrix
    return 0.5 * (a.T @ a - np.eye(2))


def test_window_strain_of_uniaxial_tension(tension):
    """The strain window's Green strain: mean within 2e-4 of the truth and
    spread across the nodes under 6.6e-4 (muDIC's own on such series);
    the subsets' own shape functions are unbiased but noisier."""
    _, maps, _, result = tension
    truth = green(maps[-1])
    window = result.strain()[:, -1]
    assert result.ok[:, -1].all()
    error = window - truth
    assert np.abs(np.nanmean(error, axis=0)).max() < 2e-4
    assert np.nanstd(error[:, 1, 1]) < 6.6e-4
    subset = result.strain(method="subset")[:, -1]
    assert abs(np.nanmean(subset[:, 1, 1]) - truth[1, 1]) < 5e-4
    assert np.nanstd(subset[:, 1, 1]) > np.nanstd(window[:, 1, 1])
    assert np.allclose(result.strain()[:, 0], 0.0, atol=1e-12)


def test_strain_of_matched_points(tension):
    """MatchResult.strain: from each warp, or from a strain window."""
    stack, maps, nodes, _ = tension
    result = match_points(
        stack[0], stack[-1], nodes, template_radius=15, search_radius=22
    )
    truth = green(maps[-1])
    for method in ("subset", "window"):
        e = result.strain(method=method)
        assert abs(np.nanmean(e[:, 1, 1]) - truth[1, 1]) < 5e-4
    with pytest.raises(ValueError, match="method"):
        result.strain(method="gauss")


def test_a_field_per_frame(tension):
    """displacement_field of a TrackResult: frame t's field is the map of
    frame t minus the identity, between the tracked points."""
    stack, maps, _, result = tension
    fields = displacement_field(result, stack.shape[1:])
    assert fields.shape == (3, 2, *stack.shape[1:])
    probe = np.array([[100.0, 95.0], [120.0, 130.0]])
    for t, map_ in enumerate(maps):
        truth = map_.forward(probe) - probe
        got = fields[t][:, probe[:, 0].astype(int), probe[:, 1].astype(int)].T
        np.testing.assert_allclose(got, truth, atol=0.05)
