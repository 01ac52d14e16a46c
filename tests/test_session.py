"""The session model: what the widget's views observe, without a viewer."""

import numpy as np
import pytest

from helpers import SHIFT, texture
from napari_normxcorr import Status, match_points
from napari_normxcorr._napari.session import MatchSession


@pytest.fixture
def session_with_result():
    """A session holding a real result of three points (no layers)."""
    base = texture((120, 130))
    points = np.array([[40.0, 50.0], [60.0, 70.0], [80.0, 60.0]])
    result = match_points(
        base,
        np.roll(base, SHIFT, axis=(0, 1)),
        points,
        template_radius=8,
        search_radius=16,
    )
    session = MatchSession()
    changes = []
    session.changed.connect(changes.append)
    session.finish(None, points, result)
    return session, changes


def test_a_finished_run_replaces_everything(session_with_result):
    session, changes = session_with_result
    assert changes == [None]
    assert list(session.result.status) == [Status.OK] * 3
    np.testing.assert_array_equal(session.world[1], [60.0, 70.0])


def test_updated_rows_are_written_in_place_and_named(session_with_result):
    session, changes = session_with_result
    result = session.result
    part = result.take([0])
    part.score[:] = 0.25
    session.update(np.array([2]), part, np.array([[1.0, 2.0]]))
    assert session.result is result, "live edits update the same result"
    assert result.score[2] == 0.25 and result.score[0] != 0.25
    np.testing.assert_array_equal(session.world[2], [1.0, 2.0])
    assert changes[-1] == [2]


def test_removed_rows_go_and_the_rest_keep_their_order(session_with_result):
    session, changes = session_with_result
    kept = session.result.points[[0, 2]].copy()
    session.remove([1])
    np.testing.assert_array_equal(session.result.points, kept)
    assert len(session.world) == 2
    assert changes[-1] is None


def test_resize_adds_unmatched_rows_and_drops_extra_ones(session_with_result):
    session, _ = session_with_result
    world = np.vstack([session.world, [[10.0, 10.0], [20.0, 20.0]]])
    session.resize(world)
    assert len(session.result) == 5
    assert list(session.result.status[3:]) == [Status.OUTSIDE_IMAGE] * 2
    assert np.isnan(session.result.matched[3:]).all()
    np.testing.assert_array_equal(session.world[4], [20.0, 20.0])
    session.resize(world[:2])
    assert len(session.result) == len(session.world) == 2


def test_selection_is_announced_once_per_change(session_with_result):
    session, _ = session_with_result
    seen = []
    session.selected.connect(seen.append)
    session.select([2, 0])
    session.select([0, 2])  # the same selection: views are not asked again
    session.select([1])
    assert seen == [[0, 2], [1]]


def test_a_new_run_voids_earlier_work(session_with_result):
    session, _ = session_with_result
    started = []
    session.started.connect(lambda: started.append(True))
    first = session.generation
    assert session.start() == first + 1
    assert started == [True]


def test_surfaces_are_asked_for_only_when_there_is_a_result():
    session = MatchSession()
    shown = []
    session.shown.connect(lambda point, surface: shown.append(point))
    session.show(0)
    assert shown == []
