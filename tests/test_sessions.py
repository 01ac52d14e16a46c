"""Sessions: saved to a folder of JSON and CSV, reopened in a new viewer
with the same layers: the same rows, layers and fit, without a run."""

import json

import numpy as np
import pytest

from helpers import choose, open_widget, run_and_wait
from napari_normxcorr._napari.session_files import (
    RESULTS,
    SESSION,
    TRANSFORM,
    read_result,
)
from napari_normxcorr.matching._result import ROW_FIELDS
from test_register_widget import BAD, pair_viewer, similarity

MATRIX = similarity(1.5, 1.01, (4, -6))


@pytest.fixture
def saved(make_napari_viewer, qtbot, tmp_path):
    """A run with non-default settings and a fit, saved to a folder."""
    viewer = pair_viewer(make_napari_viewer(), MATRIX)
    widget = open_widget(viewer)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    widget.template_radius.value = 12
    widget.max_displacement.value = (20, 22)
    widget.neighbours.value = False
    widget.min_score.value = 0.6
    run_and_wait(widget)
    widget.register.model.value = "similarity"
    assert widget.register.fit() is not None
    folder = tmp_path / "session"
    assert widget.save_session(folder)
    return widget, folder


def assert_same_result(a, b):
    for name in ROW_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_the_folder_is_readable_and_versioned(saved):
    widget, folder = saved
    record = json.loads((folder / SESSION).read_text())
    assert record["format"] == "napari-normxcorr session"
    assert record["version"] == 1
    assert record["layers"]["template"] == "before"
    assert record["layers"]["target"] == "after"
    assert record["layers"]["points"] == "pois"
    assert record["settings"]["template_radius"] == 12
    assert record["settings"]["max_displacement"] == [20, 22]
    assert record["settings"]["search_radius"] == [32, 34]
    assert record["settings"]["transform_model"] == "similarity"
    header = (folder / RESULTS).read_text().splitlines()[0].split(",")
    assert header[:3] == ["index", "axis-0", "axis-1"]
    assert "status" in header and "score" in header
    result, world = read_result(folder / RESULTS)
    assert_same_result(result, widget.result)
    np.testing.assert_array_equal(world, widget.session.world)
    assert (folder / TRANSFORM).exists()


def test_a_session_reopens_in_a_new_viewer(
    saved, make_napari_viewer, qtbot, monkeypatch
):
    """Same rows, layers, table, settings and fit; nothing is run."""
    widget, folder = saved
    viewer = pair_viewer(make_napari_viewer(), MATRIX)
    again = open_widget(viewer)
    monkeypatch.setattr(
        "napari_normxcorr._napari.jobs.match_in_chunks",
        lambda *args: pytest.fail("a session must not run"),
    )
    assert again.load_session(folder)
    assert again.template_layer.value == viewer.layers["before"]
    assert again.points_layer.value == viewer.layers["pois"]
    assert again.template_radius.value == 12
    assert tuple(again.search_radius.value) == (32, 34)
    assert again.min_score.value == pytest.approx(0.6)
    assert again.neighbours.value is False
    assert_same_result(again.result, widget.result)
    for suffix in (" matched", " displacement", " NCC surface"):
        assert "pois" + suffix in viewer.layers
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data,
        widget._viewer.layers["pois matched"].data,
    )
    assert again.table.model.rowCount() == len(widget.result)
    fit = again.register.current_fit
    np.testing.assert_array_equal(
        fit.matrix, widget.register.current_fit.matrix
    )
    assert again.register.fit_label.value == widget.register.fit_label.value
    assert str(again.result.status[BAD]) == "transform outlier"
    assert again.register.apply()
    # A live edit matches again from the loaded result.
    data = viewer.layers["pois"].data.copy()
    data[0] += 1.0
    viewer.layers["pois"].data = data
    again.wait_until_done(30)
    assert str(again.result.status[0]) == "ok"
    assert again.result.points[0] == pytest.approx(data[0])


def test_missing_layers_are_refused(
    saved, make_napari_viewer, qtbot, monkeypatch
):
    _, folder = saved
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((20, 20)), name="before")
    again = open_widget(viewer)
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", shown.append
    )
    assert not again.load_session(folder)
    assert shown == [
        "Cannot load the session: it needs the layer(s) 'after', 'pois', "
        "not in this viewer: open them (same names) and load again."
    ]
    assert again.result is None
    assert len(viewer.layers) == 1


def test_nothing_to_save_before_a_run(
    viewer_with_pair, qtbot, tmp_path, monkeypatch
):
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", shown.append
    )
    widget = open_widget(viewer_with_pair)
    assert not widget.save_session(tmp_path / "s")
    assert shown == ["Nothing to save: run the matching first."]
    assert not (tmp_path / "s").exists()


def test_a_newer_session_is_refused(saved, qtbot, monkeypatch):
    widget, folder = saved
    record = json.loads((folder / SESSION).read_text())
    record["version"] = 2
    (folder / SESSION).write_text(json.dumps(record))
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", shown.append
    )
    assert not widget.load_session(folder)
    assert "version 2" in shown[-1] and "reads version 1" in shown[-1]
