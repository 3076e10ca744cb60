"""Views: pure functions from the state's data (sampler, pools, config) to
HoloViews elements, arrays and tables. No widgets, no Panel.

Coordinates: everything drawn over the overview is in image pixels, ``x`` to
the right and ``y`` down (the plots invert their y axis); boxes are ltrb.
Detail and gallery windows are drawn in window pixels (``rel = abs + offset``).

Example:
    >>> from app.state import ExplorerState
    >>> from app import views
    >>> state = ExplorerState(dataset='shapes8', n_pos=4, backend=None)
    >>> rgb = views.overview_image(state.sampler, state.gid, max_px=100)
    >>> max(rgb.data.shape[:2]) <= 100
    True
    >>> cols = views.window_columns(state.pools, state.pools.pos.gid.iloc[0])
    >>> 'pos' in set(cols['kind'])   # green positive windows of that image
    True
"""
from __future__ import annotations

import math
import warnings
import weakref

import holoviews as hv
import numpy as np

from app.colors import UNKNOWN, category_colors  # noqa: F401  (views.<name>)
from sampler_core.window import pad_boxes, window_boxes

#: colour of positive / negative / highlighted / clicked windows
POS_COLOR, NEG_COLOR, SELECT_COLOR, CLICK_COLOR = '#16a34a', '#dc2626', '#facc15', '#06b6d4'
#: colour of chart bars that are no category (negatives, grid windows, negatives asked)
OTHER_COLOR = '#94a3b8'
#: largest side (pixels) of the overview image sent to the browser
OVERVIEW_PX = 1000
#: most pool windows looked at for the visible-fraction histogram
STATS_LIMIT = 2000
#: most annotations the overview draws as glyphs (with hover); with more boxes in view, they
#: are drawn into the overview image instead (rasterised at its resolution)
VECTOR_LIMIT = 1000


# ---------------------------------------------------------------- browsing
def image_options(table, limit: int = 500) -> dict:
    """``{label: gid}`` for a selector (at most ``limit`` entries, dataset order)."""
    sub = table.iloc[:limit]
    return dict(zip(sub['label'].tolist(), sub['gid'].tolist()))


#: dataset -> (number of annotations, (annotation gids, category indexes, category ids));
#: forgotten with the dataset
_ANN_ARRAYS = weakref.WeakKeyDictionary()


