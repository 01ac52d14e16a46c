"""The widget's Register section: a transform fitted to the matches, and
the target image overlaid on the template through it.

The fit maps template pixels to target pixels (``TransformFit.matrix``);
the target layer overlays the template when its data-to-world map becomes
the template's composed with the inverse fit. Only the target layer's
``affine`` changes (and Undo puts it back); input data never do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton

from ..matching._result import MatchResult, Status
from ..registration import TooFewMatches
from ..registration._transform import MODELS, TransformFit, fit_transform
from . import jobs
from .fit_advice import too_few_advice, two_motions_note
from .fit_products import FitProducts
from .pairs import HandPairs
from .session import MatchOptions, MatchSession, RunInputs

if TYPE_CHECKING:
    import napari


def unflagged(result: MatchResult) -> MatchResult:
    """A copy of `result` as matching left it: no transform columns.

    Rows an earlier fit called ``transform outlier`` were ``ok`` matches;
    a new fit (maybe of another model) judges them again.
    """
    fresh = result.take(np.arange(len(result)))
    status = fresh.status.copy()
    status[status == Status.TRANSFORM_OUTLIER] = Status.OK
    fresh.status = status
    fresh.transform_residual = np.full(len(result), np.nan)
    fresh.transform_inlier = np.zeros(len(result), dtype=bool)
    return fresh


def in_matched_axes(result: MatchResult, options: MatchOptions) -> MatchResult:
    """`result` with the matched axes' coordinates only (the last ones):
    leading plane coordinates (t, z in a time lapse) are not fitted."""
    d = len(options.search_radius)
    return replace(
        result, points=result.points[:, -d:], matched=result.matched[:, -d:]
    )


_TIPS = {
    "fit": "Fit the transform to the matches (after a Run)",
    "refine": "Match again through the fit (rotation and scale undone) and "
    "refit, until the fit settles",
    "label": "The fitted model, its inliers and RMS residual",
    "apply": "Set the target layer's affine so that it lies on the "
    "template (its data are not touched)",
    "undo": "Put back the target layer's affine",
    "export": "Write the fit as JSON",
    "load": "Read a fit written by Export fit or register -o; it guides "
    "Refine, Apply and the warped target",
    "warp": "Add the target resampled onto the template's grid",
}


def _button(text: str, tooltip: str) -> PushButton:
    """A button, disabled until it can act."""
    return PushButton(text=text, enabled=False, tooltip=tooltip)


def register_controls() -> tuple[Any, ...]:
    """The tab's controls, top to bottom: model, robust, Fit, Refine, the
    fit's label, Apply, Undo apply, Export, Load, warped target and side
    by side."""
    model = ComboBox(
        choices=MODELS,
        value="affine",
        label="transform model",
        tooltip="Template pixels -> target pixels; projective in 2-D only",
    )
    robust = CheckBox(
        value=True,
        text="robust fit (RANSAC)",
        tooltip="Leave matches off the model out of the fit; they "
        "become 'transform outlier'",
    )
    label = Label(
        value="No transform fitted", label="fit", tooltip=_TIPS["label"]
    )
    side_by_side = CheckBox(
        value=False,
        text="side by side",
        tooltip="Grid view: the template and its points beside the "
        "target and its matches",
    )
    return (
        model,
        robust,
        _button("Fit", _TIPS["fit"]),
        _button("Refine matches", _TIPS["refine"]),
        label,
        _button("Apply to target layer", _TIPS["apply"]),
        _button("Undo apply", _TIPS["undo"]),
        _button("Export fit…", _TIPS["export"]),
        PushButton(text="Load fit…", tooltip=_TIPS["load"]),
        _button("Add warped target", _TIPS["warp"]),
        side_by_side,
    )


class RegisterSection(Container):
    """Fit a transform to the session's matches; overlay the images.

    Parameters
    ----------
    session : MatchSession
        Holds the matches to fit; a fit flags them (``replace``).
    viewer : napari.Viewer
        Where the target layer is overlaid and the warped target added.
    redraw_outputs : callable
        Draws the output layers again (the target moved in world, or the
        matches were matched again).
    report_error : callable
        Called with the exception when the refinement worker fails.
    images : callable
        The picked template and target Image layers (pairs by hand).

    Attributes
    ----------
    current_fit : TransformFit or None
        The fit of the session's current matches; None before a fit and
        after the matches change.
    """

    def __init__(
        self,
        session: MatchSession,
        viewer: napari.Viewer,
        redraw_outputs: Callable[[], None],
        report_error: Callable[[Exception], None],
        images: Callable[[], tuple[Any, Any]],
    ):
        super().__init__()
        self._images = images
        self._session = session
        self._viewer = viewer
        self._redraw_outputs = redraw_outputs
        self._report_error = report_error
        self.current_fit: TransformFit | None = None
        self._guide = False
        self._worker: Any = None
        # Our own session.replace: not a change that voids the fit.
        self._replacing = False
        # Counts the session's changes: a refinement of older matches is
        # dropped.
        self._changes = 0
        self._products = FitProducts(
            viewer, session, self._fit_and_inputs, redraw_outputs
        )
        self._add_controls()
        self._add_callbacks()

    def _add_controls(self) -> None:
        (
            self.model,
            self.robust,
            self.fit_button,
            self.refine_button,
            self.fit_label,
            self.apply_button,
            self.undo_apply_button,
            self.export_button,
            self.load_button,
            self.warp_button,
            self.side_by_side,
        ) = controls = register_controls()
        self.extend(controls)
        self.pairs = HandPairs(
            self._viewer,
            self._images,
            lambda: str(self.model.value),
            lambda fit, label: self.use_fit(fit, label, guide=True),
        )
        self.extend(self.pairs.widgets)

    def _add_callbacks(self) -> None:
        # QPushButton.clicked passes a bool: wrap the calls.
        self.fit_button.changed.connect(lambda: self.fit())
        self.refine_button.changed.connect(lambda: self.refine())
        self.apply_button.changed.connect(lambda: self.apply())
        self.undo_apply_button.changed.connect(lambda: self.undo_apply())
        self.export_button.changed.connect(
            lambda: self._products.export_dialog(self.native)
        )
        self.load_button.changed.connect(
            lambda: self._products.load_dialog(self.native, self.load_fit)
        )
        self.warp_button.changed.connect(lambda: self.add_warped())
        self.side_by_side.changed.connect(self._on_side_by_side)
        self._session.changed.connect(self._on_changed)
        self._session.started.connect(self._on_changed)

    @property
    def busy(self) -> bool:
        """Whether a refinement is running."""
        return self._worker is not None

    # --- fitting ------------------------------------------------------

    def fit(self) -> TransformFit | None:
        """Fit the chosen model to the matches and flag them.

        Returns the fit, or None when there is nothing to fit (a
        notification says why; nothing changes). With too few ok matches
        for the model, the model switches to the one they support.
        """
        from napari.utils.notifications import show_info, show_warning

        try:
            inputs = self._inputs()
            assert self._session.result is not None  # _inputs checked it
            fresh = unflagged(self._session.result)
            fit = fit_transform(
                in_matched_axes(fresh, inputs.options),
                model=self.model.value,
                robust=self.robust.value,
            )
        except TooFewMatches as error:
            assert self._session.result is not None  # _inputs checked it
            message, model = too_few_advice(error, self._session.result)
            if model is not None:
                self.model.value = model
            show_warning(message)
            return None
        except ValueError as error:
            show_warning(str(error))
            return None
        self._keep(fit, fit.flag(fresh))
        note = two_motions_note(fresh, fit.matrix)
        if note is not None:
            show_info(note)
        return fit

    def _keep(self, fit: TransformFit, flagged: MatchResult) -> None:
        """Show `fit` and its flagged matches in every view."""
        self._replacing = True
        try:
            self._session.replace(flagged)
        finally:
            self._replacing = False
        self.use_fit(fit, fit.summary, guide=False)

    def use_fit(self, fit: TransformFit, label: str, guide: bool) -> None:
        """Make `fit` the current fit, described by `label`.

        A `guide` fit (loaded, or fitted to pairs clicked by hand) is not
        a fit of the session's matches: it stays when they change, and
        guides Refine of whatever matches there are.
        """
        self.current_fit = fit
        self._guide = guide
        self.fit_label.value = label
        self._update_buttons()

    def load_fit(self, path: str | Path) -> TransformFit | None:
        """Make the fit in `path` (`FitProducts.load`) the current, guide
        fit; None when the file holds none (a notification says why)."""
        fit = self._products.load(path)
        if fit is not None:
            self.use_fit(fit, f"{fit.summary} (from {Path(path).name})", True)
        return fit

    def _update_buttons(self, *_: Any) -> None:
        """Buttons enabled only when they can act: Fit and Refine with
        matches, the rest with a fit."""
        idle = self._worker is None
        has_matches = self._session.result is not None
        for button in (self.fit_button, self.refine_button):
            button.enabled = idle and has_matches
        has_fit = self.current_fit is not None
        for button in (
            self.apply_button,
            self.export_button,
            self.warp_button,
        ):
            button.enabled = has_fit

    def _on_changed(self, rows: list[int] | None = None) -> None:
        if self._replacing:
            return
        self._changes += 1
        if self.current_fit is not None and not self._guide:
            self.current_fit = None
            self.fit_label.value = "The matches changed: fit again"
        self._update_buttons()

    # --- guided refinement --------------------------------------------

    def refine(self) -> Any:
        """Match the points again guided by the fit, and refit, until the
        fit settles (the engine's ``register``), in a background worker.

        Fits first when there is no fit. Returns the started worker, or
        None when there is nothing to refine (a notification says why).
        """
        from napari.utils.notifications import show_warning

        fit = self.current_fit if self.current_fit is not None else self.fit()
        if fit is None:
            return None
        try:
            _, inputs = self._fit_and_inputs()
        except ValueError as error:
            show_warning(str(error))
            return None
        assert self._session.result is not None  # _inputs checked it
        job = partial(
            jobs.register_matches,
            model=self.model.value,
            robust=self.robust.value,
        )
        changes = self._changes
        self._set_running(True)
        self._worker = jobs.start(
            job,
            inputs,
            self._session.result.points,
            fit.matrix,
            session=self._session,
            on_result=lambda found: self._on_refined(found, changes),
            on_error=self._report_error,
            on_finished=lambda: self._set_running(False),
            progress={"desc": "Refining matches"},
        )
        return self._worker

    def _set_running(self, running: bool) -> None:
        if not running:
            self._worker = None
        self.fit_button.enabled = not running
        self.refine_button.enabled = not running
        if not running:
            self._update_buttons()

    def _on_refined(self, fit: TransformFit, changes: int) -> None:
        """Show the guided matches, unless the matches changed since."""
        from napari.utils.notifications import show_info

        try:
            self._inputs()
        except ValueError:
            return  # a layer of the matches is gone, or the viewer closed
        if changes != self._changes:
            show_info("The matches changed meanwhile: refine again.")
            return
        # register always returns its matches: new positions of the same
        # points (rows), so replace keeps the rows.
        assert fit.matches is not None
        self._keep(fit, fit.matches)
        self._redraw_outputs()

    # --- the target overlaid on the template, and other products ---

    def apply(self) -> bool:
        """Set the target layer's ``affine`` so that it overlays the
        template; False when it cannot (a notification says why)."""
        done = self._products.apply()
        self.undo_apply_button.enabled = self._products.applied
        return done

    def undo_apply(self) -> bool:
        """Put back the affine the moved layers had; False when none
        was moved."""
        done = self._products.undo_apply()
        self.undo_apply_button.enabled = self._products.applied
        return done

    def export_json(self, path: str | Path) -> None:
        """Write the fit and its matches as JSON (`FitProducts`)."""
        self._products.export_json(path)

    def add_warped(self) -> napari.layers.Image | None:
        """Add the target resampled into the template's grid (see
        `FitProducts.add_warped`); None when there is no fit."""
        return self._products.add_warped()

    def _inputs(self) -> RunInputs:
        """The inputs of the matches, while their layers are all here."""
        inputs = self._session.inputs
        if inputs is None or self._session.result is None:
            raise ValueError("Run the matching first: there are no matches.")
        layers = self._viewer.layers
        mine = (inputs.template_layer, inputs.image_layer, inputs.points_layer)
        if any(layer not in layers for layer in mine):
            raise ValueError("A layer of the matches was removed: run again.")
        return inputs

    def _fit_and_inputs(self) -> tuple[TransformFit, RunInputs]:
        if self.current_fit is None:
            raise ValueError("Fit a transform first.")
        return self.current_fit, self._inputs()

    def _on_side_by_side(self, on: bool) -> None:
        if not self._products.side_by_side(on):
            self.side_by_side.value = False
