"""Image pairs with an exactly known answer, to judge match_points by.

Every generator returns a :class:`GroundTruth`: the two images (float64),
where any point of the template image truly went in the target image, and,
where the motion is smooth, the true displacement gradient there. Nothing
here imports the package under test, except :func:`deformed_sample`, which
wraps the package's own sample pair.

Conventions
-----------
- Coordinates are (row, col) in pixels; pixel ``(i, j)`` is the unit square
  centred on ``(i, j)``.
- Forward convention: ``true_position(p)`` is where the content at ``p`` of
  the template image lies in the target image; the displacement is
  ``u(p) = true_position(p) - p`` and ``true_gradient(p)[i, j]`` is
  ``d u_i / d x_j`` (rows, then cols).
- Every random draw comes from ``np.random.default_rng(seed)``: the same
  arguments give the same images, bit for bit.

The cases
---------
:func:`speckle_pair`
    An analytic speckle pattern (a sum of Gaussian blobs) rendered exactly
    before and after an affine map (rotation, stretch, shear, translation),
    each pixel integrated by supersampling, plus camera noise.
:func:`particle_pair`
    PIV particle images: Gaussian particles integrated over the pixels
    exactly (error functions), moved by an analytic flow
    (:func:`uniform_flow`, :func:`solid_rotation`, :func:`shear_flow`,
    :func:`lamb_oseen`), optionally with a disc without particles.
:func:`shifted_texture`
    A real texture (scikit-image's gravel, brick or camera) and its cubic
    spline shift by a known sub-pixel amount; :func:`nan_stripe`,
    :func:`striped_nodata` and :func:`dead_pixels` punch NaN into it.
:func:`stereo_motorcycle`, :func:`deformed_sample`
    scikit-image's rectified motorcycle pair with its disparity, and the
    package's smoothly deformed sample with its field.

:func:`grid_points` lays points on a grid away from the borders;
:func:`errors` gives each matched row's distance from the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage, special

# Default sub-pixel shift of the real textures (rows, cols).
TEXTURE_SHIFT = (2.3, -1.6)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """An image pair and where every template-image point truly went.

    Attributes
    ----------
    name : str
        Short label of the case.
    template_image, image : (M, N) ndarray of float64
        The template image and the target image (NaN = no data).
    position : callable
        ``position(points) -> (K, 2)``: the true position in `image` of
        each template-image point ``(row, col)`` of ``(K, 2)`` `points`;
        NaN where there is no answer (e.g. occluded in a stereo pair).
    gradient : callable or None
        ``gradient(points) -> (K, 2, 2)``: the true displacement gradient
        ``d u_i / d x_j`` at each point; None where not meaningful.
    margin : float
        Distance (px) from the borders within which the truth is not exact
        (0 where it is exact everywhere).
    info : dict
        What made the case (the pattern, the map, the flow, the masks...).
    """

    name: str
    template_image: np.ndarray
    image: np.ndarray
    position: Callable[[np.ndarray], np.ndarray]
    gradient: Callable[[np.ndarray], np.ndarray] | None = None
    margin: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def true_position(self, points: np.ndarray) -> np.ndarray:
        """True positions in `image` of (K, 2) template-image `points`."""
        return np.asarray(self.position(_points(points)), dtype=float)

    def true_gradient(self, points: np.ndarray) -> np.ndarray | None:
        """True displacement gradients (K, 2, 2) at `points`, or None."""
        if self.gradient is None:
            return None
        return np.asarray(self.gradient(_points(points)), dtype=float)


def _points(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=float).reshape(-1, 2)


def _add_noise(
    clean: np.ndarray, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    if sigma == 0:
        return clean.copy()
    return clean + rng.normal(scale=sigma, size=clean.shape)


# ---------------------------------------------------------------------------
# (a) Deforming speckle, rendered exactly through an affine map


@dataclass(frozen=True, eq=False)
class AffineMap:
    """The map ``x -> A (x - c) + c + t`` of template to target pixels.

    Attributes
    ----------
    matrix : (2, 2) ndarray
        ``A``, in (row, col) order.
    centre : (2,) ndarray
        ``c``, the fixed point of ``A``.
    translation : (2,) ndarray
        ``t``.
    """

    matrix: np.ndarray
    centre: np.ndarray
    translation: np.ndarray

    @classmethod
    def make(
        cls,
        centre: tuple[float, float] = (0.0, 0.0),
        angle: float = 0.0,
        stretch: tuple[float, float] = (0.0, 0.0),
        shear: float = 0.0,
        translation: tuple[float, float] = (0.0, 0.0),
    ) -> AffineMap:
        """The map with ``A = R(angle) @ S``.

        ``S = [[1 + stretch[0], shear], [shear, 1 + stretch[1]]]``.

        Parameters
        ----------
        centre : (2,) tuple of float
            Centre of rotation, stretch and shear (row, col).
        angle : float
            Rotation in degrees; positive turns the pattern
            counter-clockwise as displayed (rows downwards):
            ``R = [[cos, -sin], [sin, cos]]`` in (row, col).
        stretch : (2,) tuple of float
            Normal strain along rows and along cols.
        shear : float
            Symmetric (pure) shear strain.
        translation : (2,) tuple of float
            Translation added after the linear part (px).
        """
        theta = np.deg2rad(angle)
        rotation = np.array(
            [
                [np.cos(theta), -np.sin(theta)],
                [np.sin(theta), np.cos(theta)],
            ]
        )
        strain = np.array(
            [[1.0 + stretch[0], shear], [shear, 1.0 + stretch[1]]]
        )
        return cls(
            rotation @ strain,
            np.asarray(centre, dtype=float),
            np.asarray(translation, dtype=float),
        )

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Where template-image `points` (K, 2) go in the target."""
        points = _points(points)
        return (points - self.centre) @ self.matrix.T + (
            self.centre + self.translation
        )

    def inverse(self, points: np.ndarray) -> np.ndarray:
        """Template-image positions of target-image `points` (K, 2)."""
        points = _points(points)
        inverse = np.linalg.inv(self.matrix)
        return (points - self.centre - self.translation) @ inverse.T + (
            self.centre
        )

    def gradient(self, points: np.ndarray) -> np.ndarray:
        """``A - I`` at each of `points`: (K, 2, 2)."""
        count = len(_points(points))
        return np.broadcast_to(self.matrix - np.eye(2), (count, 2, 2)).copy()


