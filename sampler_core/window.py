"""The window model: one value for a resolved request, one rule for window boxes.

A *target* (see :mod:`sampler_core.target`) is what a user asks for; a
:class:`Window` is what the sampler reads: the frames, the space the window is
in, the window in that space, its pad, how to pad, which channels, and the
transform from that space into the returned sample. It is built once, by
:func:`resolve`, for 2-D and video targets alike; the readers only look at it.

Units and order (always named, never guessed):

* ``window`` / ``pad`` / ``space_dims`` are ``(y, x)`` order, pixels of the
  window's *space* (``'image'``: the image's grid; ``'video'``: the video's
  common grid, see ``warp_img_to_vid``); ``window`` is half-open
  ``((y0, y1), (x0, x1))`` and does not include the pad.
* boxes are ``(N, 4)`` **ltrb** ``(x0, y0, x1, y1)``, half-open, pixels in the
  same space; ``ltrb`` / ``padded`` name the window without / with its pad.
* ``sample_from_space`` is a ``kwimage.Affine`` (``(x, y)`` like every 3x3
  transform): space -> sample pixels (the padded window's top-left at 0, then
  ``scale``).

The window rule, in one place (:func:`window_boxes`): a window of size ``d``
centred on ``c`` starts at ``floor(c - d / 2)`` and has exactly ``d`` pixels;
``d`` is ``window_dims``, or the extent rounded up (``None``), or the larger
rounded-up side on both axes (``'square'``). The pad is added on each side.

Example:
    >>> import numpy as np
    >>> from sampler_core.window import window_boxes
    >>> boxes, padded = window_boxes([5.0], [2.0], [3.0], [3.0], (6, 6), pad=(1, 2))
    >>> boxes.tolist(), padded.tolist()
    ([[2, -1, 8, 5]], [[0, -2, 10, 6]])
    >>> import sampler_core as ndsampler
    >>> from sampler_core.window import resolve
    >>> sampler = ndsampler.CocoSampler.demo('shapes8')
    >>> win = resolve(sampler, {'gid': 1, 'cx': 5, 'cy': 2, 'window_dims': (6, 6), 'pad': 1})
    >>> win.window, win.pad, win.padded_ltrb
    (((-1, 5), (2, 8)), ((1, 1), (1, 1)), (1, -2, 9, 6))
    >>> win.sample_from_space.matrix.tolist()
    [[1.0, 0.0, -1.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]]
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, Sequence

import numpy as np


#: the spaces a window can be in
SPACES = ('image', 'video')

#: Largest padded window, in pixels (height * width), that a sample may have:
#: 2**28 pixels is 768 MiB of uint8 RGB. Larger requests are refused with a
#: ValueError instead of failing inside numpy's allocator.
MAX_WINDOW_PIXELS = 2 ** 28


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def coerce_window_dims(window_dims: Any, height: float | None = None,
                       width: float | None = None) -> tuple[int, int]:
    """Normalise ``window_dims`` to a positive ``(height, width)`` in pixels.

    Args:
        window_dims: ``None`` / ``'extent'`` (use ``height`` / ``width`` rounded
            up), ``'square'`` (the larger of the two on both sides), an int
            ``v`` meaning ``(v, v)``, or a ``(height, width)`` pair.
        height: extent of the target, used by ``None``/``'extent'``/``'square'``.
        width: extent of the target.

    Returns:
        ``(height, width)`` as positive ints.

    Raises:
        ValueError: a non-positive, fractional or unknown size.

    Example:
        >>> coerce_window_dims('square', height=3.2, width=10)
        (10, 10)
        >>> coerce_window_dims(None, height=3.2, width=10)
        (4, 10)
        >>> coerce_window_dims(64)
        (64, 64)
    """
    if window_dims is None or isinstance(window_dims, str):
        key = 'extent' if window_dims is None else window_dims
        if key not in ('extent', 'square'):
            raise ValueError(
                f"window_dims must be (height, width), 'square' or None, got {window_dims!r}")
        if height is None or width is None:
            raise ValueError(
                f'window_dims={window_dims!r} needs the target to have width and height')
        dims = (int(math.ceil(height)), int(math.ceil(width)))
        if key == 'square':
            dims = (max(dims),) * 2
    elif _is_int(window_dims):
        dims = (int(window_dims),) * 2
    else:
        try:
            dims = tuple(window_dims)
        except TypeError:
            raise TypeError(f'window_dims must be (height, width), got {window_dims!r}') from None
        if len(dims) != 2:
            raise ValueError(
                f'window_dims must have 2 entries (height, width), got {window_dims!r}')
        for d in dims:
            if not (_is_int(d) or (isinstance(d, float) and float(d).is_integer())):
                raise ValueError(f'window_dims must be whole pixels, got {window_dims!r}')
        dims = tuple(int(d) for d in dims)
    if dims[0] <= 0 or dims[1] <= 0:
        raise ValueError(f'window size must be positive, got (height, width)={dims}')
    return dims


def coerce_pad(pad: Any, ndim: int = 2) -> tuple[tuple[int, int], ...]:
    """Normalise ``pad`` to ``((before, after),) * ndim`` non-negative ints.

    Args:
        pad: ``None`` (no pad), an int ``p`` (``p`` on every side), a
            ``(ph, pw)`` pair, or ``((top, bottom), (left, right))``.
        ndim: number of spatial dimensions.

    Raises:
        ValueError: a negative pad or one with the wrong number of entries.

    Example:
        >>> coerce_pad(None)
        ((0, 0), (0, 0))
        >>> coerce_pad(((1, 2), 3))
        ((1, 2), (3, 3))
    """
    if pad is None:
        out = ((0, 0),) * ndim
    elif _is_int(pad):
        out = ((int(pad), int(pad)),) * ndim
    else:
        try:
            items = list(pad)
        except TypeError:
            raise TypeError(f'pad must be an int or (height, width), got {pad!r}') from None
        if len(items) != ndim:
            raise ValueError(f'pad must have {ndim} entries (height, width), got {pad!r}')
        out = []
        for p in items:
            if _is_int(p):
                out.append((int(p), int(p)))
            else:
                try:
                    a, b = p
                except (TypeError, ValueError):
                    raise ValueError(f'pad entries must be ints or pairs, got {pad!r}') from None
                if not (_is_int(a) and _is_int(b)):
                    raise ValueError(f'pad entries must be whole pixels, got {pad!r}')
                out.append((int(a), int(b)))
        out = tuple(out)
    if any(v < 0 for pair in out for v in pair):
        raise ValueError(f'pad must not be negative, got {pad!r}')
    return out


def center_extent_to_slices(center: Sequence[float],
                            window_dims: Sequence[int]) -> tuple[slice, slice]:
    """The half-open window of size ``window_dims`` centred on ``center``.

    The one-window form of :func:`window_boxes` (same rule, in Python floats:
    numpy costs ~50 us per call on one row): the low edge is
    ``floor(c - d / 2)`` and the high edge ``low + d``, so the window always
    has exactly the requested size.

    Args:
        center: ``(cy, cx)`` in pixels.
        window_dims: ``(height, width)`` in pixels.

    Example:
        >>> center_extent_to_slices((500.5, 974.9999999999999), (100, 100))
        (slice(450, 550, None), slice(924, 1024, None))
    """
    out = []
    for c, d in zip(center, window_dims):
        low = int(math.floor(c - d / 2.0))
        out.append(slice(low, low + int(d)))
    return tuple(out)


def embed_window(space_slice: tuple[slice, slice], pad: tuple[tuple[int, int], ...],
                 data_dims: Sequence[int]):
    """Split a padded window into the part inside the data and the padding.

    Args:
        space_slice: the unpadded window ``(slice_y, slice_x)``.
        pad: ``((top, bottom), (left, right))``.
        data_dims: ``(height, width)`` of the image.

    Returns:
        ``(outer, inner, extra)``: ``outer`` the padded window (may reach
        outside the image), ``inner`` its intersection with the image (may be
        empty), and ``extra`` the ``((top, bottom), (left, right))`` number of
        padded pixels on each side so that ``np.pad(data[inner], extra)`` has the
        shape of ``outer``.

    Example:
        >>> outer, inner, extra = embed_window(
        ...     (slice(-5, 5), slice(8, 12)), ((0, 0), (1, 1)), (10, 10))
        >>> outer, inner, extra
        ((slice(-5, 5, None), slice(7, 13, None)), (slice(0, 5, None), slice(7, 10, None)), ((5, 0), (0, 3)))
    """
    size = [(sl.stop - sl.start) + pb + pa for sl, (pb, pa) in zip(space_slice, pad)]
    if size[0] * size[1] > MAX_WINDOW_PIXELS:
        raise ValueError(f'window of (height, width)={tuple(size)} with padding is larger than '
                         f'MAX_WINDOW_PIXELS={MAX_WINDOW_PIXELS}; ask for a smaller window')
    outer, inner, extra = [], [], []
    for sl, (pb, pa), dim in zip(space_slice, pad, data_dims):
        lo, hi = sl.start - pb, sl.stop + pa
        ilo = min(max(lo, 0), dim)
        ihi = max(min(hi, dim), ilo)
        outer.append(slice(lo, hi))
        inner.append(slice(ilo, ihi))
        if ihi > ilo:
            extra.append((ilo - lo, hi - ihi))
        else:  # window entirely outside along this axis: all of it is padding
            extra.append((hi - lo, 0))
    return tuple(outer), tuple(inner), tuple(extra)


def window_sizes(height, width, window_dims: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(dh, dw)``: the window size of each target, pixels, as float arrays.

    Args:
        height, width: ``(N,)`` extents of the targets (pixels); only used when
            ``window_dims`` is ``None`` or ``'square'``.
        window_dims: ``(height, width)``, an int ``v`` (``(v, v)``), ``None``
            (the extent rounded up) or ``'square'`` (the larger rounded-up side
            on both axes).

    Raises:
        ValueError: a bad ``window_dims`` (see :func:`coerce_window_dims`).

    Example:
        >>> [a.tolist() for a in window_sizes([3.2, 5.0], [10.0, 1.5], 'square')]
        [[10.0, 5.0], [10.0, 5.0]]
    """
    if window_dims is None or isinstance(window_dims, str):
        if window_dims not in (None, 'extent', 'square'):
            coerce_window_dims(window_dims)          # raises, naming the value
        dh = np.ceil(np.asarray(height, dtype=np.float64)).reshape(-1)
        dw = np.ceil(np.asarray(width, dtype=np.float64)).reshape(-1)
        if window_dims == 'square':
            dh = dw = np.maximum(dh, dw)
        return dh, dw
    h, w = coerce_window_dims(window_dims)
    n = np.asarray(height).reshape(-1).shape[0] if height is not None else 1
    return np.full(n, float(h)), np.full(n, float(w))


