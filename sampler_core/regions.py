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
from sampler_core.window import coerce_window_dims, window_boxes

#: columns of the target table, in order
TARGET_COLUMNS = ('aid', 'gid', 'category_id', 'cx', 'cy', 'width', 'height',
                  'img_width', 'img_height')


class MissingNegativePool(AssertionError):
    """A specific negative was asked for before a negative pool was preselected."""


def _row(table, index: int) -> dict:
    return {k: table[k][index].item() for k in table.keys()}


def tabular_coco_targets(dset, arrays=None):
    """All annotations with a valid box as a column table.

    Annotations without a ``bbox`` are skipped; boxes that are NaN, infinite or
    have a negative width / height are skipped with a warning naming them.

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
    aids, gids, cids, xywh = coco_annot_arrays(dset) if arrays is None else arrays
    valid = np.isfinite(xywh).all(axis=1) & (xywh[:, 2] >= 0) & (xywh[:, 3] >= 0)
    if not valid.all():
        warnings.warn(f'{int((~valid).sum())} annotations have invalid boxes (NaN, inf or '
                      f'negative size) and are not targets: aids {aids[~valid][:20].tolist()}')
        aids, gids, cids, xywh = aids[valid], gids[valid], cids[valid], xywh[valid]
    imgs = dset.imgs
    img_wh = np.array([(imgs[g].get('width') or -1, imgs[g].get('height') or -1)
                       for g in np.unique(gids).tolist()], dtype=np.int64).reshape(-1, 2)
    uniq, inverse = np.unique(gids, return_inverse=True)
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
        self._negative_pool = None
        self._negative_idx = 0
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
                  split=None) -> tuple[int, int]:
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

        Returns:
            ``(n_pos, n_neg)`` actually chosen.

        Raises:
            ValueError: both ``n_neg`` and ``neg_to_pos_ratio``, or negative counts.
        """
        import kwarray
        if neg_to_pos_ratio is not None and n_neg is not None:
            raise ValueError(f'give n_neg or neg_to_pos_ratio, not both (got n_neg={n_neg!r}, '
                             f'neg_to_pos_ratio={neg_to_pos_ratio!r})')
        rng = kwarray.ensure_rng(rng)
        n_pos = self._preselect_positives(n_pos, window_dims=window_dims, rng=rng,
                                          verbose=verbose, category_ids=category_ids,
                                          balance=balance, split=split)
        if n_neg is None:
            ratio = 0.0 if neg_to_pos_ratio is None else float(neg_to_pos_ratio)
            if ratio < 0:
                raise ValueError(f'neg_to_pos_ratio must not be negative, got {neg_to_pos_ratio!r}')
            n_neg = int(ratio * n_pos)
        n_neg = self._preselect_negatives(n_neg, window_dims=window_dims, thresh=thresh,
                                          rng=rng, verbose=verbose, split=split)
        return n_pos, n_neg

    def preselect_grid(self, window_dims, window_overlap: float = 0.0, edge: str = 'shift',
                       n_pos: int | None = None, n_neg: int | None = None,
                       neg_to_pos_ratio: float | None = None, rng=None,
                       category_ids: Sequence[int] | None = None, split=None,
                       verbose: int = 0) -> tuple[int, int]:
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
            verbose: print what was chosen.

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
        if neg_to_pos_ratio is not None and n_neg is not None:
            raise ValueError('give n_neg or neg_to_pos_ratio, not both')
        rng = kwarray.ensure_rng(rng)
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
            if split is not None:
                keep = split.keep(gids, ltrb)
                gids, ltrb = gids[keep], ltrb[keep]
            tables.append((gids, ltrb))

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

        (pg, pl), (ng, nl) = tables
        pos = choose(len(pg), n_pos, repeat=True)
        if n_neg is None:
            ratio = 0.0 if neg_to_pos_ratio is None else float(neg_to_pos_ratio)
            if ratio < 0:
                raise ValueError(f'neg_to_pos_ratio must not be negative, got {neg_to_pos_ratio!r}')
            n_neg = min(int(ratio * len(pos)), len(ng))
        neg = choose(len(ng), n_neg, repeat=False)
        self._pos_select_idxs = None
        self._pos_windows = self._window_table(pg[pos], pl[pos], -1)
        self._negative_pool = self._window_table(ng[neg], nl[neg], self.BACKGROUND_CLASS_ID)
        self._negative_idx = 0
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
                    warnings.warn(f'{int((~ok).sum())} zero-size annotations are left out of '
                                  f'the positive pool because window_dims is {window_dims!r}')
                rows = rows[ok]
        if split is not None:
            ltrb, _ = window_boxes(np.asarray(t['cx'])[rows], np.asarray(t['cy'])[rows],
                                   np.asarray(t['width'])[rows], np.asarray(t['height'])[rows],
                                   window_dims)
            rows = rows[split.keep(np.asarray(t['gid'])[rows], ltrb)]
        return rows

    def _preselect_positives(self, num=None, window_dims=None, rng=None, verbose=None,
                             category_ids=None, balance=None, split=None) -> int:
        import kwarray
        from sampler_core.balance import balanced_choice, coerce_balance
        rng = kwarray.ensure_rng(rng)
        balance = coerce_balance(balance)
        self._pos_windows = None
        rows = self.positive_candidates(window_dims, category_ids, split)
        if balance is not None:
            num = len(rows) if num is None else int(num)
            if num < 0:
                raise ValueError(f'n_pos must not be negative, got {num}')
            if len(rows) == 0 and num > 0:
                raise ValueError('the dataset has no positive targets to choose from')
            cids = np.asarray(self.targets['category_id'])[rows]
            rows = balanced_choice(rows, cids, num, balance, rng)
        elif num is not None:
            num = int(num)
            if num < 0:
                raise ValueError(f'n_pos must not be negative, got {num}')
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

    def _preselect_negatives(self, num, window_dims=None, thresh: float = 0.0, rng=None,
                             verbose=None, split=None) -> int:
        num = int(num)
        if num < 0:
            raise ValueError(f'n_neg must not be negative, got {num}')
        if window_dims == 'square':     # sizes like the positives' square windows
            kw = {'anchors': np.repeat(self.neg_anchors.max(axis=1, keepdims=True), 2, axis=1)}
        elif window_dims is not None:
            wh, ww = coerce_window_dims(window_dims)
            kw = {'window_size': (ww, wh)}
        else:
            kw = {'anchors': self.neg_anchors}
        if split is not None:
            gids, boxes = split.random_negatives(self.isect_index, num, thresh=thresh, rng=rng,
                                                 **kw)
        else:
            gids, boxes = self.isect_index.random_negatives(
                num, thresh=thresh, exact='warn', rng=rng, **kw)
        self._negative_pool = self._window_table(
            gids, boxes.to_ltrb().data.reshape(-1, 4), self.BACKGROUND_CLASS_ID)
        self._negative_idx = 0
        if verbose:
            print(f'Preselected {len(gids)} negatives')
        return len(gids)

    def get_positive(self, index: int | None = None, rng=None) -> dict:
        """The ``index``-th positive of the pool, or a random one when ``None``.

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
        if self._pos_select_idxs is not None:
            index = int(self._pos_select_idxs[index])
        return _row(self.targets, index)

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
        if self._negative_pool is None:
            neg = {k: np.empty(0, dtype=pos[k].dtype) for k in TARGET_COLUMNS}
        else:
            neg = {k: np.asarray(v) for k, v in self._negative_pool.items()}
        return pos, neg

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