@dataclass(frozen=True, eq=False)
class SpecklePattern:
    """A speckle pattern defined everywhere: a sum of Gaussian blobs.

    ``I(x) = sum_k a_k exp(-|x - p_k|^2 / (2 s_k^2))`` for
    ``|x - p_k| <= cutoff * s_k`` (each blob is cut there, so that the
    pattern is the same function however it is evaluated).

    Attributes
    ----------
    centres : (K, 2) ndarray
        Blob centres ``p_k`` (row, col).
    sigmas : (K,) ndarray
        Blob standard deviations ``s_k`` (px); the e^-2 diameter is 4 s_k.
    amplitudes : (K,) ndarray
        Peak intensities ``a_k``.
    cutoff : float
        Radius of each blob in standard deviations.
    """

    centres: np.ndarray
    sigmas: np.ndarray
    amplitudes: np.ndarray
    cutoff: float = 4.0

    @classmethod
    def random(
        cls,
        low: np.ndarray,
        high: np.ndarray,
        rng: np.random.Generator,
        speckle_size: float = 4.0,
        coverage: float = 1.0,
    ) -> SpecklePattern:
        """Blobs uniformly spread over the box ``[low, high]`` (row, col).

        Parameters
        ----------
        low, high : (2,) array_like
            Corners of the box the centres are drawn in.
        rng : numpy.random.Generator
            Source of every draw.
        speckle_size : float
            Mean e^-2 diameter of the blobs (px); each blob's is drawn
            uniformly within +-25 % of it.
        coverage : float
            Blob area (disc of the e^-2 diameter) per unit of image area:
            the count is ``coverage * area / (pi (speckle_size / 2)^2)``.
        """
        low, high = np.asarray(low, float), np.asarray(high, float)
        area = float(np.prod(high - low))
        count = round(coverage * area / (np.pi * (speckle_size / 2) ** 2))
        centres = low + rng.uniform(size=(count, 2)) * (high - low)
        sigmas = speckle_size / 4 * rng.uniform(0.75, 1.25, size=count)
        amplitudes = rng.uniform(0.5, 1.0, size=count)
        return cls(centres, sigmas, amplitudes)

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """The pattern at `coords` (..., 2), by brute force over blobs."""
        coords = np.asarray(coords, dtype=float)
        flat = coords.reshape(-1, 2)
        values = np.zeros(len(flat))
        for begin in range(0, len(flat), 256):
            part = flat[begin : begin + 256]
            offsets = part[:, None, :] - self.centres[None, :, :]
            square = (offsets**2).sum(axis=-1) / self.sigmas**2
            inside = square <= self.cutoff**2
            values[begin : begin + 256] = (
                np.where(inside, np.exp(-0.5 * square), 0.0) @ self.amplitudes
            )
        return values.reshape(coords.shape[:-1])

    def render(
        self,
        shape: tuple[int, int],
        mapping: AffineMap | None = None,
        supersample: int = 3,
        chunk: int = 512,
    ) -> np.ndarray:
        """The pattern seen through `mapping`, integrated over each pixel.

        Pixel ``y`` of the result is the mean of the pattern at
        ``mapping.inverse(s)`` over ``supersample x supersample`` points
        ``s`` spread evenly over the pixel's square (the pattern deformed
        so that its point ``x`` lies at ``mapping.forward(x)``). Each
        blob is evaluated only over the pixels its (mapped) footprint
        covers, which gives the same sum as evaluating every blob.

        Parameters
        ----------
        shape : (2,) tuple of int
            Image shape.
        mapping : AffineMap, optional
            The deformation (default: none, the identity).
        supersample : int
            Samples per pixel and axis.
        chunk : int
            Blobs evaluated at once (memory only).

        Returns
        -------
        (M, N) ndarray of float64
        """
        if mapping is None:
            mapping = AffineMap(np.eye(2), np.zeros(2), np.zeros(2))
        inverse = np.linalg.inv(mapping.matrix)
        moved = mapping.forward(self.centres)
        reach = self.cutoff * self.sigmas
        # A disc of radius R maps into an ellipse whose extent along image
        # axis i is R * |row i of A|.
        half = reach[:, None] * np.linalg.norm(mapping.matrix, axis=1)
        box = int(np.ceil(2 * half.max())) + 2
        first = np.floor(moved - half + 0.5).astype(int)
        sub = (np.arange(supersample) + 0.5) / supersample - 0.5
        offsets = (np.arange(box)[:, None] + sub[None, :]).ravel()
        image = np.zeros(shape[0] * shape[1])
        shift = mapping.centre + mapping.translation
        for begin in range(0, len(self.centres), chunk):
            part = slice(begin, begin + chunk)
            rows = first[part, 0, None] + offsets - shift[0]
            cols = first[part, 1, None] + offsets - shift[1]
            # Template coordinates of every sample, relative to the blob.
            centred = self.centres[part] - mapping.centre
            dr = (
                inverse[0, 0] * rows[:, :, None]
                + inverse[0, 1] * cols[:, None, :]
                - centred[:, 0, None, None]
            )
            dc = (
                inverse[1, 0] * rows[:, :, None]
                + inverse[1, 1] * cols[:, None, :]
                - centred[:, 1, None, None]
            )
            square = (dr**2 + dc**2) / self.sigmas[part, None, None] ** 2
            values = np.where(
                square <= self.cutoff**2, np.exp(-0.5 * square), 0.0
            )
            values *= self.amplitudes[part, None, None]
            n = len(values)
            pixels = values.reshape(
                n, box, supersample, box, supersample
            ).mean(axis=(2, 4))
            _accumulate(image, shape, first[part], pixels)
        return image.reshape(shape)


