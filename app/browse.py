"""The explorer's image grid: every image of the dataset as a thumbnail with its
annotations drawn, sorted, filtered and paged; a click opens the image in the overview.

What a change costs does not grow with Python loops over the images: the per-image facts
(names, annotation counts, which image each annotation belongs to and its category) are
numpy arrays built once per dataset (:class:`BrowseFacts`), a sort / filter is a few
vectorised numpy operations over them (:func:`grid_order`), and a page reads and draws only
its own images (:func:`thumbnail`), on the explorer's worker threads, cached per
``(dataset, gid, size)`` in a bounded LRU (:data:`THUMBNAILS`).

Thumbnails are in image pixels divided by the read stride (``x`` right, ``y`` down),
letterboxed into a ``size`` x ``size`` square.

Example:
    >>> from app.state import ExplorerState
    >>> from app.browse import BrowseFacts, grid_page, thumbnail
    >>> state = ExplorerState(dataset='shapes8', n_pos=4, backend=None)
    >>> facts = BrowseFacts.of(state.shared)
    >>> gids, total = grid_page(facts, state.pools, sort='annotations', descending=True,
    ...                         page=0, per_page=3)
    >>> total, len(gids)
    (8, 3)
    >>> counts = [len(state.shared.dset.index.gid_to_aids[g]) for g in gids]
    >>> counts == sorted(counts, reverse=True)
    True
    >>> thumbnail(state.sampler, int(gids[0]), size=64).shape
    (64, 64, 3)
"""
from __future__ import annotations

import io
import threading
import weakref
from collections import OrderedDict

import numpy as np
import param

from app.colors import category_colors
from app.text import text_options

#: side of a grid thumbnail, pixels
THUMB_PX = 128
#: sort keys of the grid
SORT_KEYS = ('name', 'id', 'annotations', 'windows')
#: page sizes offered
PAGE_SIZES = (24, 48)


# ---------------------------------------------------------------- facts and queries
class BrowseFacts:
    """Per-image arrays of one dataset, in dataset order (built once, shared by sessions).

    Attributes:
        gids: ``(n,)`` int64 image ids.
        names: ``(n,)`` object, the image names of the image list
            (:func:`app.pools.build_image_table`).
        n_annots: ``(n,)`` int64 annotations per image (``numpy.bincount``).
        ann_image: ``(m,)`` int64 row in ``gids`` of each annotation's image.
        ann_cid: ``(m,)`` int64 category id of each annotation.
        name_rank: ``(n,)`` int64 rank of each image's name in sorted order (equal
            names, equal ranks).
    """

    def __init__(self, dset, names):
        gids = np.fromiter(dset.imgs.keys(), dtype=np.int64, count=len(dset.imgs))
        self.gids = gids
        self.names = np.asarray(names, dtype=object)
        if len(self.names) != len(gids):
            raise ValueError(f'{len(self.names)} names for {len(gids)} images')
        anns = dset.dataset.get('annotations') or []
        img_ids = np.fromiter((a.get('image_id', -1) for a in anns), dtype=np.int64,
                              count=len(anns))
        cids = np.fromiter((a.get('category_id', -1) if a.get('category_id') is not None else -1
                            for a in anns), dtype=np.int64, count=len(anns))
        self._sorter = np.argsort(gids, kind='stable')
        rows = self.rows_of(img_ids)
        known = rows >= 0                       # annotations of an image the dataset has
        self.ann_image, self.ann_cid = rows[known], cids[known]
        self.n_annots = np.bincount(self.ann_image, minlength=len(gids)).astype(np.int64)
        # equal names get equal ranks (ties keep dataset order in both directions)
        self.name_rank = np.unique(self.names.astype(str), return_inverse=True)[1].astype(
            np.int64).ravel()
        self._orders: OrderedDict = OrderedDict()   # query key -> ordered rows (a few kept)
        self._lock = threading.Lock()

    _CACHE = weakref.WeakKeyDictionary()
    _CACHE_LOCK = threading.Lock()

    @classmethod
    def of(cls, shared) -> BrowseFacts:
        """The facts of an :class:`app.pools.SharedDataset` (built on first use, then kept
        as long as the shared dataset lives)."""
        with cls._CACHE_LOCK:
            facts = cls._CACHE.get(shared)
        if facts is None:
            facts = cls(shared.dset, shared.image_table['name'].to_numpy())
            with cls._CACHE_LOCK:
                facts = cls._CACHE.setdefault(shared, facts)
        return facts

    def __len__(self) -> int:
        return len(self.gids)

    def rows_of(self, gids) -> np.ndarray:
        """Row in :attr:`gids` of each id of ``gids`` (-1 for an id the dataset lacks)."""
        gids = np.asarray(gids, dtype=np.int64).ravel()
        if not len(self.gids):
            return np.full(len(gids), -1, dtype=np.int64)
        pos = np.searchsorted(self.gids, gids, sorter=self._sorter)
        pos = np.minimum(pos, len(self.gids) - 1)
        rows = self._sorter[pos]
        return np.where(self.gids[rows] == gids, rows, -1)

    def pool_counts(self, pools) -> tuple[np.ndarray, np.ndarray]:
        """``(positives, negatives)``: ``(n,)`` pool windows of each image."""
        out = []
        for table in (pools.pos, pools.neg):
            rows = self.rows_of(table['gid'].to_numpy())
            out.append(np.bincount(rows[rows >= 0], minlength=len(self.gids)))
        return out[0], out[1]


