"""Sliding-window sample grids: tile every image (or video) with windows of one size.

``new_sample_grid(dset, task, window_dims, window_overlap)`` returns every window
of a regular grid as a target dict that :meth:`sampler_core.CocoSampler.load_sample`
accepts, split into *positives* (the window overlaps at least one annotation of
a class that counts) and *negatives*:

* ``task='image_detection'``: ``window_dims=(h, w)``, targets
  ``{'gid', 'slices': (slice_y, slice_x), 'aids'}`` in image space;
* ``task='video_detection'``: ``window_dims=(t, h, w)``, targets
  ``{'vidid', 'time_slice', 'space_slice', 'gids', 'aids'}`` in video space
  (frames in ``frame_index`` order).

``window_overlap`` is the fraction ``f`` in ``[0, 1)`` of a window shared with
the next one along each axis (a number, or one per axis): windows start every
``stride = round(d * (1 - f))`` pixels (frames), ``d`` the window size.

Along each axis, ``edge`` says what happens at the far border, where
``length - d`` is rarely a multiple of the stride (``length=10, d=4, stride=4``)::

    shift (default)  [0, 4) [4, 8) [6, 10)     last window moved back, flush with the border
    pad              [0, 4) [4, 8) [8, 12)     constant stride; the last one reaches past
                                               the border and is padded with nodata
    drop             [0, 4) [4, 8)             windows that would not fit are dropped

An axis shorter than the window always gets one window ``[0, d)`` (padded), so
no image is ever left without a window. With ``'shift'`` and ``'pad'`` every
pixel of every image is covered; with ``'shift'`` no window reaches outside an
image at least as large as the window.

A window overlaps an annotation when the visible fraction of the annotation's box
in the window is positive (touching is not overlapping; see ``docs/design.md``).
An annotation whose ``category_id`` is not a category of the dataset never makes
a window positive (as it is never a positive target of the random pools).

Example:
    >>> import kwcoco
    >>> from sampler_core.grid import new_sample_grid
    >>> dset = kwcoco.CocoDataset.demo('shapes8')
    >>> grid = new_sample_grid(dset, 'image_detection', (256, 256))
    >>> len(grid['targets']) == 8 * 9  # 3 x 3 windows on each 600 x 600 image
    True
    >>> grid['targets'][0]['slices']
    (slice(0, 256, None), slice(0, 256, None))
    >>> len(grid['positives']) + len(grid['negatives']) == len(grid['targets'])
    True
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

#: how the last window of an axis is placed
EDGE_MODES = ('shift', 'pad', 'drop')

#: tasks :func:`new_sample_grid` knows
TASKS = ('image_detection', 'video_detection')

#: categories that never make a window positive (case-insensitive)
NEGATIVE_CLASSES = ('ignore', 'background')

#: most windows one grid may hold. Every window becomes a target dict (about
#: 0.5 kB with its slices and annotation list), so a grid at the limit takes
#: about 0.5 GB; larger grids are refused before any is built.
MAX_GRID_WINDOWS = 1_000_000


def _check_edge(edge: str) -> str:
    if edge not in EDGE_MODES:
        raise ValueError(f'unknown edge mode {edge!r}; choose from {list(EDGE_MODES)}')
    return edge


def window_stride(window: int, overlap: float = 0.0) -> int:
    """Step between consecutive windows of size ``window`` sharing ``overlap`` of it.

    Raises:
        ValueError: ``overlap`` outside ``[0, 1)``, or one so close to 1 that the
            step rounds to zero.

    Example:
        >>> window_stride(128, 0.5), window_stride(3, 0.0), window_stride(100, 0.25)
        (64, 3, 75)
    """
    overlap = float(overlap)
    if not (0.0 <= overlap < 1.0):
        raise ValueError(f'window_overlap must be in [0, 1), got {overlap!r}')
    stride = int(round(window - window * overlap))
    if stride <= 0:
        raise ValueError(f'window_overlap={overlap} leaves no step between windows of size '
                         f'{window}; use a smaller overlap')
    return stride


def _checked_axis(length, window, overlap, edge) -> tuple[int, int, int]:
    """``(length, window, stride)`` of one grid axis as ints, after checking them."""
    _check_edge(edge)
    length, window = int(length), int(window)
    if length < 1 or window < 1:
        raise ValueError(f'length and window must be positive, got {length} and {window}')
    return length, window, window_stride(window, overlap)


def window_starts(length: int, window: int, overlap: float = 0.0,
                  edge: str = 'shift') -> np.ndarray:
    """Start offsets of the windows tiling ``[0, length)`` along one axis.

    Args:
        length: extent of the axis (pixels or frames), ``>= 1``.
        window: window size, ``>= 1``.
        overlap: fraction of a window shared with the next one, in ``[0, 1)``.
        edge: ``'shift'``, ``'pad'`` or ``'drop'`` (see the module docstring).

    Returns:
        ``(K,)`` int64 starts, increasing; ``K >= 1``.

    Example:
        >>> window_starts(10, 4).tolist(), window_starts(10, 4, edge='pad').tolist()
        ([0, 4, 6], [0, 4, 8])
        >>> window_starts(10, 4, edge='drop').tolist(), window_starts(3, 4).tolist()
        ([0, 4], [0])
    """
    length, window, stride = _checked_axis(length, window, overlap, edge)
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    if edge == 'pad':
        num = int(math.ceil((length - window) / stride)) + 1
        return np.arange(num, dtype=np.int64) * stride
    starts = np.arange(0, length - window + 1, stride, dtype=np.int64)
    if edge == 'shift' and starts[-1] + window < length:
        starts = np.append(starts, length - window)
    return starts


def window_count(length: int, window: int, overlap: float = 0.0, edge: str = 'shift') -> int:
    """``len(window_starts(length, window, overlap, edge))``, by arithmetic alone.

    Example:
        >>> [window_count(10, 4, edge=e) for e in EDGE_MODES], window_count(3, 4)
        ([3, 3, 2], 1)
    """
    length, window, stride = _checked_axis(length, window, overlap, edge)
    if length <= window:
        return 1
    if edge == 'pad':
        return -(-(length - window) // stride) + 1
    num = (length - window) // stride + 1
    if edge == 'shift' and (num - 1) * stride + window < length:
        num += 1
    return num


def count_grid_windows(extents: Sequence[Sequence[int]], window_dims: Any,
                       window_overlap: Any = 0.0, edge: str = 'shift') -> int:
    """The number of windows of a grid over ``extents``, by arithmetic alone (nothing built).

    Args:
        extents: one ``(h, w)`` (images) or ``(t, h, w)`` (videos) per item, pixels / frames.
        window_dims, window_overlap, edge: as for :func:`new_image_sample_grid`.

    Example:
        >>> count_grid_windows([(10, 10), (3, 20)], (4, 4)), count_grid_windows([(10, 10)], 'full')
        (14, 1)
    """
    total = 0
    ndim = len(extents[0]) if len(extents) else 2
    overlap = _coerce_overlap(window_overlap, ndim)
    for full in extents:
        dims = _coerce_dims(window_dims, ndim, full)
        num = 1
        for n, d, f in zip(full, dims, overlap):
            num *= window_count(n, d, f, edge)
        total += num
    return total


def _check_grid_size(extents: list[tuple[int, ...]], window_dims: Any,
                     window_overlap: Any, edge: str) -> int:
    """Count the windows of a grid over ``extents`` (one ``(h, w)`` / ``(t, h, w)`` each).

    Raises:
        ValueError: more than :data:`MAX_GRID_WINDOWS` windows, naming the count.
    """
    total = count_grid_windows(extents, window_dims, window_overlap, edge)
    if total > MAX_GRID_WINDOWS:
        raise ValueError(
            f'a grid of window_dims={window_dims!r} with window_overlap={window_overlap!r} '
            f'over {len(extents)} images / videos has {total:,} windows, more than '
            f'MAX_GRID_WINDOWS ({MAX_GRID_WINDOWS:,}); use larger windows or less overlap')
    return total


def _coerce_dims(window_dims: Any, ndim: int, full: Sequence[int]) -> tuple[int, ...]:
    if isinstance(window_dims, str):
        if window_dims != 'full':
            raise ValueError(f"window_dims must be a size or 'full', got {window_dims!r}")
        return tuple(int(v) for v in full)
    if isinstance(window_dims, (int, np.integer)) and not isinstance(window_dims, bool):
        window_dims = (int(window_dims),) * ndim
    try:
        dims = tuple(window_dims)
    except TypeError:
        raise TypeError(f'window_dims must be {ndim} sizes, got {window_dims!r}') from None
    if len(dims) != ndim:
        names = '(t, h, w)' if ndim == 3 else '(h, w)'
        raise ValueError(f'window_dims must be {names}, got {window_dims!r}')
    out = []
    for d in dims:
        if d is None:
            out.append(None)
            continue
        if isinstance(d, bool) or not float(d).is_integer() or d <= 0:
            raise ValueError(f'window_dims must be positive whole sizes, got {window_dims!r}')
        out.append(int(d))
    return tuple(int(f) if d is None else d for d, f in zip(out, full))


def _coerce_overlap(window_overlap: Any, ndim: int) -> tuple[float, ...]:
    if isinstance(window_overlap, (int, float, np.integer, np.floating)) and \
            not isinstance(window_overlap, bool):
        out = (float(window_overlap),) * ndim
    else:
        try:
            out = tuple(float(v) for v in window_overlap)
        except (TypeError, ValueError):
            raise TypeError(f'window_overlap must be a fraction or one per axis, '
                            f'got {window_overlap!r}') from None
        if len(out) != ndim:
            raise ValueError(f'window_overlap needs {ndim} fractions, got {window_overlap!r}')
    for v in out:
        if not (0.0 <= v < 1.0):
            raise ValueError(f'window_overlap must be in [0, 1), got {window_overlap!r}')
    return out


def _grid_slices(full: Sequence[int], dims: Sequence[int], overlap: Sequence[float],
                 edge: str) -> list[list[slice]]:
    """Per axis, the window slices along it."""
    return [[slice(int(s), int(s) + d) for s in window_starts(n, d, f, edge)]
            for n, d, f in zip(full, dims, overlap)]


# --------------------------------------------------------------------------- overlap
def pairwise_visible(windows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Visible fraction of every box (columns) in every window (rows).

    The rule of :func:`sampler_core.index.visible_fractions` (area inside the
    half-open window over the box's area; points count 1.0 inside; segments the
    fraction of their length inside), for all pairs.

    Args:
        windows: ``(M, 4)`` ltrb windows.
        boxes: ``(N, 4)`` ltrb annotation boxes.

    Returns:
        ``(M, N)`` fractions in ``[0, 1]``.

    Example:
        >>> pairwise_visible(np.array([[0, 0, 10, 10], [10, 0, 20, 10]]),
        ...                  np.array([[5, 0, 15, 10], [10, 2, 12, 4]])).tolist()
        [[0.5, 0.0], [0.5, 1.0]]
    """
    from sampler_core.index import visible_fractions
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    m, n = len(windows), len(boxes)
    if m == 0 or n == 0:
        return np.zeros((m, n))
    fracs = visible_fractions(np.tile(boxes, (m, 1)), np.repeat(windows, n, axis=0))
    return fracs.reshape(m, n)