def _accumulate(
    image: np.ndarray,
    shape: tuple[int, int],
    first: np.ndarray,
    boxes: np.ndarray,
) -> None:
    """Add (K, B, B) `boxes` whose corners are `first` into flat `image`."""
    box = boxes.shape[1]
    steps = np.arange(box)
    rows = (first[:, 0, None] + steps)[:, :, None]
    cols = (first[:, 1, None] + steps)[:, None, :]
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    flat = np.broadcast_to(rows * shape[1] + cols, boxes.shape)
    image += np.bincount(
        flat[inside], weights=boxes[inside], minlength=image.size
    )


def speckle_pair(
    shape: tuple[int, int] = (256, 256),
    angle: float = 3.0,
    stretch: tuple[float, float] = (0.0, 0.0),
    shear: float = 0.0,
    translation: tuple[float, float] = (0.0, 0.0),
    speckle_size: float = 4.0,
    noise: float = 0.01,
    supersample: int = 3,
    seed: int = 0,
) -> GroundTruth:
    """A speckle image and its exact affine deformation, with camera noise.

    The target pixel ``y`` shows the pattern at ``x = A^-1 (y - c - t) + c``
    (integrated over the pixel), so the template's point ``x`` truly went
    to ``A (x - c) + c + t``, ``c`` the image centre. The true displacement
    gradient is ``A - I`` everywhere.

    Parameters
    ----------
    shape : (2,) tuple of int
        Shape of both images.
    angle, stretch, shear, translation
        The map, see :meth:`AffineMap.make` (angle in degrees).
    speckle_size : float
        Mean e^-2 diameter of the speckles (px).
    noise : float
        Standard deviation of the Gaussian camera noise added to each image,
        as a fraction of the noise-free template's range.
    supersample : int
        Samples per pixel and axis when integrating over pixels.
    seed : int
        Seed of every random draw.

    Returns
    -------
    GroundTruth
        ``info`` holds ``pattern`` (:class:`SpecklePattern`), ``mapping``
        (:class:`AffineMap`) and ``noise_sigma`` (grey values).
    """
    rng = np.random.default_rng(seed)
    centre = (np.asarray(shape, float) - 1) / 2
    mapping = AffineMap.make(centre, angle, stretch, shear, translation)
    # Draw blobs wherever either image can see the pattern.
    corners = np.array(
        [[-0.5, -0.5], [-0.5, shape[1] - 0.5], [shape[0] - 0.5, -0.5]]
        + [[shape[0] - 0.5, shape[1] - 0.5]]
    )
    seen = np.vstack([corners, mapping.inverse(corners)])
    pad = speckle_size * 1.25 + 2
    pattern = SpecklePattern.random(
        seen.min(axis=0) - pad, seen.max(axis=0) + pad, rng, speckle_size
    )
    clean = pattern.render(shape, None, supersample)
    deformed = pattern.render(shape, mapping, supersample)
    sigma = noise * float(np.ptp(clean))
    return GroundTruth(
        name=f"speckle {angle:g} deg",
        template_image=_add_noise(clean, sigma, rng),
        image=_add_noise(deformed, sigma, rng),
        position=mapping.forward,
        gradient=mapping.gradient,
        info={"pattern": pattern, "mapping": mapping, "noise_sigma": sigma},
    )