def window_boxes(cx, cy, width=None, height=None, window_dims: Any = None,
                 pad: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The windows the sampler reads for centred targets: ``(boxes, padded)``.

    This is the one place where a centre and a size become a window; the
    sampler (:func:`center_extent_to_slices` is its one-row form), the pools,
    the splits, the class balance and the explorer all use it.

    Args:
        cx, cy: ``(N,)`` centres, pixels, image (or video) space.
        width, height: ``(N,)`` extents of the targets (boxes), pixels.
        window_dims: see :func:`window_sizes`.
        pad: ``None``, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.

    Returns:
        ``(boxes, padded)``: two ``(N, 4)`` int64 arrays, ltrb, half-open,
        pixels; ``padded`` is ``boxes`` with the pad added on each side.

    Example:
        >>> boxes, padded = window_boxes([10.5, 0.0], [4.0, 0.0], [3.0, 2.0], [5.0, 2.0])
        >>> boxes.tolist()
        [[9, 1, 12, 6], [-1, -1, 1, 1]]
    """
    cx = np.asarray(cx, dtype=np.float64).reshape(-1)
    cy = np.asarray(cy, dtype=np.float64).reshape(-1)
    if width is None or height is None:
        if window_dims is None or isinstance(window_dims, str):
            raise ValueError(f'window_dims={window_dims!r} needs the targets\' width and height')
        height = width = cx
    dh, dw = window_sizes(height, width, window_dims)
    if np.any(dh <= 0) or np.any(dw <= 0):
        bad = int(np.flatnonzero((dh <= 0) | (dw <= 0))[0])
        raise ValueError(f'window size must be positive, got (height, width)='
                         f'{(dh[bad], dw[bad])} for target {bad}')
    x0 = np.floor(cx - dw / 2.0)
    y0 = np.floor(cy - dh / 2.0)
    boxes = np.stack([x0, y0, x0 + dw, y0 + dh], axis=1).astype(np.int64).reshape(-1, 4)
    return boxes, pad_boxes(boxes, pad)


def pad_boxes(ltrb, pad: Any = None) -> np.ndarray:
    """ltrb boxes ``(N, 4)`` grown by ``pad`` on each side (same dtype).

    Args:
        ltrb: ``(N, 4)`` boxes, pixels.
        pad: ``None``, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.

    Example:
        >>> pad_boxes([[0, 0, 4, 4]], ((1, 2), (3, 4))).tolist()
        [[-3, -1, 8, 6]]
    """
    ltrb = np.asarray(ltrb)
    (pt, pb), (pl, pr) = coerce_pad(pad)
    return ltrb.reshape(-1, 4) + np.array([-pl, -pt, pr, pb], dtype=ltrb.dtype)


def padding_fractions(padded, img_width, img_height) -> np.ndarray:
    """Fraction of each padded window's pixels that lie outside its image.

    Arithmetic on the boxes (no pixel is read): a sample of the padded window
    ``padded`` holds ``area - inside`` padding pixels (whatever the pad mode),
    ``inside`` its overlap with ``[0, img_width) x [0, img_height)``.

    Args:
        padded: ``(N, 4)`` ltrb padded windows (:func:`window_boxes`' second
            output), pixels, image space.
        img_width, img_height: ``(N,)`` (or scalar) image sizes, pixels.

    Returns:
        ``(N,)`` float64 in ``[0, 1]``: ``(area - inside) / area``.

    Example:
        >>> padding_fractions([[-2, 0, 8, 10], [0, 0, 4, 4]], 100, 100).tolist()
        [0.2, 0.0]
    """
    padded = np.asarray(padded, dtype=np.int64).reshape(-1, 4)
    w = np.asarray(img_width, dtype=np.int64)
    h = np.asarray(img_height, dtype=np.int64)
    iw = np.clip(np.minimum(padded[:, 2], w) - np.maximum(padded[:, 0], 0), 0, None)
    ih = np.clip(np.minimum(padded[:, 3], h) - np.maximum(padded[:, 1], 0), 0, None)
    area = (padded[:, 2] - padded[:, 0]) * (padded[:, 3] - padded[:, 1])
    return (area - iw * ih) / area


@dataclasses.dataclass(frozen=True, eq=False)
class Window:
    """A resolved request: what a sampler reads, in one value.

    Attributes:
        frames: image id of each time step (one for a 2-D target), ``None`` for
            a time-padding frame.
        space: ``'image'`` or ``'video'``: the grid ``window`` is in.
        space_dims: ``(height, width)`` of that space, pixels.
        window: ``((y0, y1), (x0, x1))``, half-open, pixels of ``space``, without pad.
        pad: ``((top, bottom), (left, right))`` pixels added around ``window``.
        time_pad: ``(before, after)`` padding frames (included in ``frames``).
        padkw: ``numpy.pad`` keyword arguments (``mode``, ``constant_values``).
        channels: the channel request as given (``None`` for all).
        nodata: ``None``, a number (made NaN), ``'float'`` or ``'auto'``.
        dtype: output dtype or ``None``.
        scale: ``(sy, sx)`` or ``None`` (no scaling).
        interpolation, antialias: resampling of scaled / warped frames.
        native: ``use_native_scale`` (each asset at its own resolution).
        as_xarray: return ``xarray.DataArray``.
        delayed: read through delayed_image (video, multi-asset, scale,
            channels the image lacks), else crop the memmap.
        target: the resolved target dict (returned as ``sample['target']``).

    Example:
        >>> win = Window(frames=(1,), space='image', space_dims=(100, 80),
        ...              window=((10, 20), (30, 50)), pad=((1, 1), (2, 2)), scale=(0.5, 0.5))
        >>> win.padded_ltrb, win.space_slice
        ((28, 9, 52, 21), (slice(10, 20, None), slice(30, 50, None)))
        >>> win.sample_from_space.matrix.tolist()
        [[0.5, 0.0, -14.0], [0.0, 0.5, -4.5], [0.0, 0.0, 1.0]]
    """
    frames: tuple
    space: str
    space_dims: tuple
    window: tuple
    pad: tuple = ((0, 0), (0, 0))
    time_pad: tuple = (0, 0)
    padkw: dict = dataclasses.field(default_factory=lambda: {'mode': 'constant'})
    channels: Any = None
    nodata: Any = None
    dtype: Any = None
    scale: tuple | None = None
    interpolation: str = 'linear'
    antialias: bool = True
    native: bool = False
    as_xarray: bool = False
    delayed: bool = False
    target: dict = dataclasses.field(default=None, repr=False)

    @property
    def is3d(self) -> bool:
        """True for video targets (``im`` is ``(T, H, W, C)``)."""
        return self.target is not None and self.target.get('gids') is not None

    @property
    def space_slice(self) -> tuple[slice, slice]:
        """``(slice_y, slice_x)`` of the window without pad."""
        (y0, y1), (x0, x1) = self.window
        return slice(y0, y1), slice(x0, x1)

    @property
    def padded_slice(self) -> tuple[slice, slice]:
        """``(slice_y, slice_x)`` of the window with its pad (may reach outside)."""
        x0, y0, x1, y1 = self.padded_ltrb
        return slice(y0, y1), slice(x0, x1)

    @property
    def ltrb(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the window without pad."""
        (y0, y1), (x0, x1) = self.window
        return x0, y0, x1, y1

    @property
    def padded_ltrb(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the window with its pad."""
        (y0, y1), (x0, x1) = self.window
        (pt, pb), (pl, pr) = self.pad
        return x0 - pl, y0 - pt, x1 + pr, y1 + pb

    @property
    def symmetric_pad(self):
        """``params['pad']``: ``(ph, pw)`` when both sides agree, else the pairs."""
        pad = self.pad
        return tuple(a for a, _ in pad) if all(a == b for a, b in pad) else pad

    @functools.cached_property
    def sample_from_space(self):
        """``kwimage.Affine``: space pixels -> sample pixels (translate, then scale)."""
        import kwimage
        x0, y0, _, _ = self.padded_ltrb
        sy, sx = self.scale or (1.0, 1.0)
        return kwimage.Affine(np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy],
                                        [0.0, 0.0, 1.0]]))


def resolve(sampler, target: dict | None = None, **kwargs) -> Window:
    """Parse a target of ``sampler`` into a :class:`Window` (2-D and video targets).

    Args:
        sampler (CocoSampler): the sampler whose dataset the target names.
        target: a target dict (see :mod:`sampler_core.target`).
        **kwargs: old-style ``pad``, ``padkw``, ``dtype``, ``nodata``,
            ``window_dims`` (moved into the target).

    Raises:
        KeyError, ValueError, TypeError: a bad target (naming the bad value).

    Example:
        >>> import sampler_core as ndsampler
        >>> sampler = ndsampler.CocoSampler.demo('vidshapes1', num_frames=3, image_size=(32, 32))
        >>> win = resolve(sampler, {'vidid': 1, 'time_slice': slice(-1, 2), 'scale': 0.5})
        >>> win.frames, win.space, win.window, win.scale
        ((None, 1, 2), 'video', ((0, 32), (0, 32)), (0.5, 0.5))
    """
    return from_target(sampler, sampler._infer_target_attributes(target, **kwargs))


def from_target(sampler, t: dict) -> Window:
    """The :class:`Window` of a target dict already resolved by the sampler.

    Example:
        >>> import sampler_core as ndsampler
        >>> sampler = ndsampler.CocoSampler.demo('shapes8')
        >>> t = sampler._infer_target_attributes({'gid': 2, 'slices': (slice(0, 8), slice(4, 9))})
        >>> win = from_target(sampler, t)
        >>> win.frames, win.window, win.delayed
        ((2,), ((0, 8), (4, 9)), False)
    """
    mods = _MODULES or _load_modules()
    video = mods['video']
    sl_y, sl_x = t['space_slice']
    if t.get('gids') is not None:
        time_pad, pad = video._coerce_video_pad(t.get('pad'))
        frames = tuple(video.frame_gids(sampler, t, time_pad))
        space = 'video' if t.get('vidid') is not None else 'image'
        space_dims = tuple(t['space_dims'])
        delayed = True
    else:
        time_pad, pad = (0, 0), coerce_pad(t.get('pad'))
        frames = (t['gid'],)
        space = 'image'
        space_dims = tuple(t['data_dims'])
        delayed = video.wants_delayed(sampler, t)
        if delayed:
            video._check_sampling_keys(sampler, t)
    target = mods['target']
    interpolation, antialias = target.coerce_interpolation(t.get('interpolation', 'auto'),
                                                           t.get('antialias', 'auto'))
    # every field is given: skip the frozen dataclass' per-field setattr (~4 us a sample)
    win = object.__new__(Window)
    win.__dict__.update(
        frames=frames, space=space, space_dims=space_dims,
        window=((sl_y.start, sl_y.stop), (sl_x.start, sl_x.stop)), pad=pad,
        time_pad=tuple(time_pad), padkw=t['padkw'], channels=t.get('channels', None),
        nodata=t.get('nodata', None), dtype=t.get('dtype', None),
        scale=target.coerce_scale(t.get('scale', None)), interpolation=interpolation,
        antialias=antialias, native=bool(t.get('use_native_scale', False)),
        as_xarray=bool(t.get('as_xarray', False)), delayed=delayed, target=t)
    return win


#: the modules from_target uses; they import this one, so they are looked up on first use
_MODULES: dict = {}


def _load_modules() -> dict:
    from sampler_core import target, video
    _MODULES.update(video=video, target=target)
    return _MODULES