def _annotation_arrays(dset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gids, cat_index, cids)``: each annotation's image id and the index of its
    category in ``cids`` (the sorted category ids; ``len(cids)`` for an unknown one)."""
    hit = _ANN_ARRAYS.get(dset)
    if hit is None or hit[0] != len(dset.anns):
        cids = np.array(sorted(dset.cats), dtype=np.int64)
        anns = dset.anns.values()
        gids = np.fromiter((a.get('image_id', -1) for a in anns), np.int64, len(dset.anns))
        acid = np.fromiter((a.get('category_id', -1) if isinstance(a.get('category_id'), int)
                            else -1 for a in anns), np.int64, len(dset.anns))
        pos = np.searchsorted(cids, acid)
        known = (pos < len(cids)) & (cids[np.minimum(pos, len(cids) - 1)] == acid) \
            if len(cids) else np.zeros(len(acid), bool)
        index = np.where(known, pos, len(cids))
        hit = _ANN_ARRAYS[dset] = (len(dset.anns), (gids, index, cids))
    return hit[1]


def label_counts(dset, gids=None, pools=None):
    """Each category with its counts: what the sidebar's label list shows.

    Args:
        dset: the ``kwcoco.CocoDataset``.
        gids: the images of the current filter (None: every image).
        pools: :class:`app.pools.Pools` (None: no ``positives`` counted).

    Returns:
        ``pandas.DataFrame`` in category id order: ``cid``, ``name``, ``color``
        (:func:`app.colors.category_colors`), ``annotations`` (in the dataset),
        ``in_filter`` (in the images ``gids``) and ``positives`` (positive pool
        windows of the category).

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes8')
        >>> table = label_counts(dset, gids=[1])
        >>> int(table['annotations'].sum()) == len(dset.anns)
        True
        >>> int(table['in_filter'].sum()) == len(dset.index.gid_to_aids[1])
        True
    """
    import pandas as pd
    cids = np.array(sorted(dset.cats), dtype=np.int64)
    n = len(cids)
    by_cat = dset.index.cid_to_aids
    total = np.array([len(by_cat.get(c, ())) for c in cids.tolist()], dtype=np.int64)
    if gids is None:
        in_filter = total
    else:       # per-annotation arrays: built once per dataset, on the first filter
        ann_gids, index, _ = _annotation_arrays(dset)
        keep = np.isin(ann_gids, np.asarray(list(gids), dtype=np.int64))
        in_filter = np.bincount(index[keep], minlength=n + 1)[:n]
    positives = np.zeros(n, np.int64)
    if pools is not None and len(pools.pos):
        counts = pools.pos['category_id'].value_counts()
        where = {int(c): k for k, c in enumerate(cids.tolist())}
        for cid, count in counts.items():
            if int(cid) in where:
                positives[where[int(cid)]] = int(count)
    colors = category_colors(dset)
    return pd.DataFrame({
        'cid': cids, 'name': [dset.cats[c]['name'] for c in cids.tolist()],
        'color': [colors[c] for c in cids.tolist()], 'annotations': total,
        'in_filter': in_filter, 'positives': positives})


def video_frames(dset, gid: int) -> list:
    """Image ids of the video ``gid`` belongs to, in frame order (``[gid]`` when none)."""
    vidid = dset.imgs[gid].get('video_id')
    if vidid is None:
        return [gid]
    gids = list(dset.index.vidid_to_gids.get(vidid, [gid]))
    return sorted(gids, key=lambda g: (dset.imgs[g].get('frame_index', 0), g))


# ---------------------------------------------------------------- overview
def image_region(sampler, gid: int, x_range=None, y_range=None, max_px: int = OVERVIEW_PX):
    """A strided read of the visible part of an image, at most ``max_px`` a side.

    Only ``rows[y0:y1:step], cols[x0:x1:step]`` is read (from the memmap cache
    with the npy backend), so a 5000x4000 image is never sent whole.

    Args:
        sampler: the session sampler.
        gid: image id.
        x_range, y_range: visible ``(low, high)`` in image pixels (default all).
        max_px: largest side of the returned array.

    Returns:
        ``(rgb, bounds, step)``: ``(h, w, 3)`` uint8, ``(x0, y0, x1, y1)`` image
        pixels covered, and the stride.
    """
    height, width = image_dims(sampler.dset, gid)

    def clamp(rng, size):
        if rng is None or rng[0] is None or not all(map(math.isfinite, rng)):
            return 0, size
        lo, hi = sorted(rng)
        lo, hi = max(0, int(math.floor(lo))), min(size, int(math.ceil(hi)))
        if hi <= lo:
            return 0, size
        return lo, hi

    x0, x1 = clamp(x_range, width)
    y0, y1 = clamp(y_range, height)
    step = max(1, int(math.ceil(max(x1 - x0, y1 - y0) / max_px)))
    # snap to the stride so that refined tiles line up with the coarse ones
    x0, y0 = (x0 // step) * step, (y0 // step) * step
    data = sampler.frames.load_region(gid, (slice(y0, y1, step), slice(x0, x1, step)))
    rgb = to_rgb8(data)
    h, w = rgb.shape[:2]
    return rgb, (x0, y0, x0 + w * step, y0 + h * step), step


def to_rgb8(data: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` of any dtype -> ``(H, W, 3)`` uint8 (first 3 channels or gray)."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.shape[2] >= 3:
        data = data[:, :, :3]
    else:
        data = np.repeat(data[:, :, :1], 3, axis=2)
    if data.dtype != np.uint8:
        data = data.astype(np.float32)
        finite = np.isfinite(data)
        lo = float(data[finite].min()) if finite.any() else 0.0
        hi = float(data[finite].max()) if finite.any() else 1.0
        if data.dtype.kind == 'f' and lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
        data = np.nan_to_num((data - lo) / max(hi - lo, 1e-12) * 255, nan=0.0)
        data = data.clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(data)


def rgb_element(rgb: np.ndarray, bounds) -> hv.RGB:
    """``hv.RGB`` in image coordinates (y down: the plot inverts its y axis)."""
    x0, y0, x1, y1 = bounds
    return hv.RGB(rgb[::-1], bounds=(x0, y0, x1, y1), kdims=['x', 'y'])


def overview_image(sampler, gid: int, x_range=None, y_range=None,
                   max_px: int = OVERVIEW_PX) -> hv.RGB:
    """The visible part of image ``gid`` as ``hv.RGB`` (see :func:`image_region`)."""
    rgb, bounds, _ = image_region(sampler, gid, x_range, y_range, max_px)
    return rgb_element(rgb, bounds)


def image_dims(dset, gid: int) -> tuple[int, int]:
    """``(height, width)`` the dataset gives image ``gid``; 0 for a missing, non-finite or
    non-positive value (such an image cannot be shown, but must not break a view).

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset()
        >>> image_dims(dset, dset.add_image(file_name='a.png', width=0, height=30))
        (30, 0)
    """
    img = dset.imgs[gid]
    out = []
    for key in ('height', 'width'):
        try:
            value = float(img.get(key))
        except (TypeError, ValueError):
            value = 0.0
        out.append(int(value) if math.isfinite(value) and value > 0 else 0)
    return tuple(out)


def _keypoints_xy(ann) -> np.ndarray:
    """Visible keypoints ``(K, 2)`` xy of an annotation (COCO triples or kwcoco dicts).

    Raises:
        ValueError: a flat list whose length is not a multiple of 3 (x, y, visibility).
    """
    kpts = ann.get('keypoints')
    if not kpts:
        return np.empty((0, 2))
    if isinstance(kpts[0], dict):
        return np.array([k['xy'] for k in kpts if 'xy' in k], dtype=np.float64).reshape(-1, 2)
    arr = np.asarray(kpts, dtype=np.float64).ravel()
    if len(arr) % 3:
        raise ValueError(f'{len(arr)} keypoint numbers are not (x, y, visibility) triples')
    arr = arr.reshape(-1, 3)
    return arr[arr[:, 2] > 0, :2]


def _polygons_xy(sseg, dims) -> list[np.ndarray]:
    """Exterior rings ``(K, 2)`` xy of a COCO / kwcoco segmentation."""
    if not sseg:
        return []
    import kwimage
    try:
        mpoly = kwimage.MultiPolygon.coerce(sseg, dims=dims)
    except Exception as ex:   # kwimage raises many kinds on malformed input
        raise ValueError(f'cannot read the segmentation: {ex}') from None
    if mpoly is None:
        return []
    if not isinstance(mpoly, kwimage.MultiPolygon):
        mpoly = mpoly.to_multi_polygon()
    rings = [np.asarray(p.data['exterior'].data, dtype=np.float64) for p in mpoly.data]
    if not all(np.isfinite(r).all() for r in rings):
        raise ValueError('the segmentation has a non-finite coordinate')
    return rings


_ANN_VDIMS = ['aid', 'category', 'area', 'color']


def annotation_overlay(dset, gid: int, with_annots=('boxes', 'segmentation', 'keypoints'),
                       colors: dict | None = None, hidden=(), aids=None) -> hv.Overlay:
    """Annotations of image ``gid`` in image pixels: boxes, polygons, keypoints.

    Each element carries ``aid``, ``category``, ``area`` and ``color`` value
    dimensions (for hover and colouring; ``color`` is the category's
    :func:`app.colors.category_colors` unless ``colors`` says otherwise). Kinds
    not in ``with_annots`` are empty; annotations of the category ids in
    ``hidden`` are left out, and so are those not in ``aids`` when it is given.

    Returns:
        ``hv.Overlay`` of ``hv.Rectangles``, ``hv.Polygons``, ``hv.Points``
        (always all three, so the plot structure never changes).
    """
    colors = colors or category_colors(dset)
    hidden = set(hidden)
    dims = image_dims(dset, gid)
    rects, polys, points = [], [], []
    odd: dict[str, list] = {}      # kind -> aids whose geometry of that kind cannot be drawn

    def draw(kind, aid, make):
        try:
            return make()
        except (TypeError, ValueError, KeyError, IndexError):
            odd.setdefault(kind, []).append(aid)
            return []

    def box(bbox):
        x, y, w, h = (float(v) for v in bbox)
        return [(x, y, x + w, y + h)]

    for aid in (dset.index.gid_to_aids.get(gid, ()) if aids is None else aids):
        ann = dset.anns[aid]
        cid = ann.get('category_id')
        if cid in hidden:
            continue
        name = dset.cats[cid]['name'] if cid in dset.cats else str(cid)
        color = colors.get(cid, UNKNOWN)
        bbox = ann.get('bbox')
        ltrb = draw('boxes', aid, lambda: box(bbox)) if bbox is not None else []
        area = ann.get('area')
        area = float(area) if isinstance(area, (int, float)) else (
            (ltrb[0][2] - ltrb[0][0]) * (ltrb[0][3] - ltrb[0][1]) if ltrb else 0.0)
        if 'boxes' in with_annots:
            rects += [(*r, aid, name, area, color) for r in ltrb]
        if 'segmentation' in with_annots:
            for ring in draw('segmentation', aid,
                             lambda: _polygons_xy(ann.get('segmentation'), dims)):
                polys.append({'x': ring[:, 0], 'y': ring[:, 1], 'aid': aid, 'category': name,
                              'area': area, 'color': color})
        if 'keypoints' in with_annots:
            for x, y in draw('keypoints', aid, lambda: _keypoints_xy(ann)):
                points.append((x, y, aid, name, area, color))
    if odd:
        warnings.warn(f'image {gid}: left out what cannot be drawn: ' + '; '.join(
            f'{kind} of annotation(s) {aids[:20]}' for kind, aids in odd.items()))
    return hv.Overlay([
        hv.Rectangles(rects, kdims=['x0', 'y0', 'x1', 'y1'], vdims=_ANN_VDIMS, label='boxes'),
        hv.Polygons(polys, kdims=['x', 'y'], vdims=_ANN_VDIMS, label='polygons'),
        hv.Points(points, kdims=['x', 'y'], vdims=_ANN_VDIMS, label='keypoints'),
    ])


#: dataset -> (number of annotations, {gid: (aids, ltrb, cids)}); forgotten with the dataset
_IMAGE_BOXES = weakref.WeakKeyDictionary()


def image_boxes(dset, gid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(aids (N,), ltrb (N, 4) image pixels, cids (N,))`` of image ``gid``'s annotations
    with a readable, finite box (cached per dataset and image).

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes8')
        >>> aids, ltrb, cids = image_boxes(dset, 1)
        >>> x, y, w, h = dset.anns[int(aids[0])]['bbox']
        >>> ltrb[0].tolist() == [x, y, x + w, y + h]
        True
    """
    hit = _IMAGE_BOXES.get(dset)
    if hit is None or hit[0] != len(dset.anns):
        hit = _IMAGE_BOXES[dset] = (len(dset.anns), {})
    per_image = hit[1]
    if gid not in per_image:
        rows = []
        for aid in dset.index.gid_to_aids.get(gid, ()):
            ann = dset.anns[aid]
            try:
                x, y, w, h = (float(v) for v in ann.get('bbox'))
            except (TypeError, ValueError):
                continue
            if all(map(math.isfinite, (x, y, w, h))):
                rows.append((aid, x, y, x + w, y + h, ann.get('category_id', -1)))
        arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
        per_image[gid] = (arr[:, 0].astype(np.int64), arr[:, 1:5].copy(),
                          arr[:, 5].astype(np.int64))
    return per_image[gid]


