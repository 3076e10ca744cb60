"""Pools of positive and negative target windows.

:class:`CocoRegions` turns a kwcoco dataset into

* a *target table* (:attr:`CocoRegions.targets`): one row per annotation with a
  valid box, columns ``aid, gid, category_id, cx, cy, width, height, img_width,
  img_height`` (pixels, image space);
* a *positive pool*: indices into that table, chosen by :meth:`CocoRegions.preselect`
  (default: every row, in table order);
* a *negative pool*: random windows that overlap no annotation (or less than
  ``thresh`` of their area), drawn with the spatial index.

A target is a plain dict that :meth:`sampler_core.CocoSampler.load_sample` accepts.
Negatives have ``aid == -1`` and the background category id.

Example:
    >>> from sampler_core.regions import CocoRegions
    >>> self = CocoRegions.demo()
    >>> n_pos, n_neg = self.preselect(n_neg=4, window_dims=(64, 64), rng=0)
    >>> neg = self.get_negative(0)
    >>> (neg['aid'], neg['width'], neg['height'])
    (-1, 64.0, 64.0)
    >>> self.overlapping_aids(neg['gid'], [neg['cx'] - 32, neg['cy'] - 32, neg['cx'] + 32, neg['cy'] + 32])
    []
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from sampler_core.hashid import HashIdentifiable
from sampler_core.index import FrameIntersectionIndex, coco_annot_arrays
from sampler_core.window import coerce_pad, coerce_window_dims, padding_fractions, window_boxes

#: columns of the target table, in order
TARGET_COLUMNS = ('aid', 'gid', 'category_id', 'cx', 'cy', 'width', 'height',
                  'img_width', 'img_height')


#: largest pool one request may ask for, of each kind (positives, negatives). A
#: pool row holds 9 numbers (72 bytes), so a pool at the limit takes 0.72 GB;
#: larger requests are refused before any work.
MAX_POOL_ITEMS = 10_000_000


def check_pool_size(num: Any, name: str) -> int:
    """``num`` as an int in ``[0, MAX_POOL_ITEMS]``.

    Raises:
        ValueError: naming ``name`` and the value, when negative or above
            :data:`MAX_POOL_ITEMS`.

    Example:
        >>> check_pool_size(5, 'n_pos')
        5
    """
    num = int(num)
    if num < 0:
        raise ValueError(f'{name} must not be negative, got {num}')
    if num > MAX_POOL_ITEMS:
        raise ValueError(f'{name}={num:,} is more than MAX_POOL_ITEMS ({MAX_POOL_ITEMS:,}), '
                         f'the largest pool one request may ask for')
    return num


def positive_extent(cx, cy, width, height):
    """The centre and size of a positive's own window: never empty, and it holds the box.

    A positive without ``window_dims`` is loaded with its box as the window
    (``ceil`` of its size, centred). A box side of length 0 (a point, or a
    line) would give an empty window that cannot be loaded, so that side gets
    2 pixels around the box: a zero-width box at ``x`` keeps ``cx = x`` and
    gets ``width = 2``, whose window ``[floor(x) - 1, floor(x) + 1)`` holds it
    (a 1 px window centred on a whole ``x`` would be ``[x - 1, x)``, which
    the half-open rule 1 of ``docs/design.md`` says does not). Centres never
    move, so windows of a given ``window_dims`` are unchanged. Other boxes
    are unchanged.

    Args:
        cx, cy, width, height: numbers or ``(N,)`` arrays, pixels, image space.

    Returns:
        ``(cx, cy, width, height)`` as float64 arrays of the input's shape.

    Example:
        >>> [v.tolist() for v in positive_extent(100.0, 110.0, 0.0, 20.0)]
        [100.0, 110.0, 2.0, 20.0]
    """
    cx, cy, width, height = (np.asarray(v, dtype=np.float64) for v in (cx, cy, width, height))
    return cx, cy, np.where(width == 0, 2.0, width), np.where(height == 0, 2.0, height)


#: rounds of candidate draws a negative above ``max_nodata_fraction`` gets before it is dropped
NODATA_REDRAW_ROUNDS = 8
#: most dropped windows :attr:`CocoRegions.nodata_dropped` keeps (the count is always whole)
NODATA_RECORD_LIMIT = 10_000


def check_max_nodata_fraction(value: Any) -> float | None:
    """``max_nodata_fraction`` as a float in ``[0, 1]``, or ``None`` (off).

    Raises:
        TypeError: not a number (naming the value).
        ValueError: NaN or outside ``[0, 1]`` (naming the value).

    Example:
        >>> check_max_nodata_fraction(0.25), check_max_nodata_fraction(None)
        (0.25, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f'max_nodata_fraction must be a number in [0, 1] or None, got {value!r}')
    if not (0.0 <= float(value) <= 1.0):   # NaN fails too
        raise ValueError(f'max_nodata_fraction must be in [0, 1], got {value!r}')
    return float(value)


def nodata_fractions(table: dict, window_dims: Any = None, pad: Any = None) -> np.ndarray:
    """Fraction of padding (pixels outside the image) in each pool window as it is read.

    The window of each row is the one ``load_item`` reads (:func:`window_boxes`
    with ``window_dims`` and ``pad``); its padding is counted from the boxes
    (:func:`~sampler_core.window.padding_fractions`), no pixel is read. Images
    declare no nodata value in kwcoco, so padding is the only nodata counted.

    Args:
        table: pool columns (:data:`TARGET_COLUMNS`, e.g. :meth:`CocoRegions.pool_tables`).
        window_dims: the pools' ``window_dims`` (``(h, w)``, ``None`` or ``'square'``).
        pad: ``None``, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.

    Returns:
        ``(N,)`` float64 in ``[0, 1]``.

    Example:
        >>> table = {'cx': [5.0], 'cy': [50.0], 'width': [1.0], 'height': [1.0],
        ...          'img_width': [100], 'img_height': [100]}
        >>> nodata_fractions(table, (10, 10), pad=(0, 5)).tolist()   # x from -5 to 15
        [0.25]
    """
    if not len(table['cx']):
        return np.zeros(0)
    _, padded = window_boxes(table['cx'], table['cy'], table['width'], table['height'],
                             window_dims, pad)
    return padding_fractions(padded, table['img_width'], table['img_height'])


def inside_shifts(table: dict, window_dims: Any = None, pad: Any = None) -> np.ndarray:
    """Whole-pixel shifts ``(dx, dy)`` moving positive windows towards their image's inside.

    On each axis the shift is the smallest that leaves the least padding
    (the padded window inside the image, or covering it when larger), limited
    so that the window's overlap with the positive's box (``cx, cy, width,
    height``) never shrinks: a window that holds its box still holds it after
    the shift, and one smaller than its box stays within it.

    Args:
        table: positive pool columns (:data:`TARGET_COLUMNS`).
        window_dims, pad: see :func:`nodata_fractions`.

    Returns:
        ``(N, 2)`` int64 ``(dx, dy)`` pixels.

    Example:
        >>> table = {'cx': [12.0], 'cy': [50.0], 'width': [4.0], 'height': [4.0],
        ...          'img_width': [100], 'img_height': [100]}
        >>> inside_shifts(table, (20, 20)).tolist()   # x0 = 2: box [10, 14) stays inside
        [[0, 0]]
        >>> table['cx'] = [2.0]                        # x0 = -8: move right, box [0, 4) kept
        >>> inside_shifts(table, (20, 20)).tolist()
        [[8, 0]]
    """
    cx, cy = np.asarray(table['cx'], float), np.asarray(table['cy'], float)
    w, h = np.asarray(table['width'], float), np.asarray(table['height'], float)
    boxes, padded = window_boxes(cx, cy, w, h, window_dims, pad)
    out = []
    for axis, (c, d, size) in enumerate(((cx, w, table['img_width']),
                                         (cy, h, table['img_height']))):
        size = np.asarray(size, dtype=np.int64)
        # the overlap with the box, as a function of the shift, rises with slope 1 up to
        # min(a, b), stays there up to max(a, b) and falls with slope 1: it is at least the
        # unshifted one between min(m1, m1 + m2, 0) and max(m2, m1 + m2, 0)
        a, b = (c - d / 2) - boxes[:, axis], (c + d / 2) - boxes[:, axis + 2]
        m1, m2 = np.minimum(a, b), np.maximum(a, b)
        lo = np.ceil(np.minimum(np.minimum(m1, m1 + m2), 0))
        hi = np.floor(np.maximum(np.maximum(m2, m1 + m2), 0))
        first, last = -padded[:, axis], size - padded[:, axis + 2]   # least padding between
        best = np.clip(0, np.minimum(first, last), np.maximum(first, last))
        out.append(np.clip(best, lo, hi))
    return np.stack(out, axis=1).astype(np.int64).reshape(-1, 2)


