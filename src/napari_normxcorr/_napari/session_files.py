"""A session saved to a folder a user can read, and brought back without
running again.

The folder holds ``session.json`` (format, version, the layers by name,
every setting),
``results.csv`` (one row per point: napari's points columns at the
world position each point was matched at, every column of
``MatchResult.to_table``, and the starting guesses and covariances that
table leaves out) and, with a fit, ``transform.json``
(``TransformFit.to_json``).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io._files import write_columns
from ..matching._match import match_points
from ..matching._result import MatchResult, Status
from ..registration._transform import TransformFit
from .axes import FROM_LABELS
from .controls import SETTINGS
from .inputs import InputProblem, prepare_run
from .jobs import no_data

if TYPE_CHECKING:
    from .widget import MatchWidget

FORMAT, VERSION = "napari-normxcorr session", 1
SESSION, RESULTS, TRANSFORM = "session.json", "results.csv", "transform.json"
# The layer pickers, by their key in session.json.
_PICKERS = {
    "template": "template_layer",
    "target": "image_layer",
    "points": "points_layer",
    "template_no_data": "template_mask",
    "target_no_data": "image_mask",
}
_BOOLS = ("refined", "transform_inlier")


def result_columns(
    result: MatchResult, world: np.ndarray
) -> dict[str, np.ndarray]:
    """The CSV columns of `result`: napari's ``index, axis-*`` at `world`,
    ``to_table``, then ``image_point-*`` and ``covariance-i-j``."""
    columns: dict[str, np.ndarray] = {"index": np.arange(len(result))}
    for axis in range(world.shape[1]):
        columns[f"axis-{axis}"] = world[:, axis]
    columns.update(result.to_table())
    for axis in range(result.image_points.shape[1]):
        columns[f"image_point-{axis}"] = result.image_points[:, axis]
    d = result.covariance.shape[-1]
    for i in range(d):
        for j in range(d):
            columns[f"covariance-{i}-{j}"] = result.covariance[:, i, j]
    return columns


def read_result(path: Path) -> tuple[MatchResult, np.ndarray]:
    """The result and the world positions in a CSV `result_columns`
    wrote."""
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    names = list(rows[0]) if rows else []

    def column(name: str) -> np.ndarray:
        return np.array([float(row[name]) for row in rows])

    def axes(prefix: str) -> np.ndarray:
        found = [n for n in names if n.startswith(prefix)]
        return np.stack([column(n) for n in found], axis=-1)

    def square(prefix: str) -> np.ndarray:
        values = axes(prefix)
        d = round(np.sqrt(values.shape[1]))
        return values.reshape(len(rows), d, d)

    fields: dict[str, Any] = {
        "points": axes("point-"),
        "image_points": axes("image_point-"),
        "matched": axes("matched-"),
        "offset": axes("offset-"),
        "gradient": square("gradient-"),
        "covariance": square("covariance-"),
        "status": np.array([Status(row["status"]) for row in rows], object),
    }
    for name in (
        "score",
        "second_score",
        "distinctiveness",
        "peak_ratio",
        "uncertainty",
        "motion_gap",
        "consistency",
        "neighbour_residual",
        "transform_residual",
    ):
        fields[name] = column(name)
    for name in _BOOLS:
        fields[name] = np.array([row[name] == "True" for row in rows])
    return MatchResult(**fields), axes("axis-")


class SessionFiles:
    """Save the widget's session to a folder, and load one back.

    Parameters
    ----------
    widget : MatchWidget
        Its pickers, settings, session and Register tab.
    """

    def __init__(self, widget: MatchWidget):
        from magicgui.widgets import PushButton

        self._widget = widget
        self.save_button = PushButton(
            text="Save session…",
            tooltip="Write the layer choices, settings, results and fit "
            "to a folder (JSON and CSV)",
        )
        self.load_button = PushButton(
            text="Load session…",
            tooltip="Bring back a saved session: its output layers, table "
            "and fit, without running again",
        )
        self.save_button.changed.connect(lambda: self._dialog(self.save))
        self.load_button.changed.connect(lambda: self._dialog(self.load))

    def _dialog(self, action: Any) -> None:
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(
            self._widget.native, "Session folder"
        )
        if folder:
            action(folder)

    def controls(self) -> dict[str, Any]:
        """Every setting's control, by the name session.json gives it."""
        widget = self._widget
        display = widget.display
        found = {name: getattr(widget.settings, name) for name in SETTINGS}
        found.update(
            live=widget.live,
            ellipses=display.ellipses,
            height_field=display.height_field,
            vector_scale=display.vector_scale,
            ellipse_scale=display.ellipse_scale,
            transform_model=widget.register.model,
            robust_fit=widget.register.robust,
        )
        return found

    def save(self, path: str | Path) -> bool:
        """Write the session to the folder `path` (made if needed); False
        before a run (a notification says so)."""
        from napari.utils.notifications import show_warning

        widget = self._widget
        session = widget.session
        if session.result is None or session.inputs is None:
            show_warning("Nothing to save: run the matching first.")
            return False
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        layers = {
            key: getattr(widget, picker).value
            for key, picker in _PICKERS.items()
        }
        fit = widget.register.current_fit
        record = {
            "format": FORMAT,
            "version": VERSION,
            "layers": {
                key: None if layer is None else layer.name
                for key, layer in layers.items()
            },
            "settings": {
                name: _plain(control.value)
                for name, control in self.controls().items()
            },
            "results": RESULTS,
            "transform": None if fit is None else TRANSFORM,
        }
        (folder / SESSION).write_text(_readable(record))
        write_columns(
            folder / RESULTS, result_columns(session.result, session.world)
        )
        if fit is not None:
            fit.to_json(folder / TRANSFORM)
        return True

    def load(self, path: str | Path) -> bool:
        """Bring back the session in the folder `path` (or its
        session.json); False when it cannot (a notification says why; a
        bad file or missing layers change nothing)."""
        from napari.utils.notifications import show_warning

        folder = Path(path)
        if folder.name == SESSION:
            folder = folder.parent
        try:
            record = _read_record(folder / SESSION)
            layers = self._layers(record["layers"])
            result, world = read_result(folder / record["results"])
            fit = None
            if record.get("transform"):
                fit = TransformFit.from_json(folder / record["transform"])
        except (OSError, ValueError, KeyError) as error:
            show_warning(f"Cannot load the session: {error}")
            return False
        return self._restore(record["settings"], layers, result, world, fit)

    def _layers(self, names: dict[str, str | None]) -> dict[str, Any]:
        """The viewer's layers of the session, or ValueError naming those
        missing here."""
        viewer_layers = self._widget._viewer.layers
        missing = [
            name
            for name in names.values()
            if name is not None and name not in viewer_layers
        ]
        if missing:
            listed = ", ".join(f"'{name}'" for name in missing)
            raise ValueError(
                f"it needs the layer(s) {listed}, not in this viewer: open "
                "them (same names) and load again."
            )
        return {
            key: None if name is None else viewer_layers[name]
            for key, name in names.items()
        }

    def _restore(
        self,
        settings: dict[str, Any],
        layers: dict[str, Any],
        result: MatchResult,
        world: np.ndarray,
        fit: TransformFit | None,
    ) -> bool:
        """Pick the layers, set the settings, and show the result and fit
        as a run would have."""
        from napari.utils.notifications import show_warning

        widget = self._widget
        # A run of the Match tab: its pickers, as the first axis was said.
        widget.tabs.setCurrentIndex(0)
        widget.first_axis.value = settings.get("first_axis", FROM_LABELS)
        try:
            for key, picker in _PICKERS.items():
                getattr(widget, picker).value = layers[key]
        except ValueError as error:
            show_warning(f"Cannot load the session: {error}")
            return False
        widget._pickers.automatic = False
        controls = self.controls()
        for name, value in settings.items():
            if name in controls:
                control = controls[name]
                control.value = (
                    tuple(value) if isinstance(value, list) else value
                )
        try:
            inputs, _ = prepare_run(
                layers["template"],
                layers["target"],
                layers["points"],
                widget.match_options(),
                layers["template_no_data"],
                layers["target_no_data"],
            )
        except InputProblem as problem:
            show_warning(f"Cannot load the session: {problem}")
            return False
        result = _with_surfaces(result, inputs)
        widget.session.finish(inputs, world, result, judged=True)
        widget._results.show_table()
        with widget._outputs.keeping_active_layer():
            widget.session.show(0)
        widget._live.follow(inputs.points_layer)
        widget._results.follow(inputs.points_layer)
        if fit is not None:
            # A fit of these very rows, unless it was loaded or fitted to
            # pairs: then it only guides.
            guide = len(fit.inliers) != len(result)
            widget.register.use_fit(fit, fit.summary, guide=guide)
        return True


