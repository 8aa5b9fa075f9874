"""Receptive fields: the state one tensor carries, and how each kind of layer transforms it.

Every spatial axis of a tensor carries, in input-pixel units:

- `rf`: how many input pixels along the axis one unit sees through sliding windows (its receptive field);
- `jump`: how far apart, in input pixels, two neighbouring units are (the effective stride);
- `start`: where unit 0 is centred, in input-pixel index coordinates: the centre of the first input pixel
  is 0, and unit i of the tensor is centred on input pixel `start + i * jump`;
- `fixed`: an interval (lo, hi) of input pixels that *every* unit sees whatever its position, or None.
  It comes from global context broadcast back onto the map (a squeeze-and-excitation gate is computed
  from the whole map and multiplies every position).

The input image starts with rf = 1, jump = 1, start = 0. Unit i then sees the input pixels
`start + i*jump - (rf-1)/2 ... start + i*jump + (rf-1)/2` (possibly reaching into the padding), together
with `fixed`.

A sliding window (convolution, pooling) with kernel k, stride s, padding p and dilation d maps the state to

    rf'    = rf + (k - 1) * d * jump
    jump'  = jump * s
    start' = start + ((k - 1) / 2 * d - p) * jump

and leaves `fixed` alone (every window position sees it). Where paths meet on one grid (a residual add, a
concatenation) each unit sees the union of what its inputs see: the receptive field of a graph is the
maximum over its paths. Once spatial axes are reduced (global pooling, a mean over H and W) or flattened
away before a classifier, the result covers the whole last map: a window as large as the map.
A tensor without spatial axes left is marked `spatial=False`.

These are pure functions on small frozen dataclasses; operations.py decides which torch function uses
which of them, and the tracer stores one TensorField per traced tensor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence


@dataclass(frozen=True)
class AxisField:
    """Receptive-field state along one spatial axis, in input pixels (see the module docstring)."""

    rf: float
    jump: float
    start: float
    fixed: tuple[float, float] | None = None

    def span(self, index: float = 0) -> tuple[float, float]:
        """First and last input pixel seen by unit `index` (negative or past the image: padding)."""
        centre = self.start + index * self.jump
        lo, hi = centre - (self.rf - 1) / 2, centre + (self.rf - 1) / 2
        if self.fixed is not None:
            lo, hi = min(lo, self.fixed[0]), max(hi, self.fixed[1])
        return lo, hi

    def size_at(self, index: float = 0) -> float:
        """How many input pixels unit `index` sees along this axis: rf, widened by any fixed context."""
        lo, hi = self.span(index)
        return hi - lo + 1


@dataclass(frozen=True)
class TensorField:
    """The state of one tensor: an AxisField per spatial axis (the tensor's trailing axes, H and W for
    images). `spatial=False` once those axes are gone (reduced or flattened): the fields then describe
    what every element of the tensor sees."""

    axes: tuple[AxisField, ...]
    spatial: bool = True


def centre_size(field: TensorField, grid: Sequence[int]) -> tuple[float, ...]:
    """How many input pixels the centre unit of a `grid`-sized map sees along each axis: the unit a report
    gives, so that fixed context (a squeeze-and-excitation gate's view of the whole map) and the sliding
    window are measured where a probe would measure them. Unit 0 once the axes are no longer spatial."""
    return tuple(a.size_at((size - 1) // 2 if field.spatial else 0) for a, size in zip(field.axes, grid))


def input_field(num_axes: int) -> TensorField:
    """The input image: every pixel sees itself; the first pixel's centre is the origin."""
    return TensorField(tuple(AxisField(rf=1, jump=1, start=0) for _ in range(num_axes)))


def per_axis(value: int | Sequence[int], num_axes: int) -> tuple[int, ...]:
    """A kernel/stride/padding argument as one value per axis (PyTorch accepts an int or a sequence)."""
    if isinstance(value, int):
        return (value,) * num_axes
    value = tuple(value)
    return value * num_axes if len(value) == 1 else value


def sliding_window(field: TensorField, kernel: Sequence[int], stride: int | Sequence[int],
                   padding: int | Sequence[int], dilation: int | Sequence[int] = 1) -> TensorField:
    """A convolution or pooling window (the formula in the module docstring); `padding` is the padding
    before the first element along each axis."""
    n = len(field.axes)
    kernel, stride = per_axis(kernel, n), per_axis(stride, n)
    padding, dilation = per_axis(padding, n), per_axis(dilation, n)
    return TensorField(tuple(
        replace(a, rf=a.rf + (k - 1) * d * a.jump, jump=a.jump * s, start=a.start + ((k - 1) / 2 * d - p) * a.jump)
        for a, k, s, p, d in zip(field.axes, kernel, stride, padding, dilation)
    ), spatial=field.spatial)


def transposed_window(field: TensorField, kernel: Sequence[int], stride: int | Sequence[int],
                      padding: int | Sequence[int], dilation: int | Sequence[int] = 1) -> TensorField:
    """A transposed convolution. Output unit o receives from the input units i with o = i*s - p + t*d
    (t < k), so its centre maps to input unit (o + p - (k-1)*d/2) / s and at most ceil(((k-1)*d + 1) / s)
    input units contribute: rf is that maximum over output positions (it varies with o when s > 1)."""
    n = len(field.axes)
    kernel, stride = per_axis(kernel, n), per_axis(stride, n)
    padding, dilation = per_axis(padding, n), per_axis(dilation, n)
    return TensorField(tuple(
        replace(a, rf=a.rf + (math.ceil(((k - 1) * d + 1) / s) - 1) * a.jump, jump=a.jump / s,
                start=a.start + (p - (k - 1) * d / 2) / s * a.jump)
        for a, k, s, p, d in zip(field.axes, kernel, stride, padding, dilation)
    ), spatial=field.spatial)


def adaptive_window(field: TensorField, in_sizes: Sequence[int], out_sizes: Sequence[int]) -> TensorField:
    """Adaptive pooling from `in_sizes` to `out_sizes`. Output j pools input units floor(j*L/O) to
    ceil((j+1)*L/O) - 1. When O divides L that is a window of L/O at stride L/O (exact). Otherwise the
    windows differ in width: rf is the widest, and jump the mean spacing of the first and last windows'
    centres, so that the span of all the outputs together stays exact."""
    axes = []
    for a, length, out in zip(field.axes, in_sizes, out_sizes):
        windows = [((j * length) // out, math.ceil((j + 1) * length / out) - 1) for j in range(out)]
        widest = max(last - first + 1 for first, last in windows)
        first_centre = sum(windows[0]) / 2
        spacing = (sum(windows[-1]) / 2 - first_centre) / (out - 1) if out > 1 else length
        axes.append(replace(a, rf=a.rf + (widest - 1) * a.jump, jump=a.jump * spacing,
                            start=a.start + first_centre * a.jump))
    return TensorField(tuple(axes), spatial=field.spatial)


def collapse(field: TensorField, sizes: Sequence[int], axes: Sequence[int] | None = None) -> TensorField:
    """Reduce spatial axes away (global pooling, a mean over H and W, flattening before a linear layer):
    each reduced axis covers its whole map, as a window the size of the map would. With `axes=None` every
    spatial axis is reduced and the result is no longer spatial."""
    reduced = range(len(field.axes)) if axes is None else set(axes)
    return TensorField(tuple(
        replace(a, rf=a.rf + (size - 1) * a.jump, jump=a.jump * size, start=a.start + (size - 1) / 2 * a.jump)
        if i in reduced else a
        for i, (a, size) in enumerate(zip(field.axes, sizes))
    ), spatial=field.spatial and axes is not None)


def pad(field: TensorField, before: Sequence[int]) -> TensorField:
    """Explicit padding (F.pad): unit 0 moves `before` units to the left of the old unit 0."""
    return TensorField(tuple(replace(a, start=a.start - p * a.jump) for a, p in zip(field.axes, before)),
                       spatial=field.spatial)


def resample(field: TensorField, in_sizes: Sequence[int], out_sizes: Sequence[int], taps: int,
             align_corners: bool) -> TensorField:
    """Upsampling/interpolation. Output o reads input coordinate (o + 0.5) * L/O - 0.5 (or o * (L-1)/(O-1)
    with align_corners); `taps` neighbours per axis are mixed (1 nearest, 2 linear, 4 cubic), so rf grows
    by taps - 1 input units (the maximum over output positions)."""
    axes = []
    for a, length, out in zip(field.axes, in_sizes, out_sizes):
        if align_corners:
            scale = (length - 1) / (out - 1) if out > 1 else 0.0
            offset = 0.0
        else:
            scale = length / out
            offset = 0.0 if taps == 1 else 0.5 * scale - 0.5  # nearest copies input floor(o * L/O)
        axes.append(replace(a, rf=a.rf + (taps - 1) * a.jump, jump=a.jump * scale, start=a.start + offset * a.jump))
    return TensorField(tuple(axes), spatial=field.spatial)


def _hull(intervals: Sequence[tuple[float, float] | None]) -> tuple[float, float] | None:
    present = [i for i in intervals if i is not None]
    return (min(i[0] for i in present), max(i[1] for i in present)) if present else None


def union(fields: Sequence[TensorField]) -> TensorField:
    """Inputs on the same grid meeting (a residual add, a concatenation along channels): each unit sees
    the union of what its inputs see. Same-grid inputs share their jump; if they did not, the one with the
    widest field sets it."""
    if len(fields) == 1:
        return fields[0]
    axes = []
    for per_input in zip(*(f.axes for f in fields)):
        lo = min(a.start - (a.rf - 1) / 2 for a in per_input)
        hi = max(a.start + (a.rf - 1) / 2 for a in per_input)
        widest = max(per_input, key=lambda a: a.rf)
        axes.append(AxisField(rf=hi - lo + 1, jump=widest.jump, start=(lo + hi) / 2,
                              fixed=_hull([a.fixed for a in per_input])))
    return TensorField(tuple(axes), spatial=all(f.spatial for f in fields))


def broadcast(field: TensorField, context: Sequence[TensorField]) -> TensorField:
    """Inputs on a coarser grid (a 1x1 gate, a global context vector) broadcast over `field`'s grid:
    every unit also sees all that their unit 0 sees, wherever it is. That becomes `fixed` context."""
    if not context:
        return field
    return TensorField(tuple(
        replace(a, fixed=_hull([a.fixed] + [c.span(0) for c in per_context]))
        for a, *per_context in zip(field.axes, *(c.axes for c in context))
    ), spatial=field.spatial)