def grid_order(facts: BrowseFacts, pools=None, sort: str = 'id', descending: bool = False,
               categories=(), min_annots: int = 0, max_annots: int | None = None,
               has_pos: bool = False, has_neg: bool = False, dset=None) -> np.ndarray:
    """Image ids of the grid, filtered and sorted (vectorised over the dataset's arrays).

    Args:
        facts: the dataset's :class:`BrowseFacts`.
        pools: the session's :class:`app.pools.Pools` (for ``sort='windows'``,
            ``has_pos``, ``has_neg``).
        sort: one of :data:`SORT_KEYS`: image name, id, number of annotations, number of
            pool windows (positives + negatives) in the image.
        descending: largest first. Ties keep dataset order either way.
        categories: category names; an image passes when one of its annotations is of one
            of them (empty: no filter). Needs ``dset``.
        min_annots, max_annots: inclusive range of the image's annotation count
            (``None``: no upper bound).
        has_pos, has_neg: only images with a positive / negative window in ``pools``.
        dset: the ``kwcoco.CocoDataset`` (to look category names up).

    Returns:
        ``(k,)`` int64 image ids, in grid order.

    Raises:
        ValueError: an unknown ``sort``, or a pool-based sort / filter without ``pools``.
        KeyError: a category name the dataset does not have.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f'sort must be one of {SORT_KEYS}, got {sort!r}')
    needs_pools = sort == 'windows' or has_pos or has_neg
    if needs_pools and pools is None:
        raise ValueError(f'sort={sort!r} / has_pos / has_neg need the pools')
    key = (sort, bool(descending), tuple(categories), int(min_annots),
           None if max_annots is None else int(max_annots), bool(has_pos), bool(has_neg),
           id(pools) if needs_pools else None)
    with facts._lock:
        hit = facts._orders.get(key)
        if hit is not None and (not needs_pools or hit[0]() is pools):
            facts._orders.move_to_end(key)
            return hit[1]
    mask = (facts.n_annots >= min_annots)
    if max_annots is not None:
        mask &= facts.n_annots <= max_annots
    if categories:
        if dset is None:
            raise ValueError('a category filter needs the dataset')
        missing = [c for c in categories if c not in dset.name_to_cat]
        if missing:
            raise KeyError(f'unknown categories {missing}')
        cids = np.array([dset.name_to_cat[c]['id'] for c in categories], dtype=np.int64)
        has_cat = np.zeros(len(facts), dtype=bool)
        has_cat[facts.ann_image[np.isin(facts.ann_cid, cids)]] = True
        mask &= has_cat
    if needs_pools:
        n_pos, n_neg = facts.pool_counts(pools)
        if has_pos:
            mask &= n_pos > 0
        if has_neg:
            mask &= n_neg > 0
    rows = np.flatnonzero(mask)
    value = {'name': facts.name_rank, 'id': facts.gids, 'annotations': facts.n_annots,
             'windows': (n_pos + n_neg) if sort == 'windows' else None}[sort][rows]
    order = rows[np.lexsort((rows, -value if descending else value))]
    gids = facts.gids[order]
    gids.flags.writeable = False
    with facts._lock:
        facts._orders[key] = ((lambda: pools) if not needs_pools else weakref.ref(pools), gids)
        while len(facts._orders) > 8:
            facts._orders.popitem(last=False)
    return gids


def grid_page(facts: BrowseFacts, pools=None, page: int = 0, per_page: int = 24,
              **query) -> tuple[np.ndarray, int]:
    """One page of :func:`grid_order`: ``(gids of the page, number of images that match)``.

    A page past the last gives the last page (an empty list when nothing matches).

    Raises:
        ValueError: ``per_page < 1`` or ``page < 0`` (and see :func:`grid_order`).
    """
    if per_page < 1 or page < 0:
        raise ValueError(f'page must be >= 0 and per_page >= 1, got page={page}, '
                         f'per_page={per_page}')
    gids = grid_order(facts, pools, **query)
    last = max(0, (len(gids) - 1) // per_page)
    page = min(page, last)
    return gids[page * per_page:(page + 1) * per_page], len(gids)


# ---------------------------------------------------------------- thumbnails
def thumbnail(sampler, gid: int, size: int = THUMB_PX, colors: dict | None = None,
              thickness: int = 1) -> np.ndarray:
    """Image ``gid`` with its annotations' boxes and polygons drawn, ``(size, size, 3)`` uint8.

    The image is read with a stride (:func:`app.views.image_region`: at most ``size`` px a
    side, so a large image costs about ``size ** 2`` pixels), its annotations drawn at that
    resolution in their category's colour (``colors``: ``{cid: '#rrggbb'}``, white
    otherwise), then letterboxed into the square (kwimage, black borders). An annotation
    whose geometry cannot be read is left out.
    """
    import kwimage

    from app import views
    rgb, (x0, y0, _, _), step = views.image_region(sampler, gid, max_px=size)
    im = rgb.copy()
    dset = sampler.dset
    colors = colors or {}
    for aid in dset.index.gid_to_aids.get(gid, ()):
        ann = dset.anns[aid]
        color = kwimage.Color(colors.get(ann.get('category_id'), '#ffffff')).as255()
        try:
            x, y, w, h = (float(v) for v in ann['bbox'])
            box = kwimage.Boxes(np.array([[(x - x0) / step, (y - y0) / step,
                                           w / step, h / step]]), 'xywh')
            if not np.isfinite(box.data).all():
                continue
            im = box.draw_on(im, color=color, thickness=thickness)
            for ring in views._polygons_xy(ann.get('segmentation'), views.image_dims(dset, gid)):
                poly = kwimage.Polygon(exterior=(ring - [x0, y0]) / step)
                im = poly.draw_on(im, color=color, fill=False, border=True)
        except (KeyError, TypeError, ValueError, IndexError):
            continue
    im = kwimage.ensure_uint255(np.asarray(im)[:, :, :3])
    out = kwimage.imresize(im, dsize=(size, size), letterbox=True, interpolation='nearest')
    return np.ascontiguousarray(kwimage.ensure_uint255(out[:, :, :3]))


def encode_jpeg(arr: np.ndarray, quality: int = 88) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 array (a grid page of 48 is ~0.3 MB)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format='JPEG', quality=quality)
    return buf.getvalue()


class ThumbnailCache:
    """A thread-safe LRU of encoded thumbnails keyed by ``(dataset, gid, size, colours)``.

    A dataset is the :class:`app.pools.SharedDataset` object itself (held weakly): a
    dataset file changed on disk is a new one. A value is the JPEG bytes or, for an image
    that cannot be read, the error text (so it is not read again on every page).

    Args:
        max_items: thumbnails kept (the least recently used go first).
    """

    def __init__(self, max_items: int = 4096):
        if max_items < 1:
            raise ValueError(f'max_items must be >= 1, got {max_items}')
        self.max_items = max_items
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(shared, gid: int, size: int, colors: dict | None) -> tuple:
        return (id(shared), int(gid), int(size), hash(tuple(sorted((colors or {}).items()))))

    def get(self, shared, gid: int, size: int, colors: dict | None):
        """The cached value, or None."""
        key = self.key(shared, gid, size, colors)
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0]() is not shared:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, shared, gid: int, size: int, colors: dict | None, value) -> None:
        key = self.key(shared, gid, size, colors)
        with self._lock:
            self._items[key] = (weakref.ref(shared), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


#: the server's thumbnails, shared by every session
THUMBNAILS = ThumbnailCache()


def make_thumbnails(sampler, shared, gids, size: int = THUMB_PX, colors: dict | None = None,
                    cache: ThumbnailCache = THUMBNAILS) -> int:
    """Draw, encode and cache the thumbnails of ``gids`` not cached yet; return how many
    were made. An image that cannot be read is cached as its error text."""
    made = 0
    for gid in gids:
        if cache.get(shared, gid, size, colors) is not None:
            continue
        try:
            value = encode_jpeg(thumbnail(sampler, int(gid), size, colors))
        except Exception as ex:   # an unreadable image: say so in its slot, keep the others
            value = f'image {gid} unreadable: {ex}'
        cache.put(shared, gid, size, colors, value)
        made += 1
    return made


# ---------------------------------------------------------------- the view
class GridQuery(param.Parameterized):
    """What the grid shows: sort, filters and page (UI state of one session)."""

    sort = param.Selector(default='id', objects=list(SORT_KEYS), doc='Sort the images by.')
    descending = param.Boolean(default=False, doc='Largest first.')
    categories = param.List(default=[], item_type=str, doc=(
        'Only images with an annotation of one of these categories.'))
    min_annots = param.Integer(default=0, bounds=(0, None), doc='Fewest annotations.')
    max_annots = param.Integer(default=None, allow_None=True, bounds=(0, None), doc=(
        'Most annotations (empty: no limit).'))
    has_pos = param.Boolean(default=False, doc='Only images with a positive window.')
    has_neg = param.Boolean(default=False, doc='Only images with a negative window.')
    page = param.Integer(default=0, bounds=(0, None), doc='Page shown (0-based).')
    per_page = param.Selector(default=PAGE_SIZES[0], objects=list(PAGE_SIZES), doc=(
        'Thumbnails per page.'))

    FILTERS = ('sort', 'descending', 'categories', 'min_annots', 'max_annots', 'has_pos',
               'has_neg', 'per_page')

    def query(self) -> dict:
        """The sort and filter keywords of :func:`grid_order`."""
        return {k: getattr(self, k) for k in self.FILTERS if k != 'per_page'}


class BrowseView:
    """Methods of :class:`app.layout.Explorer` for the grid (a mixin: they use the
    explorer's ``state`` and its update runner)."""

    def _build_browse(self) -> None:
        """The grid's controls and its tiles (:class:`app.tiles.Tiles`, refilled in place)."""
        import panel as pn      # this module's data part is imported before Panel (app.cli)

        from app.tiles import Tiles
        s = self.state
        q = self.grid_query = GridQuery()
        self._grid_job = None
        self._grid_gids = np.empty(0, dtype=np.int64)
        self.grid_sort = pn.widgets.Select.from_param(q.param.sort, label='sort by', width=120)
        self.grid_descending = pn.widgets.Checkbox.from_param(q.param.descending,
                                                              label='descending')
        self.grid_categories = pn.widgets.MultiChoice(
            label='with category', options=text_options(s.category_names), width=220)
        self.grid_categories.link(q, value='categories')
        self.grid_min = pn.widgets.IntInput.from_param(q.param.min_annots, label='annotations ≥',
                                                       width=100)
        self.grid_max = pn.widgets.IntInput.from_param(q.param.max_annots, label='≤ (empty: any)',
                                                       width=100)
        self.grid_has_pos = pn.widgets.Checkbox.from_param(q.param.has_pos,
                                                           label='has positives')
        self.grid_has_neg = pn.widgets.Checkbox.from_param(q.param.has_neg,
                                                           label='has negatives')
        self.grid_per_page = pn.widgets.Select.from_param(q.param.per_page, label='per page',
                                                          width=80)
        self.grid_prev = pn.widgets.Button(label='◀ page', width=80)
        self.grid_next = pn.widgets.Button(label='page ▶', width=80)
        self.grid_prev.on_click(lambda _: self._grid_step(-1))
        self.grid_next.on_click(lambda _: self._grid_step(1))
        self.grid_status = pn.pane.HTML('', css_classes=['grid-status'])
        for attr in ('grid_sort', 'grid_descending', 'grid_categories', 'grid_min', 'grid_max',
                     'grid_has_pos', 'grid_has_neg', 'grid_per_page', 'grid_prev', 'grid_next'):
            widget = getattr(self, attr)
            widget.css_classes = list(widget.css_classes or []) + [f'w-{attr}']
        # the page's thumbnails: one model, the browser draws its tiles (app/tiles.py)
        self.grid_tiles = Tiles(kind='grid', tile_px=THUMB_PX, sizing_mode='stretch_width')
        self.grid_tiles.on_click(self._grid_open)
        self._grid_info = []        # (gid, label, caption, full name) of the page shown
        self._grid_tones = []       # their buttons' tones ('primary': the image open)
        self.grid = pn.Column(
            # rows that wrap: the page never scrolls sideways (usable at 1280x800)
            pn.FlexBox(self.grid_sort, self.grid_descending, self.grid_categories,
                       self.grid_min, self.grid_max,
                       pn.Column(self.grid_has_pos, self.grid_has_neg), self.grid_per_page,
                       sizing_mode='stretch_width'),
            pn.FlexBox(self.grid_prev, self.grid_next, self.grid_status,
                       sizing_mode='stretch_width'),
            self.grid_tiles, sizing_mode='stretch_width', css_classes=['image-grid'])
        q.param.watch(self._on_grid_filter, list(GridQuery.FILTERS))
        q.param.watch(lambda *_: self._update_grid(), ['page'])
        s.param.watch(self._on_grid_pools, ['revision'])
        s.param.watch(lambda *_: self._mark_grid_current(), ['gid'])
        s.param.watch(self._on_grid_dataset, ['dataset_label'])
        self._grid_total = self._grid_first = 0
        if not self._hold:      # built ahead of its page: filled once the page has loaded
            self._update_grid()

    # ------------------------------------------------------------ events
    def _on_grid_filter(self, *events) -> None:
        if self.grid_query.page != 0:
            self.grid_query.page = 0          # updates the grid
        else:
            self._update_grid()

    def _on_grid_pools(self, *events) -> None:
        q = self.grid_query
        if q.sort == 'windows' or q.has_pos or q.has_neg:
            self._update_grid()

    def _on_grid_dataset(self, *events) -> None:
        self.grid_categories.options = text_options(self.state.category_names)
        with param.parameterized.batch_call_watchers(self.grid_query):
            self.grid_query.param.update(categories=[], page=0)
        self._update_grid()

    def _grid_step(self, step: int) -> None:
        q = self.grid_query
        last = max(0, (self._grid_total - 1) // q.per_page)
        q.page = min(last, max(0, q.page + step))

    def _grid_open(self, gid) -> None:
        """A thumbnail was clicked: show its image in the overview (as the image list does)."""
        if gid is not None and int(gid) in self.state.shared.dset.imgs:
            self.state.gid = int(gid)

    # ------------------------------------------------------------ updates
    def _update_grid(self) -> None:
        """Show the page of the current query: the page's images found at once (vectorised
        numpy over the dataset's arrays), thumbnails from the cache, the missing ones drawn
        on a worker thread (in a served session) and shown when ready."""
        if self._released or self._hold:
            return
        s, q = self.state, self.grid_query
        facts = BrowseFacts.of(s.shared)
        try:
            gids, total = grid_page(facts, s.pools, page=q.page, per_page=q.per_page,
                                    dset=s.shared.dset, **q.query())
        except (KeyError, ValueError) as ex:
            s.notify(str(ex.args[0]) if isinstance(ex, KeyError) else str(ex))
            gids, total = np.empty(0, dtype=np.int64), 0
        self._grid_total = total
        page = min(q.page, max(0, (total - 1) // q.per_page))
        self._grid_first = page * q.per_page
        self._grid_gids = gids
        rows = facts.rows_of(gids)
        n_pos = n_neg = None
        if s.pools is not None:
            n_pos, n_neg = facts.pool_counts(s.pools)
        info = []
        for gid, row in zip(gids.tolist(), rows.tolist()):
            full = f'{gid}: {facts.names[row]}'
            label = full if len(full) <= 17 else full[:16] + '…'
            caption = [(f'{facts.n_annots[row]} ann', '')]
            if n_pos is not None:
                caption += [(' · ', ''), (str(n_pos[row]), 'pos'), ('+', ''),
                            (str(n_neg[row]), 'neg'), (' win', '')]
            info.append((gid, label, caption, full))
        self._grid_info = info
        self._fill_grid()

    def _mark_grid_current(self) -> None:
        if any(gid == self.state.gid or tone for (gid, *_), tone in
               zip(self._grid_info, self._grid_tones)):
            self._fill_grid()

    def _thumb_args(self) -> tuple:
        s = self.state
        return s.sampler, s.shared, THUMB_PX, category_colors(s.shared.dset)

    def _fill_grid(self) -> None:
        """Show the page's tiles with the cached thumbnails (one model change); draw the
        missing ones (at once outside a served session, else one job at a time on a worker
        thread: a page left meanwhile is never drawn, the latest one is)."""
        from app.tiles import jpeg_src, tile
        sampler, shared, size, colors = self._thumb_args()
        missing, items, tones = [], [], []
        for gid, label, caption, full in self._grid_info:
            value = THUMBNAILS.get(shared, gid, size, colors)
            tone = 'primary' if gid == self.state.gid else ''
            if value is None:
                missing.append(gid)
            elif not isinstance(value, bytes):      # the image could not be read
                caption = [('unreadable', 'error')]
            items.append(tile(gid, label, caption, jpeg_src(value if isinstance(value, bytes)
                                                            else None), tone, data_gid=gid,
                              title=full))
            tones.append(tone)
        self._grid_tones = tones
        self.grid_tiles.items = items
        shown = len(self._grid_gids) - len(missing)
        q = self.grid_query
        n_pages = max(1, -(-self._grid_total // q.per_page))
        first = self._grid_first + 1 if len(self._grid_gids) else 0
        last = self._grid_first + len(self._grid_gids)
        self.grid_status.object = (
            f'<div class="grid-page" data-page="{self._grid_first // q.per_page}" '
            f'data-ready="{int(not missing)}">page {self._grid_first // q.per_page + 1} of '
            f'{n_pages} · images {first}-{last} of {self._grid_total:,} · '
            f'thumbnails {shown}/{len(self._grid_gids)}</div>')
        if not missing:
            return
        if self._loop is None:
            make_thumbnails(sampler, shared, missing, size, colors)
            self._fill_grid()
            return
        if self._grid_job is not None:
            return                      # when it ends, the latest page is filled
        from app.layout import _executor
        loop, doc = self._loop, self._doc

        def done(_):
            loop.add_callback(lambda: doc.add_next_tick_callback(self._grid_job_done))

        self._grid_job = _executor().submit(make_thumbnails, sampler, shared, missing, size,
                                            colors)
        self._grid_job.add_done_callback(done)

    def _grid_job_done(self) -> None:
        job, self._grid_job = self._grid_job, None
        if self._released:
            return
        try:
            job.result()
        except Exception as ex:  # pragma: no cover - make_thumbnails catches per image
            self.state.notify(f'could not draw the thumbnails: {ex}')
            return
        self._fill_grid()