def speckle_series(
    shape: tuple[int, int] = (360, 360),
    strains: tuple[float, ...] = (0.0, 0.005, 0.01, 0.015, 0.02),
    speckle_size: float = 4.0,
    noise: float = 0.02,
    seed: int = 0,
) -> tuple[np.ndarray, list[AffineMap]]:
    """A speckle pattern stretched along the columns, one frame per strain
    (as muDIC's virtual lab: uniaxial tension, camera noise).

    Frame t shows the pattern through ``AffineMap.make(c, stretch=(0,
    strains[t]))`` about the image centre ``c``; every frame gets its own
    noise (`noise` times the first frame's noise-free range). The true
    Green-Lagrange strain along the columns in frame t is
    ``((1 + strains[t]) ** 2 - 1) / 2``, the others 0.

    Returns
    -------
    stack : (T, M, N) ndarray of float64
    maps : list of AffineMap
        Frame 0's pixels to each frame's.
    """
    rng = np.random.default_rng(seed)
    centre = (np.asarray(shape, float) - 1) / 2
    maps = [AffineMap.make(centre, 0.0, (0.0, e)) for e in strains]
    pad = speckle_size * 1.25 + 2 + max(strains) * max(shape)
    pattern = SpecklePattern.random(
        np.array([-pad, -pad]),
        np.asarray(shape, float) + pad,
        rng,
        speckle_size,
    )
    frames = [pattern.render(shape, m) for m in maps]
    sigma = noise * float(np.ptp(frames[0]))
    stack = np.stack([_add_noise(f, sigma, rng) for f in frames])
    return stack, maps


# ---------------------------------------------------------------------------
# (b) Particle images of known flows


@dataclass(frozen=True, eq=False)
class Flow:
    """An analytic displacement field between two PIV frames.

    Attributes
    ----------
    name : str
        Label.
    displacement : callable
        ``displacement(points) -> (K, 2)``: ``u(x)`` in px, (row, col).
    gradient : callable
        ``gradient(points) -> (K, 2, 2)``: ``d u_i / d x_j``.
    formula : str
        The field in words, for reports.
    """

    name: str
    displacement: Callable[[np.ndarray], np.ndarray]
    gradient: Callable[[np.ndarray], np.ndarray]
    formula: str


def _linear_flow(
    name: str, matrix: np.ndarray, centre: np.ndarray, formula: str
) -> Flow:
    centre = np.asarray(centre, dtype=float)

    def displacement(points: np.ndarray) -> np.ndarray:
        return (_points(points) - centre) @ matrix.T

    def gradient(points: np.ndarray) -> np.ndarray:
        count = len(_points(points))
        return np.broadcast_to(matrix, (count, 2, 2)).copy()

    return Flow(name, displacement, gradient, formula)


def uniform_flow(shift: tuple[float, float] = (2.3, -1.7)) -> Flow:
    """``u(x) = shift`` everywhere; zero gradient."""
    shift_ = np.asarray(shift, dtype=float)

    def displacement(points: np.ndarray) -> np.ndarray:
        return np.broadcast_to(shift_, _points(points).shape).copy()

    def gradient(points: np.ndarray) -> np.ndarray:
        return np.zeros((len(_points(points)), 2, 2))

    return Flow("uniform", displacement, gradient, f"u = {tuple(shift)}")


def solid_rotation(centre: tuple[float, float], rate: float = 0.02) -> Flow:
    """``u(x) = rate * J (x - c)``, ``J = [[0, -1], [1, 0]]``.

    The displacement of a solid-body rotation by a small angle `rate`
    (rad) in the linear (velocity) form: the gradient is ``rate * J``.
    """
    matrix = rate * np.array([[0.0, -1.0], [1.0, 0.0]])
    return _linear_flow(
        "solid rotation", matrix, centre, f"u = {rate:g} J (x - c)"
    )


def shear_flow(centre: tuple[float, float], rate: float = 0.03) -> Flow:
    """``u = (0, rate * (row - c_row))``: cols slide past one another.

    The gradient is ``[[0, 0], [rate, 0]]``.
    """
    matrix = np.array([[0.0, 0.0], [rate, 0.0]])
    return _linear_flow(
        "shear", matrix, centre, f"u_col = {rate:g} (row - c_row)"
    )


