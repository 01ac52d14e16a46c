"""Shape functions of subsets: polynomial warps of the subset's offsets.

A warp maps the offsets k of a subset's pixels to frame pixels,
``x_a = sum_m w[a, m] * m(k)`` over the monomials m of k up to the
shape function's order (1: affine, 2: quadratic, as in digital image
correlation). Lifted onto those monomials (each row says what one
monomial of x is, as a polynomial of k, truncated to the order), warps
compose by matrix products and invert by matrix inverses, which is what
inverse compositional Gauss-Newton needs [1]_. For order 1 the lifted
matrix is the usual homogeneous affine matrix.

.. [1] Y. Gao, T. Cheng, Y. Su, X. Xu, Y. Zhang and Q. Zhang, "High-
   efficiency and high-accuracy digital image correlation for
   three-dimensional measurement", Optics and Lasers in Engineering 65,
   73-80, 2015.
"""

from __future__ import annotations

import itertools

import numpy as np

ORDERS = (1, 2)


class ShapeFunction:
    """Polynomial warps of `ndim` offsets up to `order`.

    Monomials are numbered constant first, then the D offsets, then the
    higher degrees: column 0 of a warp's rows is its translation, columns
    1 to D its linear part.
    """

    def __init__(self, ndim: int, order: int):
        if order not in ORDERS:
            raise ValueError(
                f"shape_order must be one of {ORDERS}, got {order!r}."
            )
        self.ndim, self.order = ndim, order
        self.exponents = [
            tuple(int(e) for e in np.bincount(c, minlength=ndim))
            for degree in range(order + 1)
            for c in itertools.combinations_with_replacement(
                range(ndim), degree
            )
        ]
        self.size = len(self.exponents)
        index = {e: k for k, e in enumerate(self.exponents)}
        # products[i, j, k] = 1 where monomial i times monomial j is k.
        self.products = np.zeros((self.size,) * 3)
        for (i, a), (j, b) in itertools.product(
            enumerate(self.exponents), repeat=2
        ):
            k = index.get(tuple(x + y for x, y in zip(a, b)))
            if k is not None:
                self.products[i, j, k] = 1.0

    @property
    def parameters(self) -> int:
        """Number of parameters of a warp (D rows of `size`)."""
        return self.ndim * self.size

    def values(self, offsets: np.ndarray) -> np.ndarray:
        """(M, size) monomials of the (M, D) `offsets`."""
        # Products of the offsets, not powers: pow is many times slower.
        out = np.ones((len(offsets), self.size))
        for k, exponents in enumerate(self.exponents):
            for axis, power in enumerate(exponents):
                for _ in range(power):
                    out[:, k] *= offsets[:, axis]
        return out

    def identity(self, centres: np.ndarray) -> np.ndarray:
        """(n, D, size) rows of translations to `centres`."""
        n, d = centres.shape
        rows = np.zeros((n, d, self.size))
        rows[:, :, 0] = centres
        rows[:, np.arange(d), 1 + np.arange(d)] = 1.0
        return rows

    def linear(self, rows: np.ndarray) -> np.ndarray:
        """(n, D, D) linear parts of warps given by their `rows`."""
        return rows[:, :, 1 : 1 + self.ndim]

    def with_linear(self, linear: np.ndarray) -> np.ndarray:
        """(n, D, size) rows without translation, of `linear` (n, D, D)."""
        rows = np.zeros((*linear.shape[:2], self.size))
        rows[:, :, 1 : 1 + self.ndim] = linear
        return rows

    def lift(self, rows: np.ndarray) -> np.ndarray:
        """(n, size, size) lifted matrices of warps given by their rows."""
        n, d = rows.shape[:2]
        lifted = np.zeros((n, self.size, self.size))
        lifted[:, 0, 0] = 1.0
        lifted[:, 1 : 1 + d] = rows
        for k in range(1 + d, self.size):
            # A monomial of degree 2 is the product of two offsets.
            first, second = (
                axis
                for axis, power in enumerate(self.exponents[k])
                for _ in range(power)
            )
            lifted[:, k] = np.einsum(
                "ni,nj,ijk->nk",
                rows[:, first],
                rows[:, second],
                self.products,
            )
        return lifted

    def rows(self, lifted: np.ndarray) -> np.ndarray:
        """(n, D, size) rows of lifted warps."""
        return lifted[:, 1 : 1 + self.ndim]

    def extent(self, rows: np.ndarray, radius: tuple[int, ...]) -> np.ndarray:
        """(n, D) bound on how far warped subsets of `radius` reach from
        their translation, per axis."""
        corner = self.values(np.asarray(radius, dtype=np.float64)[None])[0]
        return np.abs(rows[:, :, 1:]) @ np.abs(corner[1:])