def _rng_state(rng) -> Any:
    """A comparable snapshot of a RandomState (to tell whether a draw consumed it)."""
    try:
        kind, keys, pos, has_gauss, cached = rng.get_state()
    except AttributeError:
        return object()  # unknown generator: count it as consumed
    return (kind, keys.tobytes(), pos, has_gauss, cached)


class MissingNegativePool(AssertionError):
    """A specific negative was asked for before a negative pool was preselected."""


def _nodata_stats(max_nodata: float | None) -> dict:
    """Zero counts of what ``max_nodata_fraction`` did (:attr:`CocoRegions.nodata_stats`),
    and ``'_dropped'``: ``(kind, gids, ltrb)`` of the dropped windows, collected while the
    pools are drawn (:meth:`CocoRegions._finish_nodata` moves them to ``nodata_dropped``)."""
    return {'max_nodata_fraction': max_nodata, 'positives_redrawn': 0, 'positives_dropped': 0,
            'negatives_redrawn': 0, 'negatives_dropped': 0, '_dropped': []}


def _row(table, index: int) -> dict:
    return {k: table[k][index].item() for k in table.keys()}


def _warn_left_out(aids: np.ndarray, why: str) -> None:
    """One warning naming the annotations (the first 20) left out of the target table."""
    more = f' (and {len(aids) - 20} more)' if len(aids) > 20 else ''
    warnings.warn(f'{len(aids)} annotations {why} and are not targets: '
                  f'aids {aids[:20].tolist()}{more}')


def tabular_coco_targets(dset, arrays=None):
    """All annotations that can be positives, as a column table.

    Annotations without a ``bbox`` are skipped. Left out with one warning per
    reason, naming them (they stay in the spatial index, so negatives still
    avoid them and windows still report them):

    * boxes that are NaN, infinite or have a negative width / height;
    * annotations whose ``category_id`` is not a category of the dataset (a
      sample would carry a label ``sampler.classes`` does not know);
    * boxes wholly outside their image (visible fraction 0 in the image, the
      rule of :func:`sampler_core.index.visible_fractions`): their window
      would be all padding.

    Args:
        dset (kwcoco.CocoDataset): the dataset.
        arrays: :func:`sampler_core.index.coco_annot_arrays` of ``dset`` when
            already computed.

    Returns:
        kwarray.DataFrameArray: columns :data:`TARGET_COLUMNS`; ``cx, cy, width,
        height`` float64 pixels, the rest int64.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes8')
        >>> targets = tabular_coco_targets(dset)
        >>> len(targets) == len(dset.anns)
        True
    """
    import kwarray
    from sampler_core.index import visible_fractions
    aids, gids, cids, xywh = coco_annot_arrays(dset) if arrays is None else arrays
    valid = np.isfinite(xywh).all(axis=1) & (xywh[:, 2] >= 0) & (xywh[:, 3] >= 0)
    if not valid.all():
        _warn_left_out(aids[~valid], 'have invalid boxes (NaN, inf or negative size)')
        aids, gids, cids, xywh = aids[valid], gids[valid], cids[valid], xywh[valid]
    known = np.isin(cids, np.fromiter(dset.cats.keys(), dtype=np.int64, count=len(dset.cats)))
    if not known.all():
        _warn_left_out(aids[~known], f'have a category_id that is not a category of the '
                                     f'dataset ({np.unique(cids[~known])[:10].tolist()})')
        aids, gids, cids, xywh = aids[known], gids[known], cids[known], xywh[known]
    imgs = dset.imgs
    img_wh = np.array([(imgs[g].get('width') or -1, imgs[g].get('height') or -1)
                       for g in np.unique(gids).tolist()], dtype=np.int64).reshape(-1, 2)
    uniq, inverse = np.unique(gids, return_inverse=True)
    if len(uniq):
        wh = img_wh[inverse].astype(np.float64)
        ltrb = np.hstack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
        image = np.hstack([np.zeros_like(wh), wh])
        outside = (wh > 0).all(axis=1) & (visible_fractions(ltrb, image) == 0)
        if outside.any():
            _warn_left_out(aids[outside], 'have boxes wholly outside their image')
            keep = ~outside
            aids, gids, cids, xywh = aids[keep], gids[keep], cids[keep], xywh[keep]
            inverse = inverse[keep]
    table = {
        'aid': aids,
        'gid': gids,
        'category_id': cids,
        'cx': xywh[:, 0] + xywh[:, 2] / 2,
        'cy': xywh[:, 1] + xywh[:, 3] / 2,
        'width': xywh[:, 2],
        'height': xywh[:, 3],
        'img_width': img_wh[inverse, 0] if len(uniq) else np.empty(0, dtype=np.int64),
        'img_height': img_wh[inverse, 1] if len(uniq) else np.empty(0, dtype=np.int64),
    }
    return kwarray.DataFrameArray(table)


def select_positive_regions(targets, window_dims: Sequence[int] = (300, 300),
                            thresh: float = 0.0, rng=None, verbose: int = 0) -> np.ndarray:
    """Indices of positives whose windows do not overlap each other (much).

    In each image, windows of ``window_dims`` centred on the annotations get
    random scores and a non-maximum suppression with IoU ``thresh`` keeps a
    subset, so fewer near-duplicate windows are sampled.

    Args:
        targets: the target table (see :func:`tabular_coco_targets`).
        window_dims: ``(height, width)`` of the windows, pixels.
        thresh: IoU above which two windows are redundant.
        rng: seed or RandomState.
        verbose: progress bar when > 0.

    Returns:
        sorted ``(M,)`` int array of row indices.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes8')
        >>> targets = tabular_coco_targets(dset)
        >>> keep = select_positive_regions(targets, (300, 300), rng=0)
        >>> 0 < len(keep) <= len(targets)
        True
    """
    import kwarray
    import kwimage
    import ubelt as ub
    wh, ww = coerce_window_dims(window_dims)
    rng = kwarray.ensure_rng(rng)
    gids = np.asarray(targets['gid'])
    cx, cy = np.asarray(targets['cx']), np.asarray(targets['cy'])
    ltrb = np.stack([cx - ww / 2, cy - wh / 2, cx + ww / 2, cy + wh / 2], axis=1)
    selection = []
    uniq, groups = kwarray.group_indices(gids)
    for groupx in ub.ProgIter(groups, desc='select positive regions', enabled=verbose > 0):
        scores = rng.rand(len(groupx))
        keep = kwimage.non_max_supression(ltrb[groupx], scores, thresh=thresh, impl='numpy')
        selection.extend(groupx[keep].tolist())
    return np.array(sorted(selection), dtype=np.int64)


class Targets:
    """Abstract pool API: positives first, then negatives."""

    def get_negative(self, index=None, rng=None):
        raise NotImplementedError

    def get_positive(self, index=None, rng=None):
        raise NotImplementedError

    def overlapping_aids(self, gid, box):
        raise NotImplementedError

    def preselect(self, n_pos=None, n_neg=None, neg_to_pos_ratio=None, window_dims=None,
                  rng=None, verbose=0):
        raise NotImplementedError