def lamb_oseen(
    centre: tuple[float, float],
    peak_gradient: float = 0.1,
    core_radius: float = 30.0,
) -> Flow:
    """A Lamb-Oseen vortex: ``u(x) = G h(s) J d``.

    With ``d = x - c``, ``s = |d|^2 / r_c^2``, ``J = [[0, -1], [1, 0]]``,
    ``h(s) = (1 - exp(-s)) / s`` (1 at s = 0) and ``G`` = `peak_gradient`:
    the tangential displacement is ``G r_c^2 (1 - exp(-s)) / |d|``, i.e.
    ``Gamma / (2 pi |d|) (1 - exp(-|d|^2 / r_c^2))`` with circulation
    ``Gamma = 2 pi G r_c^2``. It peaks at ``|d| = 1.121 r_c`` with
    ``0.638 G r_c`` px (1.9 px at the defaults).

    The gradient is ``G (h(s) J + (2 / r_c^2) g(s) J d d^T)`` with
    ``g(s) = (s exp(-s) - 1 + exp(-s)) / s^2`` (-1/2 at s = 0). Its
    largest entry (in absolute value) is ``G`` at the centre, a pure
    rotation; elsewhere the entries stay within ``0.3 G``.
    """
    c = np.asarray(centre, dtype=float)
    big_j = np.array([[0.0, -1.0], [1.0, 0.0]])

    def parts(points: np.ndarray) -> tuple[np.ndarray, ...]:
        d = _points(points) - c
        s = (d**2).sum(axis=1) / core_radius**2
        small = s < 1e-4
        safe = np.where(small, 1.0, s)
        h = np.where(small, 1 - s / 2 + s**2 / 6, -np.expm1(-safe) / safe)
        g = np.where(
            small,
            -0.5 + s / 3 - s**2 / 8,
            (safe * np.exp(-safe) + np.expm1(-safe)) / safe**2,
        )
        return d, h, g

    def displacement(points: np.ndarray) -> np.ndarray:
        d, h, _ = parts(points)
        return peak_gradient * h[:, None] * (d @ big_j.T)

    def gradient(points: np.ndarray) -> np.ndarray:
        d, h, g = parts(points)
        outer = np.einsum("ij,kj,kl->kil", big_j, d, d)
        return peak_gradient * (
            h[:, None, None] * big_j
            + (2 / core_radius**2) * g[:, None, None] * outer
        )

    return Flow(
        "Lamb-Oseen",
        displacement,
        gradient,
        f"Lamb-Oseen, G {peak_gradient:g}/px, r_c {core_radius:g} px",
    )


FLOWS = ("uniform", "rotation", "shear", "lamb-oseen")


def make_flow(name: str, shape: tuple[int, int]) -> Flow:
    """One of `FLOWS` at its defaults, centred on an image of `shape`."""
    centre = tuple((np.asarray(shape, float) - 1) / 2)
    makers = {
        "uniform": lambda: uniform_flow(),
        "rotation": lambda: solid_rotation(centre),
        "shear": lambda: shear_flow(centre),
        "lamb-oseen": lambda: lamb_oseen(centre),
    }
    if name not in makers:
        raise ValueError(f"flow must be one of {FLOWS}, not {name!r}")
    return makers[name]()


def render_particles(
    positions: np.ndarray,
    shape: tuple[int, int],
    diameter: float = 2.5,
    intensities: np.ndarray | None = None,
) -> np.ndarray:
    """Gaussian particles integrated exactly over each pixel.

    A particle at ``p`` of peak intensity ``I`` has the profile
    ``I exp(-8 |x - p|^2 / diameter^2)`` (e^-2 diameter `diameter`); a
    pixel gets the mean of the profile over its square, which separates
    into differences of the normal distribution's cdf along each axis.
    Each particle is summed over the 7 x 7 (or larger) pixels around it,
    where all but ~1e-6 of its light falls.

    Parameters
    ----------
    positions : (K, 2) array_like
        Particle centres (row, col), anywhere (outside ones may still
        light the border pixels).
    shape : (2,) tuple of int
        Image shape.
    diameter : float
        e^-2 diameter (px).
    intensities : (K,) array_like, optional
        Peak intensities (default 1).

    Returns
    -------
    (M, N) ndarray of float64
    """
    positions = _points(positions)
    if intensities is None:
        intensities = np.ones(len(positions))
    sigma = diameter / 4
    half = int(np.ceil(4 * sigma + 0.5))
    steps = np.arange(-half, half + 1)
    nearest = np.round(positions).astype(int)
    edges = nearest[:, :, None] + steps - positions[:, :, None]
    profile = special.ndtr((edges + 0.5) / sigma) - special.ndtr(
        (edges - 0.5) / sigma
    )
    boxes = (
        2 * np.pi * sigma**2 * np.asarray(intensities, float)[:, None, None]
    ) * (profile[:, 0, :, None] * profile[:, 1, None, :])
    image = np.zeros(shape[0] * shape[1])
    _accumulate(image, shape, nearest - half, boxes)
    return image.reshape(shape)


