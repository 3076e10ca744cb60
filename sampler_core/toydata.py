"""A sampler that draws toy positives / negatives on the fly (no dataset on disk).

:class:`DynamicToySampler` renders each window with kwcoco's toy image generator
(``kwcoco.demo.toydata_image.demodata_toy_img``: star / superstar / eff shapes on
noise). A *positive* has an object centred in the window, a *negative* has no
object at its centre (other objects may be around).

Every item is a pure function of ``(seed, kind, index)``: the same seed gives
the same pixels and annotations for the same index, in any order, in any
process. Calls without an index walk a seeded stream of indices, so a fixed seed
also fixes that sequence. ``seed=None`` picks a random seed once per instance.

Item ``i`` of :meth:`DynamicToySampler.load_item` is positive ``i`` for
``i < n_positives`` and negative ``i - n_positives`` after; its target's ``gid``
is ``i``, so :meth:`DynamicToySampler.load_sample` can redraw it.

Example:
    >>> from sampler_core.toydata import DynamicToySampler
    >>> self = DynamicToySampler(n_positives=10, seed=0, gsize=(96, 96))
    >>> sample = self.load_positive(3, window_dims=(48, 64))
    >>> sample['im'].shape
    (48, 64, 3)
    >>> sample['target']['aid'], int(sample['annots']['aids'][0])
    (1, 1)
    >>> other = DynamicToySampler(n_positives=10, seed=0, gsize=(96, 96))
    >>> again = other.load_positive(3, window_dims=(48, 64))
    >>> bool((again['im'] == sample['im']).all())
    True
"""
from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from sampler_core.sampler import AbstractSampler
from sampler_core.target import coerce_pad, coerce_window_dims

#: stream ids mixed into the per-item seed
_KIND_POS, _KIND_NEG, _KIND_IMAGE = 1, 2, 3

#: number of objects drawn (uniform in [low, high)) for positives / negatives / images
N_ANNOTS_POS = (1, 100)
N_ANNOTS_NEG = (0, 10)
N_ANNOTS_IMAGE = (0, 10)