def boxes_in_view(dset, gid: int, x_range=None, y_range=None, hidden=()) -> np.ndarray:
    """Indexes into :func:`image_boxes` of the boxes that touch the visible ranges (image
    pixels; None: the whole image) and are not of a category id in ``hidden``."""
    aids, ltrb, cids = image_boxes(dset, gid)
    keep = ~np.isin(cids, list(hidden)) if hidden else np.ones(len(aids), bool)
    for rng, lo, hi in ((x_range, 0, 2), (y_range, 1, 3)):
        if rng is not None and rng[0] is not None and all(map(math.isfinite, rng)):
            a, b = sorted(rng)
            keep &= (ltrb[:, hi] >= a) & (ltrb[:, lo] <= b)
    return np.flatnonzero(keep)


def overview_annotations(dset, gid: int, x_range=None, y_range=None, hidden=(),
                         limit: int | None = None) -> tuple[list | None, np.ndarray]:
    """How the overview draws the annotations of image ``gid`` in the visible ranges.

    An image with at most ``limit`` boxes: all its annotations as glyphs, whatever
    the ranges. Else the boxes in view: as glyphs when at most ``limit`` are in
    view, drawn into the image (:func:`burn_boxes`) when more are. ``limit``:
    :data:`VECTOR_LIMIT` by default.

    Returns:
        ``(aids, burned)``: ``aids`` the annotations drawn as glyphs (None: all
        of the image's), ``burned`` indexes into :func:`image_boxes` of the boxes
        drawn into the image.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes8')
        >>> overview_annotations(dset, 1)[0] is None
        True
        >>> gid = max(dset.imgs, key=lambda g: len(dset.index.gid_to_aids[g]))
        >>> aids, burned = overview_annotations(dset, gid, limit=1)
        >>> aids, len(burned) == len(dset.index.gid_to_aids[gid])
        ([], True)
    """
    limit = VECTOR_LIMIT if limit is None else limit
    aids, _, _ = image_boxes(dset, gid)
    none = np.empty(0, np.int64)
    if len(aids) <= limit:
        return None, none
    idx = boxes_in_view(dset, gid, x_range, y_range, hidden)
    if len(idx) > limit:
        return [], idx
    return aids[idx].tolist(), none