def particle_pair(
    flow: str | Flow = "lamb-oseen",
    shape: tuple[int, int] = (256, 256),
    density: float = 0.05,
    diameter: float = 2.5,
    noise: float = 0.02,
    empty_disc: tuple[float, float, float] | None = None,
    seed: int = 0,
) -> GroundTruth:
    """Two PIV frames of particles moved by an analytic flow.

    The first frame's particles are spread uniformly over the image and a
    band around it wide enough that every particle seen in the second frame
    is drawn; each moves to ``p + u(p)`` (the flow at its first-frame
    position) in the second frame. Both frames get Gaussian noise.

    Parameters
    ----------
    flow : str or Flow
        One of `FLOWS` (at its defaults, centred on the image) or a Flow.
    shape : (2,) tuple of int
        Shape of both frames.
    density : float
        Particles per pixel (in the first frame).
    diameter : float
        Particle e^-2 diameter (px).
    noise : float
        Standard deviation of the noise as a fraction of the noise-free
        first frame's range.
    empty_disc : (row, col, radius), optional
        A disc of the first frame without particles (no texture there;
        its image in the second frame follows the flow).
    seed : int
        Seed of every random draw.

    Returns
    -------
    GroundTruth
        ``info`` holds ``flow``, ``particles`` (first-frame positions),
        ``moved`` (second-frame positions), ``intensities``, ``empty``
        (template-image pixels inside `empty_disc`, or None) and
        ``noise_sigma``.
    """
    if isinstance(flow, str):
        flow = make_flow(flow, shape)
    rng = np.random.default_rng(seed)
    band = _particle_band(flow, shape)
    low = np.array([-band, -band], dtype=float)
    high = np.array(shape, dtype=float) - 1 + band
    count = round(density * float(np.prod(high - low)))
    particles = low + rng.uniform(size=(count, 2)) * (high - low)
    intensities = rng.uniform(0.5, 1.0, size=count)
    empty = None
    if empty_disc is not None:
        row, col, radius = empty_disc
        far = np.hypot(particles[:, 0] - row, particles[:, 1] - col) > radius
        particles, intensities = particles[far], intensities[far]
        grid = np.indices(shape)
        empty = np.hypot(grid[0] - row, grid[1] - col) <= radius
    moved = particles + flow.displacement(particles)
    first = render_particles(particles, shape, diameter, intensities)
    second = render_particles(moved, shape, diameter, intensities)
    sigma = noise * float(np.ptp(first))

    def position(points: np.ndarray) -> np.ndarray:
        return points + flow.displacement(points)

    return GroundTruth(
        name=f"particles, {flow.name}",
        template_image=_add_noise(first, sigma, rng),
        image=_add_noise(second, sigma, rng),
        position=position,
        gradient=flow.gradient,
        info={
            "flow": flow,
            "particles": particles,
            "moved": moved,
            "intensities": intensities,
            "empty": empty,
            "noise_sigma": sigma,
        },
    )


def _particle_band(flow: Flow, shape: tuple[int, int]) -> int:
    """Width (px) of the band of particles drawn around the image."""
    limit = 64
    axes = [np.linspace(-limit, n - 1 + limit, 41) for n in shape]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    largest = np.abs(flow.displacement(grid.reshape(-1, 2))).max()
    band = int(np.ceil(largest)) + 5
    if band > limit:
        raise ValueError(f"the flow moves particles {largest:.0f} px")
    return band


# ---------------------------------------------------------------------------
# (c-e) A real texture, shifted, with no-data patterns


def load_texture(name: str = "gravel") -> np.ndarray:
    """scikit-image's `name` image (gravel, brick, camera) in [0, 1]."""
    from skimage import data

    if name not in ("gravel", "brick", "camera"):
        raise ValueError(f"unknown texture {name!r}")
    return getattr(data, name)().astype(float) / 255