class _ImageBoxes:
    """Annotation boxes grouped by image, with a per-annotation 'counts as positive' flag."""

    def __init__(self, dset, negative_classes, classes_of_interest):
        from sampler_core.index import coco_box_arrays
        aids, gids, xywh = coco_box_arrays(dset)
        valid = np.isfinite(xywh).all(axis=1) & (xywh[:, 2] >= 0) & (xywh[:, 3] >= 0)
        aids, gids, xywh = aids[valid], gids[valid], xywh[valid]
        ltrb = xywh.copy()
        ltrb[:, 2:] += ltrb[:, :2]
        neg = {str(c).lower() for c in (negative_classes or ())}
        coi = None if not classes_of_interest else {str(c).lower() for c in classes_of_interest}
        cat_ok = {}
        for cid, cat in dset.cats.items():
            name = str(cat.get('name', '')).lower()
            cat_ok[cid] = (name not in neg) and (coi is None or name in coi)
        counts = np.array([cat_ok.get(dset.anns[a].get('category_id'), False)
                           for a in aids.tolist()], dtype=bool)
        order = np.argsort(gids, kind='stable')
        self.aids, self.ltrb, self.counts = aids[order], ltrb[order], counts[order]
        uniq, starts = np.unique(gids[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        self.rows = {int(g): (int(s), int(e)) for g, s, e in zip(uniq, starts, ends)}

    def of(self, gid):
        s, e = self.rows.get(int(gid), (0, 0))
        return self.aids[s:e], self.ltrb[s:e], self.counts[s:e]

    def hits(self, gid, windows: np.ndarray, chunk: int = 256):
        """Per window: (sorted overlapping aids, whether one of them counts)."""
        aids, ltrb, counts = self.of(gid)
        out = []
        for i in range(0, len(windows), chunk):
            vis = pairwise_visible(windows[i:i + chunk], ltrb) > 0
            for row in vis:
                sel = aids[row]
                out.append((sorted(sel.tolist()), bool(counts[row].any())))
        return out


# --------------------------------------------------------------------------- grids
def _finish(targets: list, flags: list, use_annots: bool, verbose: int) -> dict:
    pos_idxs = [i for i, f in enumerate(flags) if f]
    neg_idxs = [i for i, f in enumerate(flags) if not f]
    if verbose:
        print(f'Found {len(targets)} targets, {len(pos_idxs)} positives, '
              f'{len(neg_idxs)} negatives')
    return {
        'targets': targets,
        'positives_indexes': pos_idxs,
        'negatives_indexes': neg_idxs,
        'positives': [targets[i] for i in pos_idxs],
        'negatives': [targets[i] for i in neg_idxs],
    }


def new_image_sample_grid(dset, window_dims, window_overlap=0.0, edge: str = 'shift',
                          use_annots: bool = True,
                          negative_classes: Iterable[str] = NEGATIVE_CLASSES,
                          classes_of_interest: Iterable[str] | None = None,
                          verbose: int = 0) -> dict:
    """Tile every image with ``window_dims = (h, w)`` windows (image space).

    Args:
        dset (kwcoco.CocoDataset): images need ``width`` / ``height``.
        window_dims: ``(h, w)``, an int for square windows, or ``'full'`` (one
            window per image); a ``None`` entry means the whole axis.
        window_overlap: fraction in ``[0, 1)``, or ``(fy, fx)``.
        edge: ``'shift'`` (default), ``'pad'`` or ``'drop'``.
        use_annots: look up the annotations of each window (else every
            window is a negative and ``aids`` is ``None``).
        negative_classes: category names that never make a window positive.
        classes_of_interest: if given, only these categories do.
        verbose: print counts.

    Returns:
        ``{'targets', 'positives', 'negatives', 'positives_indexes',
        'negatives_indexes'}``; targets are ``{'gid', 'slices', 'aids'}``.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes8')
        >>> grid = new_image_sample_grid(dset, (300, 250), window_overlap=0.5)
        >>> sorted({tr['slices'][1].start for tr in grid['targets']})
        [0, 125, 250, 350]
    """
    _check_edge(edge)
    _coerce_dims(window_dims, 2, (1, 1))
    _coerce_overlap(window_overlap, 2)
    for gid, img in dset.imgs.items():
        if img.get('width') is None or img.get('height') is None:
            raise ValueError(f'image {gid} has no width / height')
        full = (int(img['height']), int(img['width']))
        if min(full) <= 0:
            raise ValueError(f'image {gid} ({img.get("file_name")}) has (height, width)={full} '
                             f'in the dataset; a grid needs a positive size')
    _check_grid_size([(int(img['height']), int(img['width'])) for img in dset.imgs.values()],
                     window_dims, window_overlap, edge)
    boxes = _ImageBoxes(dset, negative_classes, classes_of_interest) if use_annots else None
    targets, flags = [], []
    for gid, img in dset.imgs.items():
        full = (int(img['height']), int(img['width']))
        dims = _coerce_dims(window_dims, 2, full)
        overlap = _coerce_overlap(window_overlap, 2)
        ys, xs = _grid_slices(full, dims, overlap, edge)
        regions = [(y, x) for y in ys for x in xs]
        if boxes is not None:
            windows = np.array([[x.start, y.start, x.stop, y.stop] for y, x in regions],
                               dtype=np.float64)
            hits = boxes.hits(gid, windows)
        else:
            hits = [(None, False)] * len(regions)
        for region, (aids, positive) in zip(regions, hits):
            targets.append({'gid': gid, 'slices': region, 'aids': aids})
            flags.append(positive)
    return _finish(targets, flags, use_annots, verbose)


def _video_extents(dset) -> list[tuple[int, list[int], tuple[int, int, int]]]:
    """``(vidid, gids, (t, h, w))`` of every video with frames (frames in kwcoco's order)."""
    out = []
    for vidid, video in dset.index.videos.items():
        gids = list(dset.index.vidid_to_gids[vidid])
        if not gids:
            continue
        if video.get('height') is not None and video.get('width') is not None:
            space = (int(video['height']), int(video['width']))
        else:
            first = dset.imgs[gids[0]]
            space = (int(first['height']), int(first['width']))
        out.append((vidid, gids, (len(gids),) + space))
    return out


def new_video_sample_grid(dset, window_dims, window_overlap=0.0, edge: str = 'shift',
                          use_annots: bool = True,
                          negative_classes: Iterable[str] = NEGATIVE_CLASSES,
                          classes_of_interest: Iterable[str] | None = None,
                          verbose: int = 0) -> dict:
    """Tile every video with ``window_dims = (t, h, w)`` space-time windows (video space).

    A window is positive when, in any of its frames, it overlaps an annotation
    (the window is warped into each frame's image space with the inverse of
    ``warp_img_to_vid``). Time windows that reach past the last frame (``'pad'``,
    or a video shorter than ``t``) keep only the real frames in ``gids``; the
    loader pads the missing ones.

    Args:
        dset (kwcoco.CocoDataset): a dataset with videos.
        window_dims: ``(t, h, w)`` or ``'full'``; ``None`` entries mean the whole axis.
        window_overlap: fraction in ``[0, 1)``, or ``(ft, fy, fx)``.
        edge, use_annots, negative_classes, classes_of_interest, verbose: see
            :func:`new_image_sample_grid`.

    Returns:
        like :func:`new_image_sample_grid`; targets are ``{'vidid',
        'time_slice', 'space_slice', 'gids', 'aids'}``.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('vidshapes1', num_frames=5, image_size=(64, 64))
        >>> grid = new_video_sample_grid(dset, (3, 32, 32))
        >>> [(tr['time_slice'], tr['gids']) for tr in grid['targets'][::4]]
        [(slice(0, 3, None), [1, 2, 3]), (slice(2, 5, None), [3, 4, 5])]
    """
    import kwimage
    _check_edge(edge)
    _coerce_dims(window_dims, 3, (1, 1, 1))
    _coerce_overlap(window_overlap, 3)
    videos = _video_extents(dset)
    _check_grid_size([full for _, _, full in videos], window_dims, window_overlap, edge)
    boxes = _ImageBoxes(dset, negative_classes, classes_of_interest) if use_annots else None
    targets, flags = [], []
    for vidid, gids, full in videos:
        dims = _coerce_dims(window_dims, 3, full)
        overlap = _coerce_overlap(window_overlap, 3)
        ts, ys, xs = _grid_slices(full, dims, overlap, edge)
        spatial = [(y, x) for y in ys for x in xs]
        if boxes is not None:
            vid_windows = kwimage.Boxes(np.array(
                [[x.start, y.start, x.stop, y.stop] for y, x in spatial], dtype=np.float64), 'ltrb')
            frame_hits = {}
            for gid in gids:
                warp = dset.imgs[gid].get('warp_img_to_vid', None)
                tf_img_from_vid = kwimage.Affine.coerce(warp).inv() if warp is not None else None
                img_windows = vid_windows if tf_img_from_vid is None else \
                    vid_windows.warp(tf_img_from_vid)
                frame_hits[gid] = boxes.hits(gid, img_windows.to_ltrb().data)
        for t_sl in ts:
            frame_gids = [gids[i] for i in range(t_sl.start, t_sl.stop) if i < len(gids)]
            for k, (y, x) in enumerate(spatial):
                if boxes is not None:
                    aids, positive = set(), False
                    for gid in frame_gids:
                        a, p = frame_hits[gid][k]
                        aids.update(a)
                        positive = positive or p
                    aids = sorted(aids)
                else:
                    aids, positive = None, False
                targets.append({'vidid': vidid, 'time_slice': t_sl, 'space_slice': (y, x),
                                'gids': frame_gids, 'aids': aids})
                flags.append(positive)
    return _finish(targets, flags, use_annots, verbose)


def new_sample_grid(dset, task: str, window_dims, window_overlap=0.0, **kwargs) -> dict:
    """Sliding-window targets for ``task`` (``'image_detection'`` / ``'video_detection'``).

    Args:
        dset (kwcoco.CocoDataset): the dataset.
        task: ``'image_detection'`` (``window_dims=(h, w)``) or
            ``'video_detection'`` (``window_dims=(t, h, w)``).
        window_dims: window size, see the task's function.
        window_overlap: fraction of a window shared with the next, in ``[0, 1)``.
        **kwargs: ``edge``, ``use_annots``, ``negative_classes``,
            ``classes_of_interest``, ``verbose``.

    Raises:
        ValueError: an unknown task, edge mode, bad sizes or overlap.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('vidshapes1', num_frames=2, image_size=(40, 40))
        >>> grid = new_sample_grid(dset, 'video_detection', (2, 32, 32), edge='pad')
        >>> [tr['space_slice'][1] for tr in grid['targets'][:2]]
        [slice(0, 32, None), slice(32, 64, None)]
    """
    if task == 'image_detection':
        return new_image_sample_grid(dset, window_dims, window_overlap, **kwargs)
    if task == 'video_detection':
        return new_video_sample_grid(dset, window_dims, window_overlap, **kwargs)
    raise ValueError(f'unknown task {task!r}; choose from {list(TASKS)}')