def burn_boxes(rgb: np.ndarray, bounds, ltrb: np.ndarray, colors: list) -> np.ndarray:
    """Box outlines drawn into an overview image (over a dark halo), in place.

    Args:
        rgb: ``(h, w, 3)`` uint8 covering ``bounds`` (``(x0, y0, x1, y1)`` image pixels).
        ltrb: ``(N, 4)`` boxes in image pixels.
        colors: ``N`` ``'#rrggbb'`` colours.

    Returns:
        ``rgb``.
    """
    import cv2

    from app.colors import HALO
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = bounds
    sx, sy = w / max(x1 - x0, 1e-9), h / max(y1 - y0, 1e-9)
    pts = np.round((ltrb - [x0, y0, x0, y0]) * [sx, sy, sx, sy]).astype(np.int64)
    pts = np.clip(pts, -1, [w, h, w, h])
    halo = tuple(int(HALO[i:i + 2], 16) for i in (1, 3, 5))
    rgb255 = {c: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in set(colors)}
    for (a, b, c, d) in pts.tolist():
        cv2.rectangle(rgb, (a, b), (c, d), halo, 3)
    for (a, b, c, d), color in zip(pts.tolist(), colors):
        cv2.rectangle(rgb, (a, b), (c, d), rgb255[color], 1)
    return rgb


_WIN_VDIMS = ['index', 'kind', 'aid', 'color', 'width']
#: (colour, line width) of each kind of window
WINDOW_STYLE = {'pos': (POS_COLOR, 2), 'neg': (NEG_COLOR, 2), 'selected': (SELECT_COLOR, 5),
                'click': (CLICK_COLOR, 3)}


def _rects(rows, kind: str) -> list:
    color, width = WINDOW_STYLE[kind]
    return [(r.x0, r.y0, r.x1, r.y1, int(r.index), kind, int(r.aid), color, width)
            for r in rows.itertuples(index=False)]


#: columns of :func:`window_columns`
WINDOW_COLUMNS = ('x0', 'y0', 'x1', 'y1', *_WIN_VDIMS)


def window_columns(pools, gid: int, selected: int | None = None,
                   click_window=None) -> dict[str, list]:
    """The pool windows of image ``gid`` as columns (the data of one glyph).

    Args:
        pools: :class:`app.pools.Pools`.
        gid: image id.
        selected: ``load_item`` index to highlight (``kind='selected'``, yellow).
        click_window: ``(x0, y0, x1, y1)`` of the clicked detail window
            (``kind='click'``, cyan).

    Returns:
        ``{column: list}`` for :data:`WINDOW_COLUMNS`: ``x0, y0, x1, y1`` (ltrb, image
        pixels), ``index``, ``kind`` (pos / neg / selected / click), ``aid``, ``color``,
        ``width`` (line width); positives first, then negatives, the highlights last
        (drawn on top).

    Example:
        >>> from app.state import ExplorerState
        >>> state = ExplorerState(dataset='shapes8', n_pos=4, backend=None)
        >>> cols = window_columns(state.pools, 1, click_window=(0, 0, 10, 20))
        >>> [cols[k][-1] for k in ('x1', 'y1', 'kind', 'color')]
        [10, 20, 'click', '#06b6d4']
    """
    rows = _window_rows(pools, gid, selected, click_window)
    return {name: list(col) for name, col in
            zip(WINDOW_COLUMNS, zip(*rows) if rows else [()] * len(WINDOW_COLUMNS))}


def _window_rows(pools, gid, selected, click_window) -> list[tuple]:
    rows = _rects(pools.pos[pools.pos['gid'] == gid], 'pos')
    rows += _rects(pools.neg[pools.neg['gid'] == gid], 'neg')
    if selected is not None:
        try:
            row = pools.item(int(selected))
            if row['gid'] == gid:
                color, width = WINDOW_STYLE['selected']
                rows.append((row['x0'], row['y0'], row['x1'], row['y1'], int(row['index']),
                             'selected', int(row['aid']), color, width))
        except IndexError:
            pass
    if click_window is not None:
        color, width = WINDOW_STYLE['click']
        rows.append(tuple(click_window) + (-1, 'click', -1, color, width))
    return rows


#: columns of :func:`dropped_columns`
DROPPED_COLUMNS = ('x0', 'y0', 'x1', 'y1', 'kind', 'color')