def _with_surfaces(result: MatchResult, inputs: Any) -> MatchResult:
    """`result` able to recompute its surfaces (from the images and
    options of `inputs`: one point matched for its matcher)."""
    if len(result) == 0:
        return result
    probe = match_points(
        inputs.template,
        inputs.target,
        result.points[:1],
        image_points=result.image_points[:1],
        **inputs.options.part_keywords(),
        **no_data(inputs),
    )
    return replace(result, _context=probe._context)


def _read_record(path: Path) -> dict[str, Any]:
    """session.json, checked: format and version."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON ({error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a napari-normxcorr session file")
    if record.get("version") != VERSION:
        raise ValueError(
            f"{path} is version {record.get('version')!r}; this "
            f"napari-normxcorr reads version {VERSION}"
        )
    return record


def _readable(record: dict[str, Any]) -> str:
    """`record` as JSON, one key a line, short lists on one line."""
    text = json.dumps(record, indent=1)
    return (
        re.sub(
            r"\[\s+([^\[\]{}]*?)\s+\]",
            lambda found: "[" + re.sub(r",\s+", ", ", found[1]) + "]",
            text,
        )
        + "\n"
    )


def _plain(value: Any) -> Any:
    """A control's value as JSON: tuples as lists, numbers as numbers."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