class DynamicToySampler(AbstractSampler):
    """Generates positive and negative toy windows on the fly.

    Args:
        n_positives: size of the positive pool (float accepted, e.g. ``1e5``).
        seed: int for reproducible items; ``None`` draws one seed per instance.
        gsize: ``(width, height)`` of full images (:meth:`load_image`) and the
            default window (kwcoco's ``image_size`` order).
        categories: category names or a ``kwcoco.demo.toypatterns.CategoryPatterns``
            (default: kwcoco's ``star``, ``superstar``, ``eff``).

    Raises:
        ValueError: a negative ``n_positives`` or a non-positive ``gsize``.

    Example:
        >>> self = DynamicToySampler(n_positives=4, seed=1, gsize=(64, 64))
        >>> self.n_positives, len(self), self.n_categories
        (4, 8, 4)
        >>> neg = self.load_item(5)
        >>> neg['target']['aid'], neg['target']['category_id'], neg['target']['gid']
        (-1, 0, 5)
    """

    def __init__(self, n_positives: float = 1e5, seed: int | None = None,
                 gsize: Sequence[int] = (416, 416), categories: Any = None):
        import kwcoco
        from kwcoco.demo.toypatterns import CategoryPatterns
        n_positives = int(n_positives)
        if n_positives < 0:
            raise ValueError(f'n_positives must not be negative, got {n_positives}')
        gsize = tuple(int(v) for v in gsize)
        if len(gsize) != 2 or min(gsize) <= 0:
            raise ValueError(f'gsize must be a positive (width, height), got {gsize!r}')
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2 ** 32))
        elif not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f'seed must be a non-negative int or None, got {seed!r}')
        self.seed = int(seed)
        self.catpats = CategoryPatterns.coerce(categories)
        self.kp_catnames = list(self.catpats.kp_catnames)
        cats = [{'id': 0, 'name': 'background'}] + [
            {'id': int(cat['id']), 'name': cat['name']} for cat in self.catpats]
        self.cname_to_cid = {cat['name']: cat['id'] for cat in cats}
        self.cid_to_cname = {cid: name for name, cid in self.cname_to_cid.items()}
        self.classes = kwcoco.CategoryTree.from_coco(cats)
        self.kp_classes = kwcoco.CategoryTree.coerce(self.kp_catnames)
        self.BACKGROUND_CLASS_ID = 0
        self._full_imgsize = gsize
        self._n_positives = n_positives
        self._n_negatives = n_positives
        self._window_dims = None
        self._stream = np.random.RandomState(self.seed)
        self._lock = threading.Lock()

    # CategoryPatterns holds lambdas (not picklable): ship its category list instead
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop('_lock', None)
        state['catpats'] = [dict(cat) for cat in self.catpats]
        return state

    def __setstate__(self, state):
        from kwcoco.demo.toypatterns import CategoryPatterns
        self.__dict__.update(state)
        self.catpats = CategoryPatterns.coerce(state['catpats'])
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f'<DynamicToySampler(n_pos={self._n_positives}, n_neg={self._n_negatives}, '
                f'seed={self.seed}, gsize={self._full_imgsize})>')

    def __len__(self) -> int:
        return self._n_positives + self._n_negatives

    # ------------------------------------------------------------ counts
    @property
    def catgraph(self):
        """Deprecated alias of :attr:`classes`."""
        return self.classes

    @property
    def class_ids(self) -> list:
        """Category ids, background (0) first."""
        return list(self.cid_to_cname.keys())

    @property
    def n_positives(self) -> int:
        return self._n_positives

    @property
    def n_negatives(self) -> int:
        return self._n_negatives

    @property
    def n_samples(self) -> int:
        return len(self)

    @property
    def n_annots(self) -> int:
        """Number of target annotations: one centred object per positive."""
        return self._n_positives

    @property
    def n_images(self) -> int:
        """Number of distinct items (every window is its own generated image)."""
        return len(self)

    @property
    def n_categories(self) -> int:
        """Object categories plus background."""
        return len(self.catpats) + 1

    @property
    def image_ids(self) -> list:
        return list(range(self.n_images))

    def lookup_class_name(self, class_id) -> str:
        return self.cid_to_cname[class_id]

    def lookup_class_id(self, class_name) -> int:
        return self.cname_to_cid[class_name]

    def preselect(self, n_pos: int | None = None, n_neg: int | None = None,
                  neg_to_pos_ratio: float | None = None, window_dims=None, rng=None,
                  verbose: int = 0) -> tuple[int, int]:
        """Set the pool sizes (nothing is drawn ahead: items are generated on demand).

        Args:
            n_pos: positives (default: unchanged).
            n_neg: negatives; exclusive with ``neg_to_pos_ratio``
                (default: as many as positives).
            neg_to_pos_ratio: ``n_neg = int(ratio * n_pos)``.
            window_dims: default ``(h, w)`` of loaded windows.
            rng: unused (items depend on the seed only).
            verbose: print the sizes.

        Returns:
            ``(n_pos, n_neg)``.

        Example:
            >>> self = DynamicToySampler(10, seed=0)
            >>> self.preselect(n_pos=6, neg_to_pos_ratio=0.5), len(self)
            ((6, 3), 9)
        """
        if n_neg is not None and neg_to_pos_ratio is not None:
            raise ValueError('give n_neg or neg_to_pos_ratio, not both')
        if n_pos is not None:
            if int(n_pos) < 0:
                raise ValueError(f'n_pos must not be negative, got {n_pos}')
            self._n_positives = int(n_pos)
        if n_neg is None:
            n_neg = self._n_positives if neg_to_pos_ratio is None \
                else int(float(neg_to_pos_ratio) * self._n_positives)
        if int(n_neg) < 0:
            raise ValueError(f'n_neg must not be negative, got {n_neg}')
        self._n_negatives = int(n_neg)
        if window_dims is not None:
            self._window_dims = coerce_window_dims(window_dims)
        if verbose:
            print(f'dynamic pools: {self._n_positives} positives, {self._n_negatives} negatives')
        return self._n_positives, self._n_negatives

    # ------------------------------------------------------------ rendering
    def _item_rng(self, kind: int, index: int) -> np.random.RandomState:
        return np.random.RandomState([self.seed, kind, int(index) % (2 ** 32)])

    def _render(self, kind: int, index: int, image_size, centerobj, n_annots):
        from kwcoco.demo.toydata_image import demodata_toy_img
        rng = self._item_rng(kind, index)
        with self._lock:  # the patterns object carries an rng of its own
            self.catpats.rng = rng
            img, anns = demodata_toy_img(image_size=tuple(int(v) for v in image_size), rng=rng,
                                         categories=self.catpats, gray=True,
                                         centerobj=centerobj, n_annots=n_annots)
        return img, anns

    def _pick(self, index, rng, n: int, what: str) -> int:
        if index is None:
            if n <= 0:
                raise IndexError(f'the {what} pool is empty')
            source = self._stream if rng is None else _ensure_rng(rng)
            return int(source.randint(0, n))
        index = int(index)
        if not (0 <= index < n):
            raise IndexError(f'{what} index {index} outside the pool of {n}')
        return index

    def _load_toy_sample(self, kind: int, index: int, window_dims, pad) -> dict:
        import kwimage
        if window_dims is None:
            window_dims = self._window_dims or (self._full_imgsize[1], self._full_imgsize[0])
        wh, ww = coerce_window_dims(window_dims)
        (pt, pb), (pl, pr) = coerce_pad(pad)
        full_h, full_w = wh + pt + pb, ww + pl + pr
        positive = kind == _KIND_POS
        img, anns = self._render(kind, index, (full_w, full_h), 'pos' if positive else 'neg',
                                 N_ANNOTS_POS if positive else N_ANNOTS_NEG)
        im = img['imdata']
        if im.ndim == 2:
            im = im[:, :, None]
        cids = np.array([self.cname_to_cid[str(a['category_name'])] for a in anns], dtype=np.int64)
        xywh = np.array([a['bbox'] for a in anns], dtype=np.float64).reshape(-1, 4)
        boxes = kwimage.Boxes(xywh, 'xywh')
        ssegs = kwimage.PolygonList([_sseg(a, (full_h, full_w)) for a in anns])
        kpts = kwimage.PointsList([_kpts(a, self.kp_catnames) for a in anns])
        kpts.meta['classes'] = self.kp_catnames
        aids = np.arange(1, len(anns) + 1, dtype=np.int64)
        item = index if positive else self._n_positives + index
        rel_cx, rel_cy = pl + ww / 2.0, pt + wh / 2.0
        if positive:
            cx, cy = boxes.to_cxywh().data[0, :2].tolist()
            rel_cx, rel_cy = float(cx), float(cy)
        target = {
            'gid': item,
            'aid': 1 if positive else -1,
            'category_id': int(cids[0]) if positive else self.BACKGROUND_CLASS_ID,
            'cx': rel_cx, 'cy': rel_cy, 'rel_cx': rel_cx, 'rel_cy': rel_cy,
            'width': ww, 'height': wh,
            'window_dims': (wh, ww),
            'pad': ((pt, pb), (pl, pr)),
            'annot_idx': 0 if positive else -1,
        }
        dets = kwimage.Detections(boxes=boxes, segmentations=ssegs, keypoints=kpts,
                                  aids=aids, cids=cids, classes=self.classes,
                                  datakeys=['aids', 'cids'], checks=False)
        dets.meta['gid'] = item
        dets.meta['rel_frame_index'] = 0
        annots = {
            'aids': aids,
            'cids': cids,
            'rel_cxywh': boxes.to_cxywh().data,
            'rel_boxes': boxes,
            'rel_ssegs': ssegs,
            'rel_kpts': kpts,
            'rel_frame_index': np.zeros(len(aids), dtype=np.int64),
            'frame_dets': [dets],
        }
        params = {
            'offset': np.array([0, 0]),
            'tf_rel_to_abs': np.eye(3),
            'sample_tlbr': kwimage.Boxes(np.array([0, 0, full_w, full_h]), 'ltrb'),
            'data_dims': (full_h, full_w),
        }
        return {'im': im, 'target': target, 'tr': target, 'annots': annots, 'params': params,
                'classes': self.classes, 'kp_classes': self.kp_classes}

    # ------------------------------------------------------------ loading
    def load_positive(self, index: int | None = None, pad=None, window_dims=None, rng=None) -> dict:
        """A window with an object at its centre.

        Args:
            index: position in the positive pool; ``None`` draws one from the
                seeded stream (or from ``rng``).
            pad: ``(ph, pw)`` extra context on each side.
            window_dims: ``(h, w)``; default :meth:`preselect`'s or ``gsize``.
            rng: seed / RandomState used to draw ``index`` when it is ``None``.

        Returns:
            ``{'im', 'target', 'annots', 'params', ...}``; ``im`` is
            ``(h + 2 ph, w + 2 pw, 3)`` uint8; ``annots`` has ``aids``,
            ``cids``, ``rel_cxywh`` ``(N, 4)``, ``rel_boxes``, ``rel_ssegs``,
            ``rel_kpts``, ``frame_dets``; the centred object is the first.

        Example:
            >>> self = DynamicToySampler(1e2, seed=0, gsize=(64, 64))
            >>> sample = self.load_positive()
            >>> annots = sample['annots']
            >>> len(annots['aids']) > 0 and len(annots['rel_cxywh']) == len(annots['aids'])
            True
            >>> cx, cy = annots['rel_cxywh'][0, :2]
            >>> bool(abs(cx - 32) <= 1 and abs(cy - 32) <= 1)
            True
        """
        index = self._pick(index, rng, self._n_positives, 'positive')
        return self._load_toy_sample(_KIND_POS, index, window_dims, pad)

    def load_negative(self, index: int | None = None, pad=None, window_dims=None, rng=None) -> dict:
        """A window with no object at its centre. See :meth:`load_positive`.

        Example:
            >>> self = DynamicToySampler(5, seed=0, gsize=(64, 64))
            >>> sample = self.load_negative(2)
            >>> sample['target']['aid'], sample['target']['gid']
            (-1, 7)
        """
        index = self._pick(index, rng, self._n_negatives, 'negative')
        return self._load_toy_sample(_KIND_NEG, index, window_dims, pad)

    def load_item(self, index: int, pad=None, window_dims=None) -> dict:
        """Item ``index``: positives first, then negatives.

        Raises:
            IndexError: ``index`` outside ``[0, len(self))``.
        """
        index = int(index)
        if not (0 <= index < len(self)):
            raise IndexError(f'item index {index} outside [0, {len(self)})')
        if index < self._n_positives:
            return self.load_positive(index, pad=pad, window_dims=window_dims)
        return self.load_negative(index - self._n_positives, pad=pad, window_dims=window_dims)

    def load_sample(self, tr: dict, pad=None, window_dims=None, visible_thresh=None) -> dict:
        """Redraw the item a target came from (its ``gid`` is the item index).

        Args:
            tr: a target returned by this sampler (``gid``, optional ``window_dims``, ``pad``).
            pad, window_dims: override the target's.
            visible_thresh: unused (kept for the sampler API).

        Example:
            >>> self = DynamicToySampler(5, seed=0, gsize=(48, 48))
            >>> sample = self.load_item(6)
            >>> again = self.load_sample(sample['target'])
            >>> bool((again['im'] == sample['im']).all())
            True
        """
        if not isinstance(tr, dict) or 'gid' not in tr:
            raise TypeError(f'expected a target dict with a gid (the item index), got {tr!r}')
        pad = tr.get('pad') if pad is None else pad
        window_dims = tr.get('window_dims') if window_dims is None else window_dims
        return self.load_item(tr['gid'], pad=pad, window_dims=window_dims)

    def load_image(self, image_id: int | None = None, rng=None) -> np.ndarray:
        """A full ``gsize`` toy image ``(H, W, 3)``; see :meth:`load_image_with_annots`."""
        img, _ = self.load_image_with_annots(image_id, rng=rng)
        return img['imdata']

    def load_image_with_annots(self, image_id: int | None = None, rng=None):
        """A full ``gsize`` toy image and its kwcoco-style annotations.

        Args:
            image_id: in ``[0, n_images)``; ``None`` draws one from the seeded
                stream (or ``rng``).
            rng: seed / RandomState for drawing ``image_id``.

        Returns:
            ``(img, anns)``: ``img`` has ``id``, ``width``, ``height``,
            ``imdata``; each annotation ``id``, ``image_id``, ``category_id``,
            ``bbox`` (xywh), ``segmentation``, ``keypoints``.

        Example:
            >>> self = DynamicToySampler(3, seed=0, gsize=(80, 60))
            >>> img, anns = self.load_image_with_annots(2)
            >>> img['id'], img['imdata'].shape
            (2, (60, 80, 3))
            >>> all(ann['image_id'] == 2 for ann in anns)
            True
        """
        image_id = self._pick(image_id, rng, self.n_images, 'image')
        img, anns = self._render(_KIND_IMAGE, image_id, self._full_imgsize, None, N_ANNOTS_IMAGE)
        img = dict(img)
        img['id'] = image_id
        img['file_name'] = None
        img['width'], img['height'] = self._full_imgsize
        out = []
        for k, ann in enumerate(anns, start=1):
            ann = dict(ann)
            ann['category_name'] = str(ann['category_name'])
            ann['id'] = k
            ann['image_id'] = image_id
            ann['category_id'] = self.cname_to_cid[ann['category_name']]
            out.append(ann)
        return img, out


def _ensure_rng(rng):
    import kwarray
    return kwarray.ensure_rng(rng)


def _sseg(ann, dims):
    import kwimage
    sseg = ann.get('segmentation', None)
    if sseg is None:
        return None
    if isinstance(sseg, dict) and 'counts' in sseg:
        return kwimage.Mask.coerce(sseg, dims=dims).to_multi_polygon()
    return kwimage.MultiPolygon.coerce(sseg, dims=dims)


def _kpts(ann, kp_catnames):
    import kwimage
    kpts = ann.get('keypoints', None)
    if not kpts:
        return None
    return kwimage.Points.from_coco(kpts, classes=kp_catnames)