def dropped_columns(pools, gid: int) -> dict[str, list]:
    """The windows ``max_nodata_fraction`` dropped from the pools in image ``gid`` (drawn
    dashed over the overview), from ``pools.nodata_dropped``
    (:attr:`sampler_core.regions.CocoRegions.nodata_dropped`).

    Returns:
        ``{column: list}`` for :data:`DROPPED_COLUMNS`: ``x0, y0, x1, y1`` (ltrb, image
        pixels, without pad), ``kind`` (``'dropped pos'`` / ``'dropped neg'``) and ``color``
        (the kind's colour).

    Example:
        >>> from app.state import ExplorerState
        >>> state = ExplorerState(dataset='shapes8', n_pos=4, window_dims=(800, 800),
        ...                       max_nodata_fraction=0.3, backend=None)   # images: 600 x 600
        >>> cols = dropped_columns(state.pools, state.pools.nodata_dropped['gid'][0])
        >>> cols['kind'][0], cols['x1'][0] - cols['x0'][0], state.pools.n_pos
        ('dropped pos', 800.0, 0)
    """
    rec = getattr(pools, 'nodata_dropped', None)
    if not rec or not len(rec['gid']):
        return {k: [] for k in DROPPED_COLUMNS}
    here = np.flatnonzero(np.asarray(rec['gid']) == gid)
    kinds = [str(k) for k in np.asarray(rec['kind'])[here].tolist()]
    ltrb = np.asarray(rec['ltrb'], dtype=np.float64)[here]
    out = {k: ltrb[:, i].tolist() for i, k in enumerate(DROPPED_COLUMNS[:4])}
    out['kind'] = [f'dropped {k}' for k in kinds]
    out['color'] = [WINDOW_STYLE[k][0] for k in kinds]
    return out


# ---------------------------------------------------------------- detail
def detail_dims(config) -> tuple[int, int]:
    """``(height, width)`` of a clicked window: window_dims, or 128x128 when the windows
    follow the boxes (None or 'square')."""
    wd = config.window_dims
    return (128, 128) if wd is None or wd == 'square' else tuple(wd)


def window_text(window_dims) -> str:
    """``'box size'``, ``'square box'`` or ``'HxW'``.

    Example:
        >>> window_text((64, 96)), window_text(None), window_text('square')
        ('64x96', 'box size', 'square box')
    """
    if window_dims is None:
        return 'box size'
    if window_dims == 'square':
        return 'square box'
    return f'{window_dims[0]}x{window_dims[1]}'


def window_summary(config) -> str:
    """The window of ``config`` as the status line and gallery titles say it: its size, and
    its scale when it has one (``scale`` 0.5 reads a 256x256 window of a half-size image).

    Example:
        >>> from sampler_core import SamplingConfig
        >>> window_summary(SamplingConfig(window_dims=(256, 256)))
        'window 256x256'
        >>> window_summary(SamplingConfig(window_dims=(256, 256), scale=0.5))
        'window 256x256 at scale 0.5'
        >>> window_summary(SamplingConfig(window_dims='square', scale=[0.5, 0.25]))
        'window square box at scale 0.5x0.25 (h x w)'
    """
    text = f'window {window_text(config.window_dims)}'
    scale = config.scale
    if scale is None:
        return text
    if isinstance(scale, (list, tuple)):
        sy, sx = (float(v) for v in scale)
        return text + (f' at scale {sy:g}' if sy == sx else f' at scale {sy:g}x{sx:g} (h x w)')
    return text + f' at scale {float(scale):g}'


def distinct_windows(table) -> int:
    """Distinct windows (image and ltrb) of a pool table: fewer than its rows when windows
    repeat (more positives asked than there are annotations, or a balanced draw).

    Example:
        >>> import pandas as pd
        >>> table = pd.DataFrame({'gid': [1, 1, 2], 'x0': [0, 0, 0], 'y0': [0, 0, 0],
        ...                       'x1': [8, 8, 8], 'y1': [8, 8, 8]})
        >>> distinct_windows(table)
        2
    """
    return len(table[['gid', 'x0', 'y0', 'x1', 'y1']].drop_duplicates())


def repeat_text(pools) -> str:
    """``'12 distinct: windows repeat'`` when the positives repeat windows, else ``''``."""
    distinct = distinct_windows(pools.pos)
    return f'{distinct} distinct: windows repeat' if distinct < pools.n_pos else ''


def click_window(config, x: float, y: float) -> tuple[float, float, float, float]:
    """ltrb (image pixels, without pad) of the window centred on a click."""
    boxes, _ = window_boxes([x], [y], window_dims=detail_dims(config))
    return tuple(int(v) for v in boxes[0])


def detail_sample(sampler, config, gid: int, x: float, y: float, n_frames: int = 1) -> dict:
    """``CocoSampler.load_sample`` of the window centred on ``(x, y)`` with clipped annots.

    The window has the config's window_dims (128x128 when None), pad, pad
    mode, scale and channels; ``target['clip_annots']`` gives
    ``annots['clipped_dets']``. With ``n_frames > 1`` and an image that is a
    video frame, the target is a clip of ``n_frames`` frames of its video (fewer
    if the video is shorter) starting at that frame, or earlier when the video
    ends first (``im`` is then ``(T, H, W, C)``).
    """
    target = {'gid': int(gid), 'cx': float(x), 'cy': float(y)}
    frames = video_frames(sampler.dset, gid) if n_frames > 1 else [gid]
    if len(frames) > 1:
        t0 = frames.index(gid)
        t0 = max(0, min(t0, len(frames) - n_frames))
        target = {'vidid': sampler.dset.imgs[gid]['video_id'],
                  'time_slice': slice(t0, min(len(frames), t0 + n_frames)),
                  'cx': float(x), 'cy': float(y)}
    target.update(config.target_extra())
    if config.resolution is not None:   # each image read at its own scale
        from sampler_core.resolution import resolution_scale
        space = 'video' if 'vidid' in target else 'image'
        target['scale'] = resolution_scale(sampler.dset, gid, config.resolution, space)
    target['window_dims'] = detail_dims(config)
    target['clip_annots'] = True
    return sampler.load_sample(target, with_annots=list(config.with_annots) or ['boxes'],
                               visible_thresh=config.visible_thresh)