class CocoRegions(Targets, HashIdentifiable):
    """Positive / negative target pools over a kwcoco dataset.

    Args:
        dset (kwcoco.CocoDataset): images need ``width`` / ``height``.
        workdir: kept for ndsampler compatibility (pools are cheap to rebuild).
        verbose: verbosity.
    """

    def __init__(self, dset, workdir=None, verbose: int = 1):
        super().__init__()
        self.dset = dset
        self.workdir = workdir
        self.verbose = verbose
        self._targets = None
        self._arrays = None
        self._isect_index = None
        self._neg_anchors = None
        self._pos_select_idxs = None
        self._pos_windows = None  # explicit positive windows (grid mode), else rows of targets
        self._pos_shift = None  # (N, 2) (dx, dy) of positives moved by max_nodata_fraction
        self._negative_pool = None
        self._negative_idx = 0
        #: how the current pools were drawn (see pool_config); None: never drawn
        self._pool_request = None
        #: what ``max_nodata_fraction`` did to the current pools (see :meth:`preselect`);
        #: None: no pools drawn
        self.nodata_stats = None
        #: the windows ``max_nodata_fraction`` dropped from the current pools (see
        #: :meth:`_finish_nodata`); None: no pools drawn
        self.nodata_dropped = None
        bg = dset.name_to_cat.get('background', None) if hasattr(dset, 'name_to_cat') else None
        self.BACKGROUND_CLASS_ID = bg['id'] if bg is not None else 0

    @classmethod
    def demo(cls, key: str = 'shapes8', **kw) -> 'CocoRegions':
        """Regions of ``kwcoco.CocoDataset.demo(key, **kw)``."""
        import kwcoco
        return cls(kwcoco.CocoDataset.demo(key, **kw))

    def fork(self) -> 'CocoRegions':
        """Regions with pools of their own that share this one's read-only tables.

        The target table, spatial index and negative anchors built so far are
        shared (never copied); no pool is chosen yet. Preselecting on the fork
        leaves this one's pools alone: one dataset, several independent pools
        (per user session, per train / val subset).

        Example:
            >>> base = CocoRegions.demo('shapes8')
            >>> _ = base.preselect(n_pos=5, n_neg=5, window_dims=(32, 32), rng=0)
            >>> other = base.fork()
            >>> _ = other.preselect(n_pos=2, n_neg=0, window_dims=(32, 32), rng=1)
            >>> (base.n_positives, other.n_positives), other.targets is base.targets
            ((5, 2), True)
        """
        other = type(self)(self.dset, workdir=self.workdir, verbose=self.verbose)
        for name in ('_targets', '_arrays', '_isect_index', '_neg_anchors'):
            setattr(other, name, getattr(self, name))
        return other

    def _depends(self):
        return ['CocoRegions', self.dset._build_hashid(hash_pixels=False)]

    def __repr__(self) -> str:
        return (f'<CocoRegions(n_pos={self.n_positives}, n_neg={self.n_negatives}, '
                f'n_images={self.n_images})>')

    # ------------------------------------------------------------ counts
    @property
    def classes(self):
        return self.dset.object_categories()

    @property
    def catgraph(self):
        """Deprecated alias of :attr:`classes`."""
        return self.classes

    @property
    def n_negatives(self) -> int:
        return 0 if self._negative_pool is None else len(self._negative_pool['gid'])

    @property
    def n_positives(self) -> int:
        if self._pos_windows is not None:
            return len(self._pos_windows['gid'])
        if self._pos_select_idxs is not None:
            return len(self._pos_select_idxs)
        return len(self.targets)

    @property
    def n_samples(self) -> int:
        return self.n_positives + self.n_negatives

    @property
    def class_ids(self) -> list:
        return list(self.dset.cats.keys())

    @property
    def image_ids(self) -> list:
        return list(self.dset.imgs.keys())

    @property
    def n_annots(self) -> int:
        return len(self.dset.anns)

    @property
    def n_images(self) -> int:
        return len(self.dset.imgs)

    @property
    def n_categories(self) -> int:
        return len(self.dset.cats)

    def lookup_class_name(self, class_id):
        return self.dset.cats[class_id]['name']

    def lookup_class_id(self, class_name):
        return self.dset.name_to_cat[class_name]['id']

    # ------------------------------------------------------------ tables
    @property
    def targets(self):
        """All viable positives (annotations with a valid box) as a table."""
        if self._targets is None:
            self._targets = tabular_coco_targets(self.dset, arrays=self._annot_arrays())
            self._release_arrays()
        return self._targets

    def _annot_arrays(self):
        """:func:`coco_annot_arrays` of the dataset: one pass serves both tables."""
        if self._arrays is None:
            self._arrays = coco_annot_arrays(self.dset)
        return self._arrays

    def _release_arrays(self) -> None:
        if self._targets is not None and self._isect_index is not None:
            self._arrays = None  # both tables built: do not hold a third copy

    @property
    def isect_index(self) -> FrameIntersectionIndex:
        """The spatial index of all annotation boxes (built on first use)."""
        if self._isect_index is None:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # the target table warned already
                self._isect_index = FrameIntersectionIndex.from_coco(
                    self.dset, arrays=self._annot_arrays())
            self._release_arrays()
        return self._isect_index

    @property
    def neg_anchors(self) -> np.ndarray:
        """``(K, 2)`` negative window sizes ``(w, h)`` relative to ``min(img_h, img_w)``.

        Drawn (seeded, up to 1000) from the sizes of the positive boxes, so
        negatives look like positives in size.
        """
        if self._neg_anchors is None:
            t = self.targets
            z = np.minimum(t['img_width'], t['img_height']).astype(np.float64)
            wh = np.stack([t['width'], t['height']], axis=1)
            ok = (z > 0) & (wh > 0).all(axis=1)
            anchors = wh[ok] / z[ok, None]
            rng = np.random.RandomState(0)
            rng.shuffle(anchors)
            anchors = anchors[:1000]
            if len(anchors) == 0:
                anchors = np.array([[0.25, 0.25]])
            self._neg_anchors = anchors
        return self._neg_anchors

    # ------------------------------------------------------------ queries
    def visible_aids(self, gid: int, region: Any, visible_thresh: float = 0.0):
        """``(aids, fractions)`` of annotations in ``region`` at least ``visible_thresh`` visible.

        Args:
            gid: image id.
            region: ``kwimage.Boxes`` (one box) or ltrb numbers, image space.
            visible_thresh: in ``[0, 1]``.

        Raises:
            ValueError: ``visible_thresh`` outside ``[0, 1]``.
            KeyError: unknown ``gid``.
        """
        visible_thresh = float(visible_thresh)
        if not (0.0 <= visible_thresh <= 1.0):
            raise ValueError(f'visible_thresh must be in [0, 1], got {visible_thresh!r}')
        aids, frac = self.isect_index.visible(gid, region)
        if visible_thresh > 0:
            keep = frac >= visible_thresh
            aids, frac = aids[keep], frac[keep]
        return aids, frac

    def overlapping_aids(self, gid: int, region: Any, visible_thresh: float = 0.0) -> list:
        """Ids of the annotations of ``gid`` overlapping ``region``.

        Args:
            gid: image id.
            region: ``kwimage.Boxes`` (one box) or ltrb numbers, image space.
            visible_thresh: leave out annotations with a smaller visible fraction.

        Example:
            >>> self = CocoRegions.demo()
            >>> ann = self.dset.anns[1]
            >>> x, y, w, h = ann['bbox']
            >>> 1 in self.overlapping_aids(ann['image_id'], [x, y, x + w, y + h])
            True
        """
        return self.visible_aids(gid, region, visible_thresh)[0].tolist()

    def get_segmentations(self, aids):
        """kwimage segmentations of ``aids`` (image space), ``None`` where absent."""
        from sampler_core.annots import AnnotGeometry
        geom = AnnotGeometry(self.dset)
        return [geom.segmentation(a) for a in aids]

    # ------------------------------------------------------------ pools
    def preselect(self, n_pos: int | None = None, n_neg: int | None = None,
                  neg_to_pos_ratio: float | None = None, window_dims=None, rng=None,
                  verbose: int = 0, thresh: float = 0.0,
                  category_ids: Sequence[int] | None = None, balance=None,
                  split=None, max_nodata_fraction: float | None = None,
                  pad: Any = None) -> tuple[int, int]:
        """Choose the positive and negative pools.

        Args:
            n_pos: number of positives; ``None`` keeps every target. A number
                below the table size draws a random subset (kept in table
                order); a larger one repeats targets.
            n_neg: number of negatives. Exclusive with ``neg_to_pos_ratio``.
            neg_to_pos_ratio: ``n_neg = int(ratio * n_pos)``; default 0.
            window_dims: ``(height, width)`` of the negatives; ``None`` draws
                negative sizes from :attr:`neg_anchors`, ``'square'`` the same made
                square (their larger side). With ``None`` or ``'square'`` a
                positive's window comes from its box, so zero-size boxes are left out.
            rng: seed or RandomState; the same seed gives the same pools.
            verbose: print what was chosen.
            thresh: largest overlap of a negative with an annotation, as a
                fraction of the negative's area.
            category_ids: only annotations of these categories are positives
                (default: all). Negatives still avoid every annotation.
            balance: ``None`` / ``'none'`` (default, dataset proportions),
                ``'inverse'`` (every category equally often) or
                ``{category_id: weight}``; balanced pools of ``n_pos`` (default:
                the number of candidates) are drawn with replacement. See
                :mod:`sampler_core.balance`.
            split (sampler_core.split.SubsetSelector): keep only windows (with
                pad) of one subset of a train / val split. See
                :mod:`sampler_core.split`.
            max_nodata_fraction: ``None`` (off) or the largest fraction of a
                window's pixels (``window_dims`` plus ``pad``) that may be padding
                (:func:`nodata_fractions`). A positive above it is moved, by whole
                pixels, towards the inside of its image without losing any of its
                box (:func:`inside_shifts`); a negative above it is drawn again
                elsewhere (up to :data:`NODATA_REDRAW_ROUNDS` rounds); the others are
                dropped, with one warning. :attr:`nodata_stats` counts them.
            pad: ``(ph, pw)`` the windows are read with, for ``max_nodata_fraction``
                (default: the split's pad, else none).

        Returns:
            ``(n_pos, n_neg)`` actually chosen.

        Raises:
            ValueError: both ``n_neg`` and ``neg_to_pos_ratio``, negative counts,
                a pool larger than :data:`MAX_POOL_ITEMS`, an ``n_neg`` larger
                than the places a negative can take
                (:meth:`~sampler_core.index.FrameIntersectionIndex.negative_places`),
                split blocks smaller than the padded window. All before any
                drawing. (A ``neg_to_pos_ratio`` asking more negatives than
                there are places draws one per place, with a warning.)

        The arguments are remembered, so :meth:`pool_config` can say which
        config redraws these pools.
        """
        import kwarray
        max_nodata = check_max_nodata_fraction(max_nodata_fraction)
        nodata_pad = self._nodata_pad(pad, split)
        request = dict(mode='random', n_pos=n_pos, n_neg=n_neg,
                       neg_to_pos_ratio=neg_to_pos_ratio, window_dims=window_dims, rng=rng,
                       thresh=thresh, category_ids=category_ids, balance=balance, split=split,
                       max_nodata_fraction=max_nodata, nodata_pad=nodata_pad)
        ratio = self._check_counts(n_pos, n_neg, neg_to_pos_ratio)
        if split is not None:
            split.check_window_dims(window_dims)
        n_images = len(self.isect_index.image_dims if split is None else split.gids)
        if n_neg is not None and int(n_neg) > n_images:
            self._check_negative_places(int(n_neg), window_dims, split)
        rng = kwarray.ensure_rng(rng)
        before = _rng_state(rng)
        self._pool_request = {'why_not': 'the last preselect() raised before it finished'}
        n_pos = self._preselect_positives(n_pos, window_dims=window_dims, rng=rng,
                                          verbose=verbose, category_ids=category_ids,
                                          balance=balance, split=split)
        stats = _nodata_stats(max_nodata)
        if max_nodata is not None:
            n_pos = self._limit_positive_nodata(max_nodata, window_dims, nodata_pad, split, stats)
        from_ratio = n_neg is None
        if from_ratio:
            n_neg = check_pool_size(int(ratio * n_pos), 'n_neg (neg_to_pos_ratio * n_pos)')
        n_neg = self._preselect_negatives(n_neg, window_dims=window_dims, thresh=thresh,
                                          rng=rng, verbose=verbose, split=split,
                                          at_most_places=from_ratio,
                                          max_nodata_fraction=max_nodata, pad=nodata_pad,
                                          stats=stats)
        request['rng_used'] = _rng_state(rng) != before
        self._pool_request = request
        self._finish_nodata(stats)
        return n_pos, n_neg

    @staticmethod
    def _nodata_pad(pad, split) -> tuple:
        """The pad ``max_nodata_fraction`` counts: ``pad``, else the split's, else none."""
        if pad is None:
            return split.pad if split is not None else coerce_pad(None)
        pad = coerce_pad(pad)
        if split is not None and tuple(split.pad) != pad:
            raise ValueError(f'pad={pad!r} differs from the split selector\'s pad {split.pad!r}; '
                             f'the windows have one pad: give the same to both')
        return pad

    def _limit_positive_nodata(self, max_nodata: float, window_dims, pad, split,
                               stats: dict) -> int:
        """Move (or drop) the positives whose windows hold more padding than ``max_nodata``."""
        pos, _ = self.pool_tables()
        bad = nodata_fractions(pos, window_dims, pad) > max_nodata
        if not bad.any():
            return self.n_positives
        sub = {k: v[bad] for k, v in pos.items()}
        shift = inside_shifts(sub, window_dims, pad)
        sub['cx'] = sub['cx'] + shift[:, 0]
        sub['cy'] = sub['cy'] + shift[:, 1]
        ok = nodata_fractions(sub, window_dims, pad) <= max_nodata
        if split is not None:   # a moved window must stay in its subset
            boxes, _ = window_boxes(sub['cx'], sub['cy'], sub['width'], sub['height'],
                                    window_dims)
            ok &= split.keep(sub['gid'], boxes)
        if not ok.all():   # the dropped windows where they were (before the shift)
            lost = np.flatnonzero(bad)[~ok]
            ltrb, _ = window_boxes(pos['cx'][lost], pos['cy'][lost], pos['width'][lost],
                                   pos['height'][lost], window_dims)
            stats['_dropped'].append(('pos', pos['gid'][lost], ltrb))
        keep = ~bad
        keep[bad] = ok
        shifts = np.zeros((len(bad), 2), dtype=np.int64)
        shifts[bad] = shift
        self._pos_select_idxs = self._pos_select_idxs[keep]
        shifts = shifts[keep]
        self._pos_shift = shifts if shifts.any() else None
        stats['positives_redrawn'] = int(ok.sum())
        stats['positives_dropped'] = int((~ok).sum())
        return self.n_positives

    def _limit_negative_nodata(self, gids, ltrb, draw, max_nodata: float, window_dims, pad,
                               stats: dict) -> tuple[np.ndarray, np.ndarray]:
        """Negatives whose windows hold more padding than ``max_nodata`` drawn again by
        ``draw(num) -> (gids, boxes)`` (in order, from the same random stream), or dropped."""
        gids = np.asarray(gids, dtype=np.int64).copy()
        ltrb = np.asarray(ltrb, dtype=np.float64).reshape(-1, 4).copy()

        def too_much(g, b):
            return nodata_fractions(self._window_table(g, b, 0), window_dims, pad) > max_nodata

        bad = np.flatnonzero(too_much(gids, ltrb))
        if not len(bad):
            return gids, ltrb
        found_g, found_b, n_found = [], [], 0
        for _ in range(NODATA_REDRAW_ROUNDS):
            if n_found >= len(bad):
                break
            with warnings.catch_warnings():   # fewer than asked is expected here
                warnings.simplefilter('ignore')
                g, b = draw(max(64, 2 * (len(bad) - n_found)))
            b = b.to_ltrb().data.reshape(-1, 4)
            ok = ~too_much(g, b)
            found_g.append(np.asarray(g, dtype=np.int64)[ok])
            found_b.append(np.asarray(b, dtype=np.float64)[ok])
            n_found += int(ok.sum())
        n = min(n_found, len(bad))
        if n:
            gids[bad[:n]] = np.concatenate(found_g)[:n]
            ltrb[bad[:n]] = np.concatenate(found_b)[:n]
        keep = np.ones(len(gids), dtype=bool)
        keep[bad[n:]] = False
        if n < len(bad):
            lost = self._window_table(gids[bad[n:]], ltrb[bad[n:]], 0)
            boxes, _ = window_boxes(lost['cx'], lost['cy'], lost['width'], lost['height'],
                                    window_dims)
            stats['_dropped'].append(('neg', lost['gid'], boxes))
        stats['negatives_redrawn'] = int(n)
        stats['negatives_dropped'] = int(len(bad) - n)
        return gids[keep], ltrb[keep]

    def _finish_nodata(self, stats: dict) -> None:
        """Keep the counts of ``max_nodata_fraction`` (:attr:`nodata_stats`) and the dropped
        windows (:attr:`nodata_dropped`), and warn once about dropped windows.

        :attr:`nodata_dropped` is ``{'kind': (N,) 'pos' / 'neg', 'gid': (N,) int64,
        'ltrb': (N, 4) float64 (each window as ``load_item`` would have read it, without
        pad, image pixels; a dropped positive where it was before any move), 'total': int}``,
        the first :data:`NODATA_RECORD_LIMIT` of ``total`` dropped windows, positives first.
        """
        parts = stats.pop('_dropped', [])
        gids = np.concatenate([np.asarray(g, dtype=np.int64).ravel() for _, g, _ in parts]
                              or [np.zeros(0, dtype=np.int64)])
        self.nodata_dropped = {
            'kind': np.concatenate([np.full(len(g), k) for k, g, _ in parts]
                                   or [np.zeros(0, dtype='<U3')])[:NODATA_RECORD_LIMIT],
            'gid': gids[:NODATA_RECORD_LIMIT],
            'ltrb': np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1, 4)
                                    for _, _, b in parts]
                                   or [np.zeros((0, 4))])[:NODATA_RECORD_LIMIT],
            'total': int(len(gids))}
        self.nodata_stats = stats
        if stats['positives_dropped'] or stats['negatives_dropped']:
            warnings.warn(
                f'max_nodata_fraction={stats["max_nodata_fraction"]}: dropped '
                f'{stats["positives_dropped"]} positive and {stats["negatives_dropped"]} '
                f'negative windows with more padding than that and no window to replace them '
                f'(positives moved: {stats["positives_redrawn"]}, negatives drawn again: '
                f'{stats["negatives_redrawn"]})')

    @staticmethod
    def _check_counts(n_pos, n_neg, neg_to_pos_ratio) -> float:
        """Check the requested pool sizes before any work; return the negative ratio."""
        if neg_to_pos_ratio is not None and n_neg is not None:
            raise ValueError(f'give n_neg or neg_to_pos_ratio, not both (got n_neg={n_neg!r}, '
                             f'neg_to_pos_ratio={neg_to_pos_ratio!r})')
        if n_pos is not None:
            check_pool_size(n_pos, 'n_pos')
        if n_neg is not None:
            check_pool_size(n_neg, 'n_neg')
        ratio = 0.0 if neg_to_pos_ratio is None else float(neg_to_pos_ratio)
        if not (ratio >= 0 and np.isfinite(ratio)):
            raise ValueError(f'neg_to_pos_ratio must be finite and not negative, '
                             f'got {neg_to_pos_ratio!r}')
        return ratio

    def preselect_grid(self, window_dims, window_overlap: float = 0.0, edge: str = 'shift',
                       n_pos: int | None = None, n_neg: int | None = None,
                       neg_to_pos_ratio: float | None = None, rng=None,
                       category_ids: Sequence[int] | None = None, split=None,
                       balance=None, verbose: int = 0,
                       max_nodata_fraction: float | None = None,
                       pad: Any = None) -> tuple[int, int]:
        """Pools of sliding-window grid windows (config ``mode: grid``).

        The windows of :meth:`new_sample_grid` (``'image_detection'``) that
        overlap an annotation (of ``category_ids``, if given) are the
        positives, the others the negatives. Positive targets have
        ``aid == -1`` and ``category_id == -1`` (a window holds several
        annotations); negatives the background category.

        Args:
            window_dims: ``(height, width)`` of the windows, pixels.
            window_overlap: fraction of a window shared with its neighbour, ``[0, 1)``.
            edge: ``'shift'``, ``'pad'`` or ``'drop'`` (see :mod:`sampler_core.grid`).
            n_pos: number of positive windows; ``None``: all of them. Fewer draws a
                seeded subset (kept in grid order), more repeats windows.
            n_neg: number of negative windows (at most all of them). Exclusive
                with ``neg_to_pos_ratio`` (``n_neg = int(ratio * n_pos)``, default 0).
            rng: seed or RandomState.
            category_ids: categories that make a window positive (default: all).
            split (sampler_core.split.SubsetSelector): keep one subset's windows.
            balance: ``None`` (every positive window, or a seeded subset of
                ``n_pos``), ``'inverse'`` or ``{category_id: weight}``: ``n_pos``
                (default: the number of positive windows) drawn with replacement,
                each window in proportion to the weight of the rarest category it
                holds (:func:`sampler_core.balance.grid_window_weights`), in grid order.
            verbose: print what was chosen.
            max_nodata_fraction: ``None`` (off) or the largest fraction of padding a
                grid window (plus ``pad``) may hold; a grid's windows have fixed places,
                so those above it are dropped (before ``n_pos`` / ``n_neg`` are drawn),
                counted in :attr:`nodata_stats`, with one warning.
            pad: see :meth:`preselect`.

        Returns:
            ``(n_pos, n_neg)`` actually chosen.

        Example:
            >>> self = CocoRegions.demo('shapes8')
            >>> self.preselect_grid((256, 256), n_neg=5, rng=0)[1]
            5
            >>> tr = self.get_positive(0)
            >>> (tr['aid'], tr['width'], tr['cx'] - tr['width'] / 2)
            (-1, 256.0, 0.0)
        """
        import kwarray
        max_nodata = check_max_nodata_fraction(max_nodata_fraction)
        nodata_pad = self._nodata_pad(pad, split)
        request = dict(mode='grid', window_dims=window_dims, window_overlap=window_overlap,
                       edge=edge, n_pos=n_pos, n_neg=n_neg, neg_to_pos_ratio=neg_to_pos_ratio,
                       rng=rng, category_ids=category_ids, split=split, balance=balance,
                       max_nodata_fraction=max_nodata, nodata_pad=nodata_pad)
        stats = _nodata_stats(max_nodata)
        from sampler_core.balance import coerce_balance, grid_window_weights
        balance = coerce_balance(balance)
        ratio = self._check_counts(n_pos, n_neg, neg_to_pos_ratio)
        if split is not None:
            split.check_window_dims(window_dims)
        rng = kwarray.ensure_rng(rng)
        before = _rng_state(rng)
        coi = None
        if category_ids is not None:
            coi = [self.dset.cats[c]['name'] for c in self._check_category_ids(category_ids)]
        grid = self.new_sample_grid('image_detection', tuple(window_dims), window_overlap,
                                    edge=edge, classes_of_interest=coi)
        tables = []
        for key in ('positives', 'negatives'):
            gids = np.array([tr['gid'] for tr in grid[key]], dtype=np.int64)
            ltrb = np.array([[tr['slices'][1].start, tr['slices'][0].start,
                              tr['slices'][1].stop, tr['slices'][0].stop] for tr in grid[key]],
                            dtype=np.int64).reshape(-1, 4)
            keep = np.arange(len(gids))
            if split is not None:
                keep = np.flatnonzero(split.keep(gids, ltrb))
                gids, ltrb = gids[keep], ltrb[keep]
            if max_nodata is not None:   # fixed places: drop the windows above it
                ok = nodata_fractions(self._window_table(gids, ltrb, 0), window_dims,
                                      nodata_pad) <= max_nodata
                stats[f'{key}_dropped'] = int((~ok).sum())
                stats['_dropped'].append((key[:3], gids[~ok], ltrb[~ok]))
                keep, gids, ltrb = keep[ok], gids[ok], ltrb[ok]
            tables.append((gids, ltrb, keep))
        weights = None
        if balance is not None:   # the categories that make each kept positive positive
            counted = self._grid_counted_categories(category_ids)
            anns = self.dset.anns
            weights = grid_window_weights(
                [[anns[a]['category_id'] for a in grid['positives'][i]['aids']
                  if anns[a].get('category_id') in counted] for i in tables[0][2]], balance)

        def choose(n_have, n_want, repeat):
            if n_want is None or int(n_want) == n_have:
                return np.arange(n_have)
            n_want = int(n_want)
            if n_want < 0:
                raise ValueError(f'counts must not be negative, got {n_want}')
            if n_want <= n_have:
                return np.sort(rng.choice(n_have, size=n_want, replace=False))
            if not repeat or n_have == 0:
                warnings.warn(f'the grid has only {n_have} windows of this kind; '
                              f'{n_want} were asked for')
                return np.arange(n_have)
            return np.sort(np.concatenate([np.arange(n_have),
                                           rng.choice(n_have, n_want - n_have, replace=True)]))

        (pg, pl, _), (ng, nl, _) = tables
        if weights is None:
            pos = choose(len(pg), n_pos, repeat=True)
        else:
            num = len(pg) if n_pos is None else int(n_pos)
            total = weights.sum()
            if num and total <= 0:
                raise ValueError(f'every positive grid window holds only categories of balance '
                                 f'weight 0 ({balance!r}); nothing can be drawn')
            pos = np.sort(rng.choice(len(pg), size=num, replace=True, p=weights / total)) \
                if num else np.zeros(0, dtype=np.int64)
        if n_neg is None:
            n_neg = min(int(ratio * len(pos)), len(ng))
        neg = choose(len(ng), n_neg, repeat=False)
        self._pos_select_idxs = None
        self._pos_shift = None
        self._pos_windows = self._window_table(pg[pos], pl[pos], -1)
        self._negative_pool = self._window_table(ng[neg], nl[neg], self.BACKGROUND_CLASS_ID)
        self._negative_idx = 0
        request['rng_used'] = _rng_state(rng) != before
        self._pool_request = request
        self._finish_nodata(stats)
        if verbose:
            print(f'Preselected {len(pos)} positive and {len(neg)} negative grid windows')
        return len(pos), len(neg)

    def positive_candidates(self, window_dims=None, category_ids=None, split=None,
                            warn: bool = True) -> np.ndarray:
        """Rows of :attr:`targets` that may enter the positive pool.

        Args:
            window_dims, category_ids, split: see :meth:`preselect`.
            warn: warn about zero-size boxes left out.

        Returns:
            sorted ``(M,)`` int64 rows.
        """
        t = self.targets
        rows = np.arange(len(t))
        if category_ids is not None:
            category_ids = self._check_category_ids(category_ids)
            rows = rows[np.isin(np.asarray(t['category_id']), category_ids)]
        if window_dims is None or isinstance(window_dims, str):
            # a zero-size box cannot define its own window
            ok = (np.asarray(t['width'])[rows] > 0) & (np.asarray(t['height'])[rows] > 0)
            if not ok.all():
                if warn:
                    aids = np.asarray(t['aid'])[rows[~ok]]
                    more = f' (and {len(aids) - 20} more)' if len(aids) > 20 else ''
                    warnings.warn(f'{len(aids)} zero-size annotations are left out of the '
                                  f'positive pool because window_dims is {window_dims!r}: '
                                  f'aids {aids[:20].tolist()}{more}')
                rows = rows[ok]
        if split is not None:
            ltrb, _ = window_boxes(np.asarray(t['cx'])[rows], np.asarray(t['cy'])[rows],
                                   np.asarray(t['width'])[rows], np.asarray(t['height'])[rows],
                                   window_dims)
            n_before = len(rows)
            rows = rows[split.keep(np.asarray(t['gid'])[rows], ltrb)]
            if warn and n_before and not len(rows):
                warnings.warn(f'the {split.name!r} side of {split.split!r} keeps none of the '
                              f'{n_before} positive windows (window_dims {window_dims!r}, pad '
                              f'{split.pad}): each lies in the other subset or straddles both')
        return rows

    def _preselect_positives(self, num=None, window_dims=None, rng=None, verbose=None,
                             category_ids=None, balance=None, split=None) -> int:
        import kwarray
        from sampler_core.balance import balanced_choice, coerce_balance
        rng = kwarray.ensure_rng(rng)
        balance = coerce_balance(balance)
        self._pos_windows = None
        self._pos_shift = None
        rows = self.positive_candidates(window_dims, category_ids, split)
        if balance is not None:
            num = len(rows) if num is None else check_pool_size(num, 'n_pos')
            if len(rows) == 0 and num > 0:
                raise ValueError('the dataset has no positive targets to choose from')
            cids = np.asarray(self.targets['category_id'])[rows]
            rows = balanced_choice(rows, cids, num, balance, rng)
        elif num is not None:
            num = check_pool_size(num, 'n_pos')
            if len(rows) == 0 and num > 0:
                raise ValueError('the dataset has no positive targets to choose from')
            if num <= len(rows):
                rows = np.sort(rng.choice(rows, size=num, replace=False))
            else:
                extra = rng.choice(rows, size=num - len(rows), replace=True)
                rows = np.sort(np.concatenate([rows, extra]))
        self._pos_select_idxs = rows
        if verbose:
            print(f'Preselected {len(rows)} positives')
        return len(rows)

    def _check_category_ids(self, category_ids) -> list[int]:
        """``category_ids`` as ints; KeyError naming the ones the dataset lacks."""
        category_ids = [int(c) for c in category_ids]
        unknown = sorted(set(category_ids) - set(self.dset.cats))
        if unknown:
            raise KeyError(f'unknown category id(s) {unknown}')
        return category_ids

    def _window_table(self, gids, ltrb, category_id: int) -> dict:
        """A pool table (:data:`TARGET_COLUMNS`) of windows ``(N, 4)`` ltrb in images ``gids``."""
        dims = self.isect_index.image_dims
        gids = np.asarray(gids, dtype=np.int64)
        ltrb = np.asarray(ltrb).reshape(-1, 4)
        w = (ltrb[:, 2] - ltrb[:, 0]).astype(np.float64)
        h = (ltrb[:, 3] - ltrb[:, 1]).astype(np.float64)
        return {
            'aid': np.full(len(gids), -1, dtype=np.int64),
            'gid': gids,
            'category_id': np.full(len(gids), category_id, dtype=np.int64),
            'cx': ltrb[:, 0] + w / 2, 'cy': ltrb[:, 1] + h / 2, 'width': w, 'height': h,
            'img_width': np.array([dims[g][1] for g in gids.tolist()], dtype=np.int64),
            'img_height': np.array([dims[g][0] for g in gids.tolist()], dtype=np.int64),
        }

    def _negative_sizes(self, window_dims) -> dict:
        """``anchors=`` / ``window_size=`` of ``random_negatives`` for ``window_dims``."""
        if window_dims == 'square':     # sizes like the positives' square windows
            return {'anchors': np.repeat(self.neg_anchors.max(axis=1, keepdims=True), 2, axis=1)}
        if window_dims is not None:
            wh, ww = coerce_window_dims(window_dims)
            return {'window_size': (ww, wh)}
        return {'anchors': self.neg_anchors}

    def negative_places(self, window_dims=None, split=None) -> int:
        """How many distinct negative windows a preselect with these arguments can draw.

        Every whole-pixel position of every window size the negatives can have
        (:meth:`~sampler_core.index.FrameIntersectionIndex.negative_places`) in
        the images they are drawn from, before those overlapping annotations
        are left out: no request can have more distinct negatives.

        Args:
            window_dims, split: see :meth:`preselect`.

        Example:
            >>> self = CocoRegions.demo('shapes8')   # 8 images of 600 x 600
            >>> self.negative_places((500, 600)) == 8 * 101 * 1
            True
        """
        gids = None if split is None else split.gids
        return self.isect_index.negative_places(gids=gids, **self._negative_sizes(window_dims))

    def _check_negative_places(self, num: int, window_dims, split, name: str = 'n_neg') -> int:
        places = self.negative_places(window_dims, split)
        if num > places:
            raise ValueError(
                f'{name}={num:,} is more than the {places:,} places a negative window can take '
                f'(every whole-pixel position of every window size the negatives can have '
                f'(window_dims {window_dims!r}), in the images they are drawn from); ask for at '
                f'most {places:,} negatives')
        return places

    def _preselect_negatives(self, num, window_dims=None, thresh: float = 0.0, rng=None,
                             verbose=None, split=None, at_most_places: bool = False,
                             max_nodata_fraction: float | None = None, pad=None,
                             stats: dict | None = None) -> int:
        num = check_pool_size(num, 'n_neg')
        kw = self._negative_sizes(window_dims)
        n_images = len(self.isect_index.image_dims if split is None else split.gids)
        if num > n_images:  # every image has one place at least: only then count them
            places = self.negative_places(window_dims, split)
            if num > places and at_most_places:
                warnings.warn(f'neg_to_pos_ratio asks for {num:,} negatives but windows of '
                              f'window_dims {window_dims!r} have only {places:,} places: '
                              f'drawing {places:,}')
                num = places
            elif num > places:
                self._check_negative_places(num, window_dims, split)
        import kwarray
        rng = kwarray.ensure_rng(rng)

        def draw(n, exact='warn'):
            if split is not None:
                return split.random_negatives(self.isect_index, n, thresh=thresh, rng=rng, **kw)
            return self.isect_index.random_negatives(n, thresh=thresh, exact=exact, rng=rng, **kw)

        gids, boxes = draw(num)
        ltrb = boxes.to_ltrb().data.reshape(-1, 4)
        if max_nodata_fraction is not None:
            gids, ltrb = self._limit_negative_nodata(
                gids, ltrb, lambda n: draw(n, exact=False), max_nodata_fraction, window_dims,
                pad, stats)
        self._negative_pool = self._window_table(gids, ltrb, self.BACKGROUND_CLASS_ID)
        self._negative_idx = 0
        if verbose:
            print(f'Preselected {len(gids)} negatives')
        return len(gids)

    def get_positive(self, index: int | None = None, rng=None) -> dict:
        """The ``index``-th positive of the pool, or a random one when ``None``.

        A positive's ``cx, cy, width, height`` are its box, except that a side
        of length 0 is 2 px long around it (:func:`positive_extent`): loaded
        without ``window_dims``, every positive then has a non-empty window
        that holds its box, so one point or line annotation never stops an
        epoch. (With
        ``window_dims=None`` / ``'square'`` :meth:`preselect` leaves zero-size
        boxes out of the pool, docs/design.md rule 26.)

        Raises:
            IndexError: ``index`` outside the pool.
        """
        n = self.n_positives
        if index is None:
            import kwarray
            if n == 0:
                raise IndexError('the positive pool is empty')
            index = int(kwarray.ensure_rng(rng).randint(0, n))
        index = int(index)
        if not (0 <= index < n):  # no wrap-around: -1 is a bug, not "the last one"
            raise IndexError(f'positive index {index} outside the pool of {n} (0 to {n - 1})')
        if self._pos_windows is not None:
            return _row(self._pos_windows, index)
        shift = None if self._pos_shift is None else self._pos_shift[index]
        if self._pos_select_idxs is not None:
            index = int(self._pos_select_idxs[index])
        row = _row(self.targets, index)
        if row['width'] == 0 or row['height'] == 0:
            extent = positive_extent(row['cx'], row['cy'], row['width'], row['height'])
            row.update(zip(('cx', 'cy', 'width', 'height'), (float(v) for v in extent)))
        if shift is not None:   # moved towards the image inside (max_nodata_fraction)
            row['cx'] += float(shift[0])
            row['cy'] += float(shift[1])
        return row

    def get_negative(self, index: int | None = None, rng=None) -> dict:
        """The ``index``-th negative of the pool.

        With ``index=None`` the pool is walked in order (and redrawn, one
        window, when it does not exist or is used up).

        Raises:
            MissingNegativePool: a specific index before :meth:`preselect`.
            IndexError: ``index`` outside the pool.
        """
        if index is None:
            if self._negative_pool is None or self._negative_idx >= self.n_negatives:
                self._preselect_negatives(1, rng=rng)
                self._pool_request = {'why_not': (
                    'the negative pool was redrawn one window at a time by get_negative() / '
                    'load_negative() without an index; preselect(n_neg=..., rng=<int seed>) '
                    'and load negatives by index')}
                if self.n_negatives == 0:
                    raise ValueError('could not find any negative window in this dataset')
            tr = _row(self._negative_pool, self._negative_idx)
            self._negative_idx += 1
            return tr
        if self._negative_pool is None:
            raise MissingNegativePool(
                f'negative index={index} was asked for, but no negative pool exists; '
                f'call preselect(n_neg=...) first')
        n = self.n_negatives
        index = int(index)
        if not (0 <= index < n):
            raise IndexError(f'negative index {index} outside the pool of {n} (0 to {n - 1})')
        return _row(self._negative_pool, index)

    def pool_tables(self) -> tuple[dict, dict]:
        """The current pools as ``(positives, negatives)`` column tables.

        Each is a dict of :data:`TARGET_COLUMNS` -> ``(N,)`` arrays whose row
        ``i`` is ``get_positive(i)`` / ``get_negative(i)``; far faster than
        calling the getters one by one on large pools. Before a negative pool
        exists the negative table is empty.

        Example:
            >>> self = CocoRegions.demo()
            >>> _ = self.preselect(n_pos=5, n_neg=3, window_dims=(32, 32), rng=0)
            >>> pos, neg = self.pool_tables()
            >>> (len(pos['gid']), len(neg['gid']))
            (5, 3)
            >>> {k: v[2].item() for k, v in pos.items()} == self.get_positive(2)
            True
        """
        if self._pos_windows is not None:
            pos = {k: np.asarray(v) for k, v in self._pos_windows.items()}
        else:
            t, sel = self.targets, self._pos_select_idxs
            pos = {k: np.asarray(t[k]) if sel is None else np.asarray(t[k])[sel]
                   for k in TARGET_COLUMNS}
            keys = ('cx', 'cy', 'width', 'height')
            pos.update(zip(keys, positive_extent(*(pos[k] for k in keys))))
            if self._pos_shift is not None:   # moved towards the image inside
                pos['cx'] = pos['cx'] + self._pos_shift[:, 0]
                pos['cy'] = pos['cy'] + self._pos_shift[:, 1]
        if self._negative_pool is None:
            neg = {k: np.empty(0, dtype=pos[k].dtype) for k in TARGET_COLUMNS}
        else:
            neg = {k: np.asarray(v) for k, v in self._negative_pool.items()}
        return pos, neg

    def _grid_counted_categories(self, category_ids) -> set:
        """Category ids that make a grid window positive (those of ``category_ids``, else
        every category but :data:`sampler_core.grid.NEGATIVE_CLASSES`)."""
        from sampler_core.grid import NEGATIVE_CLASSES
        ids = set(self.dset.cats) if category_ids is None else set(category_ids)
        return {c for c in ids if c in self.dset.cats and
                str(self.dset.cats[c].get('name', '')).lower() not in NEGATIVE_CLASSES}

    def pool_config(self, default_window_dims: Any = (256, 256)) -> dict:
        """The :class:`~sampler_core.config.SamplingConfig` fields that redraw the current pools.

        Every public way of drawing pools (:meth:`preselect`,
        :meth:`preselect_grid`, ``CocoSampler.preselect`` / ``apply_config`` /
        ``from_config``) records its arguments; this turns them into config
        fields (category ids into names, a split selector into ``split_*`` and
        its ``pad``, ``rng`` into ``seed``). Pools never drawn (every target a
        positive, no negatives) are ``n_pos: null, n_neg: 0`` with a fixed
        ``window_dims`` (``default_window_dims`` when it is one).

        A val-side split pool is rebuilt with ``from_config(config, subset='val')``:
        the subset is not a config field.

        Args:
            default_window_dims: the ``window_dims`` the config will hold when
                the pools do not fix it.

        Returns:
            dict of config fields.

        Raises:
            ValueError: the pools cannot be redrawn from a config, saying why and
                what to pass instead (an ``rng`` that is not an integer seed, a
                window a config cannot hold, an asymmetric split pad, ...).

        Example:
            >>> self = CocoRegions.demo('shapes8')
            >>> cid = max(self.dset.cats)
            >>> _ = self.preselect(n_pos=5, n_neg=3, window_dims=(32, 48), rng=7,
            ...                    category_ids=[cid])
            >>> fields = self.pool_config()
            >>> fields['window_dims'], fields['seed'], fields['n_neg']
            ((32, 48), 7, 3)
            >>> fields['categories'] == [self.dset.cats[cid]['name']]
            True
        """
        import numbers
        from sampler_core.balance import coerce_balance
        from sampler_core.config import MAX_SEED
        req = self._pool_request
        if req is None:  # never drawn: every target, in table order, and no negatives
            fixed = default_window_dims is not None and not isinstance(default_window_dims, str)
            if not fixed:
                t = self.targets
                if ((np.asarray(t['width']) == 0) | (np.asarray(t['height']) == 0)).any():
                    raise ValueError(
                        f'the pools were never drawn, so they hold every target, zero-size boxes '
                        f'too; window_dims {default_window_dims!r} would leave those out: give '
                        f'window_dims=(h, w), or preselect first')
            return {'mode': 'random', 'n_pos': None, 'n_neg': 0, 'categories': [],
                    'balance': 'none', 'split_by': 'none', 'window_dims': default_window_dims}
        if 'why_not' in req:
            raise ValueError(f'no config describes the current pools: {req["why_not"]}')
        out: dict[str, Any] = {'mode': req['mode'], 'n_pos': req['n_pos']}
        rng = req['rng']
        if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) \
                and 0 <= int(rng) <= MAX_SEED:
            out['seed'] = int(rng)
        elif req['rng_used']:
            raise ValueError(f'the pools were drawn with rng={rng!r}, and a config holds only an '
                             f'integer seed in [0, {MAX_SEED}]: preselect with rng=<int seed> '
                             f'(e.g. rng=0) to export them')
        if req['n_neg'] is not None:
            out['n_neg'] = int(req['n_neg'])
        else:
            ratio = req['neg_to_pos_ratio']
            out.update(n_neg=None, neg_to_pos_ratio=0.0 if ratio is None else float(ratio))
        out['window_dims'] = self._config_window_dims(req)
        if req['mode'] == 'grid':
            overlap = req['window_overlap']
            if not np.isscalar(overlap):
                values = {float(v) for v in overlap}
                if len(values) != 1:
                    raise ValueError(f'the grid was drawn with window_overlap={overlap!r}; a '
                                     f'config holds one overlap for both axes: give one number')
                overlap = values.pop()
            out.update(grid_overlap=float(overlap), grid_edge=req['edge'])
        else:
            out['neg_overlap'] = float(req['thresh'])
        balance = coerce_balance(req.get('balance'))
        if isinstance(balance, dict):
            cats = self.dset.cats
            out.update(balance='weights', class_weights={
                cats[c]['name']: w for c, w in balance.items() if c in cats})
        else:
            out['balance'] = 'none' if balance is None else balance
        out['categories'] = self._config_categories(req['category_ids'])
        out['max_nodata_fraction'] = req.get('max_nodata_fraction')
        if out['max_nodata_fraction'] is not None:   # the pad it counted is the config's
            (pt, pb), (pl, pr) = req['nodata_pad']
            if pt != pb or pl != pr:
                raise ValueError(f'the pools were drawn with max_nodata_fraction and pad '
                                 f'{req["nodata_pad"]}; a config pads (height, width) the same '
                                 f'on both sides: use pad=(ph, pw)')
            out['pad'] = (pt, pl)
        out.update(self._config_split(req['split']))
        return out

    @staticmethod
    def _config_window_dims(req: dict) -> Any:
        """``window_dims`` of a pool request as a config holds it."""
        dims = req['window_dims']
        if req['mode'] == 'random' and (dims is None or dims == 'square'):
            return dims
        try:
            return coerce_window_dims(dims)
        except (TypeError, ValueError) as ex:
            raise ValueError(f'the pools were drawn with window_dims={dims!r}, which a config '
                             f'cannot hold ({ex}); give window_dims=(height, width) in whole '
                             f'pixels') from None

    def _config_categories(self, category_ids) -> list[str]:
        """Category names of a pool request (``[]``: every category)."""
        if category_ids is None:
            return []
        ids = sorted(set(self._check_category_ids(category_ids)))
        if not ids:
            raise ValueError('the pools were drawn with category_ids=[] (no positives); a '
                             'config\'s empty categories list means every category: give '
                             'n_pos=0 instead')
        names = [self.dset.cats[c]['name'] for c in ids]
        back = sorted({self.dset.name_to_cat[n]['id'] for n in names})
        if back != ids:
            raise ValueError(f'categories {ids} share names with other categories ({names}); a '
                             f'config names categories, so give them unique names')
        return names

    @staticmethod
    def _config_split(split) -> dict:
        """``split_*`` fields (and the ``pad`` the split assumed) of a pool request."""
        if split is None:
            return {'split_by': 'none'}
        (pt, pb), (pl, pr) = split.pad
        if pt != pb or pl != pr:
            raise ValueError(f'the split selector was made with pad {split.pad}; a config pads '
                             f'(height, width) the same on both sides: use pad=(ph, pw)')
        out = {'split_by': split.split.by, 'val_fraction': split.split.val_fraction,
               'split_seed': split.split.seed, 'pad': (pt, pl)}
        if split.split.by == 'block':
            out['split_block'] = tuple(split.split.block_dims)
        return out

    def get_item(self, index: int | None, rng=None) -> dict:
        """Positives first (``index < n_positives``), then negatives."""
        if index is None:
            import kwarray
            index = int(kwarray.ensure_rng(rng).randint(0, self.n_samples))
        if index < 0:
            raise IndexError(f'item index {index} is negative; use 0 to {self.n_samples - 1}')
        if index < self.n_positives:
            return self.get_positive(index, rng=rng)
        return self.get_negative(index - self.n_positives, rng=rng)

    def new_sample_grid(self, task: str, window_dims, window_overlap=0.0, **kwargs) -> dict:
        """Sliding-window targets tiling every image / video.

        See :func:`sampler_core.grid.new_sample_grid`.

        Args:
            task: ``'image_detection'`` (``window_dims=(h, w)``) or
                ``'video_detection'`` (``window_dims=(t, h, w)``).
            window_dims: window size.
            window_overlap: fraction of a window shared with the next, in ``[0, 1)``.
            **kwargs: ``edge`` (``'shift'`` / ``'pad'`` / ``'drop'``), ``use_annots``,
                ``negative_classes``, ``classes_of_interest``, ``verbose``.

        Returns:
            ``{'targets', 'positives', 'negatives', 'positives_indexes', 'negatives_indexes'}``.

        Example:
            >>> self = CocoRegions.demo('vidshapes1', num_frames=3, image_size=(64, 64))
            >>> grid = self.new_sample_grid('video_detection', window_dims=(2, 32, 32))
            >>> len(grid['targets'])  # 2 time windows x 2 x 2 spatial ones
            8
        """
        from sampler_core.grid import new_sample_grid
        return new_sample_grid(self.dset, task, window_dims, window_overlap, **kwargs)