def shifted_texture(
    texture: str = "gravel",
    shift: tuple[float, float] = TEXTURE_SHIFT,
    shape: tuple[int, int] | None = (256, 256),
    noise: float = 0.01,
    seed: int = 0,
) -> GroundTruth:
    """A real texture and its cubic spline shift by `shift` px.

    The whole image is shifted (``scipy.ndimage.shift``, order 3, mirror
    at the borders: the target at ``y`` is the spline interpolant of the
    texture at ``y - shift``), then both are cut to the centred `shape`.
    The template's samples are the texture's own, so both images are
    samples of one continuous (spline) image and the point ``p`` truly
    went to ``p + shift``. Gaussian noise is added to both.

    Parameters
    ----------
    texture : {'gravel', 'brick', 'camera'}
        scikit-image's image.
    shift : (2,) tuple of float
        Displacement (row, col) in px.
    shape : (2,) tuple of int or None
        Size of the centred cut (None: the whole 512 x 512 image; then the
        mirrored borders make the truth inexact within `margin` px).
    noise : float
        Noise standard deviation as a fraction of the range (1).
    seed : int
        Seed of the noise.

    Returns
    -------
    GroundTruth
        ``info`` holds ``shift`` and ``noise_sigma``.
    """
    rng = np.random.default_rng(seed)
    full = load_texture(texture)
    moved = ndimage.shift(full, shift, order=3, mode="mirror")
    margin = 0.0
    if shape is None:
        shape = full.shape
        margin = float(np.ceil(np.abs(shift).max())) + 12
    corner = [(n - m) // 2 for n, m in zip(full.shape, shape)]
    cut = tuple(slice(c, c + m) for c, m in zip(corner, shape))
    sigma = noise * float(np.ptp(full))
    shift_ = np.asarray(shift, dtype=float)

    def position(points: np.ndarray) -> np.ndarray:
        return points + shift_

    def gradient(points: np.ndarray) -> np.ndarray:
        return np.zeros((len(points), 2, 2))

    return GroundTruth(
        name=f"{texture} shifted {tuple(shift)}",
        template_image=_add_noise(full[cut], sigma, rng),
        image=_add_noise(moved[cut], sigma, rng),
        position=position,
        gradient=gradient,
        margin=margin,
        info={"shift": shift_, "noise_sigma": sigma},
    )


def _with_nan(
    case: GroundTruth,
    name: str,
    template_missing: np.ndarray,
    image_missing: np.ndarray,
    **info: Any,
) -> GroundTruth:
    template = case.template_image.copy()
    image = case.image.copy()
    template[template_missing] = np.nan
    image[image_missing] = np.nan
    return GroundTruth(
        name=name,
        template_image=template,
        image=image,
        position=case.position,
        gradient=case.gradient,
        margin=case.margin,
        info={
            **case.info,
            "template_missing": template_missing,
            "image_missing": image_missing,
            **info,
        },
    )


def nan_stripe(
    width: int = 6,
    column: int | None = None,
    in_template: bool = True,
    in_image: bool = True,
    **texture: Any,
) -> GroundTruth:
    """A shifted texture with a stripe of NaN columns (a dead sensor line).

    Parameters
    ----------
    width : int
        Columns in the stripe.
    column : int, optional
        First column of the stripe (default: centred).
    in_template, in_image : bool
        Which images have the stripe (the same columns of each).
    **texture
        Passed to :func:`shifted_texture`.

    Returns
    -------
    GroundTruth
        ``info`` holds ``template_missing`` and ``image_missing`` (bool
        masks) and ``columns`` (the stripe's columns).
    """
    case = shifted_texture(**texture)
    shape = case.template_image.shape
    if column is None:
        column = (shape[1] - width) // 2
    stripe = np.zeros(shape, dtype=bool)
    stripe[:, column : column + width] = True
    none = np.zeros(shape, dtype=bool)
    return _with_nan(
        case,
        f"NaN stripe ({width} columns)",
        stripe if in_template else none,
        stripe if in_image else none,
        columns=np.arange(column, column + width),
    )


def striped_nodata(
    period: int = 11, missing: int = 4, image_offset: int = 5, **texture: Any
) -> GroundTruth:
    """A shifted texture with `missing` of every `period` rows NaN.

    Template rows ``r`` with ``r % period < missing`` and target rows with
    ``(r - image_offset) % period < missing`` hold no data: other rows
    in each image (disjoint at the defaults: rows 0-3 and 5-8 of every 11),
    as dead scanner lines offset between two scans.

    Parameters
    ----------
    period, missing, image_offset : int
        The pattern of missing rows.
    **texture
        Passed to :func:`shifted_texture`.

    Returns
    -------
    GroundTruth
        ``info`` holds ``template_missing`` and ``image_missing``.
    """
    case = shifted_texture(**texture)
    shape = case.template_image.shape
    rows = np.arange(shape[0])[:, None]
    template = np.broadcast_to(rows % period < missing, shape)
    image = np.broadcast_to((rows - image_offset) % period < missing, shape)
    return _with_nan(
        case,
        f"striped no-data ({missing} of {period} rows)",
        template.copy(),
        image.copy(),
    )


def dead_pixels(
    fraction: float = 0.4, seed: int = 0, **texture: Any
) -> GroundTruth:
    """A shifted texture with `fraction` of the pixels dead (NaN) in each.

    Exactly ``round(fraction * size)`` pixels are drawn, independently in
    each image.

    Parameters
    ----------
    fraction : float
        Share of dead pixels per image.
    seed : int
        Seed of the noise and of the dead pixels.
    **texture
        Passed to :func:`shifted_texture`.

    Returns
    -------
    GroundTruth
        ``info`` holds ``template_missing`` and ``image_missing``.
    """
    case = shifted_texture(seed=seed, **texture)
    rng = np.random.default_rng([seed, 1])
    shape = case.template_image.shape
    count = round(fraction * shape[0] * shape[1])
    masks = []
    for _ in range(2):
        mask = np.zeros(shape[0] * shape[1], dtype=bool)
        mask[rng.permutation(mask.size)[:count]] = True
        masks.append(mask.reshape(shape))
    return _with_nan(case, f"{fraction:.0%} dead pixels", *masks)


# ---------------------------------------------------------------------------
# Real pairs with a known answer


def stereo_motorcycle() -> GroundTruth:
    """scikit-image's rectified motorcycle pair, grey, and its disparity.

    The left image is the template: its pixel ``(r, c)`` went to
    ``(r, c - disparity[r, c])`` in the right image (the disparity of the
    nearest pixel for a sub-pixel point); NaN where the disparity is not
    finite (occluded) or the point is outside the image. No gradient.

    Returns
    -------
    GroundTruth
        ``info`` holds ``disparity``.
    """
    from skimage import data
    from skimage.color import rgb2gray

    left, right, disparity = data.stereo_motorcycle()

    def position(points: np.ndarray) -> np.ndarray:
        index = np.round(points).astype(int)
        inside = np.all((index >= 0) & (index < disparity.shape), axis=1)
        index[~inside] = 0
        d = np.where(inside, disparity[index[:, 0], index[:, 1]], np.nan)
        known = np.isfinite(d)
        return np.where(
            known[:, None], np.c_[points[:, 0], points[:, 1] - d], np.nan
        )

    return GroundTruth(
        name="motorcycle",
        template_image=rgb2gray(left),
        image=rgb2gray(right),
        position=position,
        info={"disparity": disparity},
    )


def deformed_sample() -> GroundTruth:
    """The package's deformed sample pair with its exact truth.

    The target is ``after(y) = before(y - F(y))`` for the smooth field
    ``F`` of ``deformation_field``, so the point ``p`` went to the ``q``
    that solves ``q - F(q) = p`` (solved here by fixed-point iteration
    on a cubic interpolation of ``F``, to 1e-10 px), and the gradient is
    ``(I - DF(q))^-1 - I``.

    Returns
    -------
    GroundTruth
        ``info`` holds ``points`` and ``truth``: the sample's grid points
        and its own 'true positions' layer.
    """
    from napari_normxcorr.io._samples import (
        deformation_field,
        deformed_pair,
    )

    layers = {kwargs["name"]: data for data, kwargs, _ in deformed_pair()}
    before = layers["before"]
    field_ = deformation_field(before.shape)
    slopes = [np.gradient(f) for f in field_]

    def sample(arrays: np.ndarray, at: np.ndarray) -> np.ndarray:
        return np.stack(
            [
                ndimage.map_coordinates(a, at.T, order=3, mode="nearest")
                for a in arrays
            ],
            axis=-1,
        )

    def position(points: np.ndarray) -> np.ndarray:
        q = points.copy()
        for _ in range(100):
            new = points + sample(field_, q)
            done = np.nanmax(np.abs(new - q), initial=0) < 1e-10
            q = new
            if done:
                break
        return q

    def gradient(points: np.ndarray) -> np.ndarray:
        q = position(points)
        jacobian = np.stack(
            [sample(slopes[i], q) for i in range(2)], axis=1
        )  # (K, 2, 2): d F_i / d x_j
        return np.linalg.inv(np.eye(2) - jacobian) - np.eye(2)

    return GroundTruth(
        name="deformed sample",
        template_image=before,
        image=layers["after (deformed)"],
        position=position,
        gradient=gradient,
        info={
            "points": layers["grid points"],
            "truth": layers["true positions"],
        },
    )


# ---------------------------------------------------------------------------
# Points and errors


def grid_points(
    truth: GroundTruth,
    spacing: float = 16,
    margin: float = 32,
    box: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> np.ndarray:
    """Points on a regular grid, away from the borders of both images.

    Parameters
    ----------
    truth : GroundTruth
        The case.
    spacing : float
        Grid step (px) along both axes.
    margin : float
        Least distance (px) of each point from the template image's borders
        and of its true position from the target's (raised to
        ``truth.margin`` if smaller).
    box : ((row0, row1), (col0, col1)), optional
        Only points inside this box (inclusive).

    Returns
    -------
    (K, 2) ndarray of float
        Grid points whose true position is known and inside the target.
    """
    margin = max(margin, truth.margin)
    shape = truth.template_image.shape
    bounds = [(margin, n - 1 - margin) for n in shape]
    if box is not None:
        bounds = [
            (max(lo, b0), min(hi, b1))
            for (lo, hi), (b0, b1) in zip(bounds, box)
        ]
    axes = [np.arange(lo, hi + 1e-9, spacing) for lo, hi in bounds]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    points = points.reshape(-1, 2).astype(float)
    moved = truth.true_position(points)
    target = np.asarray(truth.image.shape, dtype=float)
    keep = np.all(
        np.isfinite(moved)
        & (moved >= margin)
        & (moved <= target - 1 - margin),
        axis=1,
    )
    return points[keep]


def errors(result: Any, truth: GroundTruth | np.ndarray) -> np.ndarray:
    """Each row's distance (px) from the truth.

    Parameters
    ----------
    result : MatchResult
        Anything with ``matched`` (K, 2) and, when `truth` is a
        GroundTruth, ``points`` (K, 2).
    truth : GroundTruth or (K, 2) array_like
        The case (true positions of ``result.points``) or the true
        positions themselves.

    Returns
    -------
    (K,) ndarray
        Euclidean distance from the match to the truth; NaN where either
        is NaN (no match, or no answer).
    """
    if isinstance(truth, GroundTruth):
        expected = truth.true_position(result.points)
    else:
        expected = np.asarray(truth, dtype=float)
    return np.linalg.norm(np.asarray(result.matched) - expected, axis=1)