def dets_overlay(dets, classes=None, colors: dict | None = None, hidden=()) -> hv.Overlay:
    """kwimage.Detections (window pixels) as Rectangles / Polygons / Points; detections of
    the category ids in ``hidden`` are left out."""
    colors = colors or {}
    hidden = set(hidden)
    rects, polys, points = [], [], []
    aids = dets.data.get('aids', np.full(len(dets), -1))
    cids = dets.data.get('cids', np.full(len(dets), -1))
    ltrb = dets.boxes.to_ltrb().data.reshape(-1, 4) if len(dets) else np.empty((0, 4))
    ssegs = dets.data.get('segmentations')
    kpts = dets.data.get('keypoints')
    for i in range(len(dets)):
        cid = int(cids[i])
        if cid in hidden:
            continue
        name = classes[cid] if classes is not None and cid in classes else str(cid)
        color = colors.get(cid, UNKNOWN)
        x0, y0, x1, y1 = (float(v) for v in ltrb[i])
        area = (x1 - x0) * (y1 - y0)
        rects.append((x0, y0, x1, y1, int(aids[i]), name, area, color))
        sseg = None if ssegs is None else ssegs.data[i]
        if sseg is not None:
            mp = sseg.to_multi_polygon() if hasattr(sseg, 'to_multi_polygon') else sseg
            for poly in mp.data:
                ring = np.asarray(poly.data['exterior'].data, dtype=np.float64)
                polys.append({'x': ring[:, 0], 'y': ring[:, 1], 'aid': int(aids[i]),
                              'category': name, 'area': area, 'color': color})
        pts = None if kpts is None else kpts.data[i]
        if pts is not None:
            for x, y in np.asarray(pts.xy).reshape(-1, 2):
                points.append((float(x), float(y), int(aids[i]), name, area, color))
    return hv.Overlay([
        hv.Rectangles(rects, kdims=['x0', 'y0', 'x1', 'y1'], vdims=_ANN_VDIMS, label='boxes'),
        hv.Polygons(polys, kdims=['x', 'y'], vdims=_ANN_VDIMS, label='polygons'),
        hv.Points(points, kdims=['x', 'y'], vdims=_ANN_VDIMS, label='keypoints'),
    ])


def _class_lookup(dset) -> dict:
    return {cid: cat['name'] for cid, cat in dset.cats.items()}


def detail_view(sample: dict, dset, colors: dict | None = None, gap: int = 4,
                hidden=()) -> hv.Overlay:
    """The sampled window (``im``) with its clipped annotations, window pixels.

    A clip ``(T, H, W, C)`` is drawn as its frames side by side (``gap`` pixels
    apart), each with its own frame's annotations. Colours: ``colors``, by default
    :func:`app.colors.category_colors`; the category ids in ``hidden`` are not drawn.
    """
    im = np.asarray(sample['im'])
    annots = sample['annots']
    per_frame = annots.get('clipped_dets', annots['frame_dets'])
    frames = im if im.ndim == 4 else im[None]
    h, w = frames.shape[1:3]
    strip = np.full((h, len(frames) * (w + gap) - gap, 3), 255, np.uint8)
    moved = []
    for t, frame in enumerate(frames):
        x0 = t * (w + gap)
        strip[:, x0:x0 + w] = to_rgb8(frame)
        if t < len(per_frame) and len(per_frame[t]):
            moved.append(per_frame[t].translate((x0, 0)) if x0 else per_frame[t])
    if not moved:
        dets = annots['frame_dets'][0]
    elif len(moved) == 1:
        dets = moved[0]
    else:
        import kwimage
        dets = kwimage.Detections.concatenate(moved)
    return rgb_element(strip, (0, 0, strip.shape[1], h)) * dets_overlay(
        dets, _class_lookup(dset), colors or category_colors(dset), hidden)


def params_table(sample: dict):
    """``pandas.DataFrame`` (key, value) of a sample's params and target."""
    import pandas as pd
    p, t = sample['params'], sample['target']
    tf = np.asarray(p['tf_rel_to_abs'])
    rows = [
        ('gid', t['gid'] if 'vidid' not in t else
         f"video {t['vidid']}, frames {list(p.get('frame_gids', []))}"),
        ('center (cx, cy)', f"({t.get('cx', float('nan')):.1f}, {t.get('cy', float('nan')):.1f})"),
        ('window_dims (h, w)', tuple(int(v) for v in t['window_dims'])),
        ('pad', p['pad']),
        ('offset (dx, dy)', tuple(int(v) for v in np.asarray(p['offset']).tolist())),
        ('tf_rel_to_abs', '[' + '; '.join(' '.join(f'{v:g}' for v in r) for r in tf) + ']'),
        ('sample ltrb', tuple(int(v) for v in p['sample_tlbr'].to_ltrb().data.ravel())),
        ('im shape', tuple(np.asarray(sample['im']).shape)),
        ('annotations', len(sample['annots']['aids'])),
    ]
    return pd.DataFrame(rows, columns=['param', 'value']).astype({'value': str})


# ---------------------------------------------------------------- galleries
def draw_sample(sample: dict, color: str, thumb: int = 160, colors: dict | None = None,
                hidden=()) -> np.ndarray:
    """A ``(thumb, thumb, 3)`` uint8 picture of a sample: annotations drawn in their category
    colours (``colors``: ``{category id: colour}``) over a dark halo, except the category
    ids in ``hidden``; a frame of ``color``."""
    import kwimage
    from app.colors import HALO
    im, step = np.asarray(sample['im']), 0
    if im.ndim == 4:   # time_steps frames: draw the pool window's own frame
        gids = list(sample['params'].get('frame_gids', []))
        step = gids.index(sample['target'].get('gid')) if sample['target'].get('gid') in gids else 0
        im = im[step]
    im = to_rgb8(im).copy()
    dets = sample['annots']['frame_dets'][step]
    if len(dets) and hidden:
        dets = dets.compress(~np.isin(np.asarray(dets.data['cids']), list(hidden)))
    if len(dets):
        cmap = colors or {}
        box_colors = [kwimage.Color(cmap.get(int(c), UNKNOWN)).as255()
                      for c in dets.data['cids']]
        thickness = max(1, im.shape[0] // 100)
        im = dets.boxes.draw_on(im, color=HALO, thickness=thickness + 2)
        im = dets.boxes.draw_on(im, color=box_colors, thickness=thickness)
        for sseg, c in zip(dets.data['segmentations'].data, box_colors):
            if sseg is not None:
                im = sseg.draw_on(im, color=c, alpha=0.35)
        for pts in dets.data['keypoints'].data:
            if pts is not None:
                im = pts.draw_on(im, color='white', radius=max(2, im.shape[0] // 60))
    im = kwimage.ensure_uint255(im[:, :, :3])
    canvas = kwimage.imresize(im, dsize=(thumb, thumb), letterbox=True)
    canvas = kwimage.ensure_uint255(canvas[:, :, :3]).copy()
    rgb = kwimage.Color(color).as255()
    canvas[:3, :], canvas[-3:, :], canvas[:, :3], canvas[:, -3:] = rgb, rgb, rgb, rgb
    return canvas


def gallery(sampler, pools, kind: str, n: int, thumb: int = 160,
            colors: dict | None = None, hidden=()) -> list[dict]:
    """The first ``n`` positives (``kind='pos'``) or negatives as the training loop gets them.

    Each window is ``sampler.load_item(index)`` (the config applied, with its per-item
    draws of epoch 0: ``window_size_range``, ``scale_range``, ``output_dims``, ...), drawn
    by :func:`draw_sample` (``colors``, ``hidden``).

    Returns:
        list of ``{'index', 'gid', 'aid', 'image' ((thumb, thumb, 3) uint8 or
        None), 'n_annots', 'window' ((h, w) of the window read, image pixels, without
        pad; None when unreadable), 'scale' (``(sy, sx)`` it was read at; None: unscaled
        or unreadable), 'error' (None or the message)}``.
    """
    table = pools.pos if kind == 'pos' else pools.neg
    color = POS_COLOR if kind == 'pos' else NEG_COLOR
    out = []
    for row in table.iloc[:n].itertuples(index=False):
        item = {'index': int(row.index), 'gid': int(row.gid), 'aid': int(row.aid),
                'image': None, 'n_annots': 0, 'window': None, 'scale': None, 'error': None}
        try:
            sample = sampler.load_item(int(row.index))
            item['image'] = draw_sample(sample, color, thumb, colors, hidden)
            item['n_annots'] = len(sample['annots']['aids'])
            item['window'], item['scale'] = _drawn_window(sample)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as ex:
            item['error'] = f'window {row.index} (image {row.gid}): {ex}'
        out.append(item)
    return out


def _drawn_window(sample: dict) -> tuple:
    """``((h, w), (sy, sx) or None)``: the window a sample read (its padded window,
    ``params['st_dims']``, less the pad) and the scale it was read at."""
    (y0, y1), (x0, x1) = sample['params']['st_dims'][-2:]
    from sampler_core.window import coerce_pad
    (pt, pb), (pl, pr) = coerce_pad(sample['target'].get('pad'))
    scale = sample['target'].get('scale')
    if scale is not None:
        scale = tuple(float(v) for v in scale) if isinstance(scale, (tuple, list)) \
            else (float(scale), float(scale))
    return (int(round(y1 - y0 - pt - pb)), int(round(x1 - x0 - pl - pr))), scale


def drawn_text(window, scale) -> str:
    """A gallery label's drawn size and scale: ``'40x40 px'`` / ``'40x40 px ×0.73'``.

    Example:
        >>> drawn_text((40, 40), (0.7312, 0.7312)), drawn_text((32, 48), (0.5, 0.25))
        ('40x40 px ×0.731', '32x48 px ×0.5,0.25')
    """
    if window is None:
        return ''
    text = f'{window[0]}x{window[1]} px'
    if scale is not None:
        sy, sx = scale
        text += f' ×{sy:.3g}' if math.isclose(sy, sx, rel_tol=1e-9) else f' ×{sy:.3g},{sx:.3g}'
    return text


# ---------------------------------------------------------------- statistics
def class_balance(pools, dset):
    """``pandas.DataFrame`` (category, windows, color): positives per category in the
    category's colour (:func:`app.colors.category_colors`), negatives last (grey)."""
    import pandas as pd
    counts = pools.pos['category_id'].value_counts()
    names = [dset.cats[c]['name'] if c in dset.cats else
             ('(grid windows)' if c == -1 else str(c)) for c in counts.index]
    colors = category_colors(dset)
    df = pd.DataFrame({'category': names, 'windows': counts.to_numpy(),
                       'color': [colors.get(c, OTHER_COLOR) for c in counts.index]})
    df = df.sort_values('category', kind='stable').reset_index(drop=True)
    neg = pd.DataFrame({'category': ['(negatives)'], 'windows': [pools.n_neg],
                        'color': [OTHER_COLOR]})
    return pd.concat([df, neg], ignore_index=True)


def visible_fractions(regions, pools, pad=(0, 0), limit: int = STATS_LIMIT) -> np.ndarray:
    """Visible fraction of every annotation in the (padded) pool windows.

    This is ``annots['visible']`` of each ``load_item`` without reading pixels
    (at most ``limit`` windows, evenly spaced over the pools).
    """
    table = pools.all
    if len(table) > limit:
        table = table.iloc[np.linspace(0, len(table) - 1, limit).astype(int)]
    padded = pad_boxes(table[['x0', 'y0', 'x1', 'y1']].to_numpy(dtype=np.float64), pad)
    out = []
    for gid, window in zip(table['gid'].tolist(), padded.tolist()):
        _, frac = regions.visible_aids(int(gid), window)
        out.append(frac)
    return np.concatenate(out) if out else np.empty(0)


def coverage(pools, dset, pad=(0, 0), max_res: int = 512):
    """Fraction of each image's area covered by the union of its (padded) pool windows.

    A single window's share is exact; several windows of one image are
    rasterised on a grid of at most ``max_res`` cells a side.

    Returns:
        ``(per_image, overall)``: ``pandas.DataFrame`` (gid, covered) of the
        images that have windows, and the covered fraction of all image area.
    """
    import pandas as pd
    table = pools.all
    gids = table['gid'].to_numpy(dtype=np.int64)
    if not len(gids):
        return pd.DataFrame({'gid': [], 'covered': []}), 0.0
    ltrb = pad_boxes(table[['x0', 'y0', 'x1', 'y1']].to_numpy(dtype=np.float64), pad)
    order = np.argsort(gids, kind='stable')
    uniq, starts, counts = np.unique(gids[order], return_index=True, return_counts=True)
    fracs = np.empty(len(uniq))
    areas = np.empty(len(uniq))
    for k, (gid, start, count) in enumerate(zip(uniq.tolist(), starts.tolist(),
                                                counts.tolist())):
        h, w = image_dims(dset, gid)
        boxes = ltrb[order[start:start + count]]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        if not h * w:
            frac = 0.0                  # an image of no area (an odd dataset entry)
        elif count == 1:
            x0, y0, x1, y1 = boxes[0]
            frac = max(0.0, x1 - x0) * max(0.0, y1 - y0) / float(h * w)
        else:
            s = max(1.0, max(h, w) / max_res)
            mh, mw = max(1, int(math.ceil(h / s))), max(1, int(math.ceil(w / s)))
            mask = np.zeros((mh, mw), dtype=bool)
            cells = np.stack([np.floor(boxes[:, 0] / s), np.floor(boxes[:, 1] / s),
                              np.ceil(boxes[:, 2] / s), np.ceil(boxes[:, 3] / s)],
                             axis=1).astype(int)
            for x0, y0, x1, y1 in cells.tolist():
                mask[y0:y1, x0:x1] = True
            frac = float(mask.mean())
        fracs[k] = frac
        areas[k] = h * w
    total = _total_area(dset)
    per_image = pd.DataFrame({'gid': uniq, 'covered': fracs})
    return per_image, (float((fracs * areas).sum()) / total if total else 0.0)


#: dataset -> (number of images, their total area); forgotten with the dataset
_AREA_CACHE = weakref.WeakKeyDictionary()


def _total_area(dset) -> float:
    """Sum of image areas (cached per dataset object and image count)."""
    hit = _AREA_CACHE.get(dset)
    if hit is None or hit[0] != len(dset.imgs):
        hit = _AREA_CACHE[dset] = (len(dset.imgs), float(sum(
            h * w for h, w in (image_dims(dset, g) for g in dset.imgs))))
    return hit[1]


def top_covered(per_image, limit: int = 30, gids=()):
    """The ``limit`` most covered images of ``per_image`` (``gid``, ``covered``); images of
    ``gids`` without windows fill the rest (covered 0), so that a dataset's coverage plot keeps
    one number of bars: BokehJS fails ("Size mismatch") when an updated categorical bar plot
    changes its number of bars.

    Example:
        >>> import pandas as pd
        >>> t = top_covered(pd.DataFrame({'gid': [2, 5], 'covered': [0.1, 0.3]}), 3, [1, 2, 5])
        >>> t['gid'].tolist(), t['covered'].tolist()
        ([5, 2, 1], [0.3, 0.1, 0.0])
    """
    import pandas as pd
    top = per_image.sort_values('covered', ascending=False, kind='stable').iloc[:limit]
    if len(top) < limit:
        have = set(top['gid'].tolist())
        extra = []
        for gid in gids:
            if len(top) + len(extra) >= limit:
                break
            if gid not in have:
                extra.append(gid)
        if extra:
            top = pd.concat([top, pd.DataFrame({'gid': extra, 'covered': 0.0})],
                            ignore_index=True)
    return top


def stats_table(pools, fractions: np.ndarray, overall_coverage: float):
    """The statistics as numbers: ``pandas.DataFrame`` (statistic, value)."""
    import pandas as pd
    cfg = pools.config
    wd = window_text(cfg.window_dims)
    mean_vis = float(np.mean(fractions)) if len(fractions) else float('nan')
    rows = [('window (h x w)', wd), ('positives', pools.n_pos),
            ('negatives found', pools.n_neg), ('negatives asked', pools.n_neg_asked),
            ('annotations in windows', len(fractions)),
            ('mean visible fraction', f'{mean_vis:.3f}'),
            ('image area covered', f'{overall_coverage:.2%}')]
    return pd.DataFrame(rows, columns=['statistic', 'value']).astype({'value': str})


def summary(pools, overall_coverage: float | None = None) -> str:
    """One line: pool sizes, window size, coverage (the app's status line)."""
    cfg = pools.config
    repeats = repeat_text(pools)
    positives = f'{pools.n_pos} positives' + (f' ({repeats})' if repeats else '')
    text = (f'{positives}, {pools.n_neg} negatives (asked {pools.n_neg_asked}), '
            f'{window_summary(cfg)}, pad {cfg.pad[0]}x{cfg.pad[1]}, seed {cfg.seed}')
    if overall_coverage is not None:
        text += f', covers {overall_coverage:.1%} of the image area'
    return text
