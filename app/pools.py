"""Shared samplers and per-session pools.

One :class:`sampler_core.CocoSampler` per dataset (and pixel backend) is shared
by every browser session of a server process (:class:`SharedDataset`, kept in
a module-level cache keyed by the dataset's real path or demo key). It is
*read-only* after it is built: its spatial index, target table, annotation
geometry cache and frame cache are shared.

The pools (``regions.preselect``) are mutable state on a sampler, so each
session samples through its own :func:`session_sampler`, a
:meth:`sampler_core.CocoSampler.fork` of the shared sampler: its pools are its
own, while the lazily built tables (targets, index, negative anchors), built on
the shared sampler before it is forked, are the same objects in every session.

Example:
    >>> from app.pools import get_shared, session_sampler, compute_pools
    >>> from sampler_core import SamplingConfig
    >>> shared = get_shared('shapes8', backend=None)
    >>> a, b = session_sampler(shared.sampler), session_sampler(shared.sampler)
    >>> pa = compute_pools(a, SamplingConfig(dataset='shapes8', n_pos=3, n_neg=2, backend=None))
    >>> pb = compute_pools(b, SamplingConfig(dataset='shapes8', n_pos=5, n_neg=0, backend=None))
    >>> (a.regions.n_positives, b.regions.n_positives, shared.sampler.regions.n_positives > 5)
    (3, 5, True)
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np

from app.demo import is_demo_key, load_demo
from app.roots import check_dataset_files

#: columns of a pool table (window corners are image pixels, ltrb, without pad)
POOL_COLUMNS = ('index', 'kind', 'aid', 'gid', 'category_id', 'cx', 'cy', 'width', 'height',
                'x0', 'y0', 'x1', 'y1')


def user_messages(caught) -> list[str]:
    """The texts of recorded warnings a user should read (not library deprecations)."""
    return [str(w.message) for w in caught
            if not issubclass(w.category, (DeprecationWarning, FutureWarning))]


class SharedDataset:
    """A dataset and its read-only sampler, shared between sessions.

    Attributes:
        key: the cache key (real path, demo key or ``obj:<id>``).
        label: the dataset as the config names it (path or demo key).
        sampler: the shared :class:`sampler_core.CocoSampler` (never preselect it).
    """

    def __init__(self, key: str, label: str, sampler):
        self.key = key
        self.label = label
        self.sampler = sampler
        self._image_table = None
        self._hash = None
        self._lock = threading.Lock()
        self._roots_checked: set = set()     # root lists whose check passed
        regions = sampler.regions
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            regions.targets  # build the lazy tables once, before any session copies them
            regions.isect_index
            regions.neg_anchors
        #: what the library said of the data while building its tables (annotations left
        #: out of the pools, ...): every session opening the dataset shows it once
        self.data_warnings = list(dict.fromkeys(user_messages(caught)))

    @property
    def dset(self):
        return self.sampler.dset

    def check_files_inside(self, roots) -> None:
        """:func:`app.roots.check_dataset_files` of this dataset, once: a list of roots
        holding every root of one that passed passes too (every session opening the dataset
        asks, with the server's upload folder added; resolving the paths of 100,000 images
        takes seconds). A refusal is not remembered: it raises every time.

        Raises:
            PermissionError: an image file outside ``roots`` (named).
        """
        key = frozenset(roots)
        with self._lock:
            if any(passed <= key for passed in self._roots_checked):
                return
        check_dataset_files(self.dset, roots)
        with self._lock:
            self._roots_checked.add(key)

    @property
    def dataset_hash(self) -> str:
        """Content hash of the annotations (computed once, on first export)."""
        with self._lock:
            if self._hash is None:
                from sampler_core.config import dataset_hash
                self._hash = dataset_hash(self.dset)
            return self._hash

    @property
    def image_table(self):
        """``pandas.DataFrame`` of every image: gid, name, n_annots, n_cats, cids (a set)."""
        with self._lock:
            if self._image_table is None:
                self._image_table = build_image_table(self.dset)
            return self._image_table


def build_image_table(dset):
    """One row per image: ``gid``, ``name``, ``n_annots``, ``n_cats``, ``cids``, ``label``."""
    import pandas as pd
    anns = dset.anns
    rows = []
    for gid, img in dset.imgs.items():
        aids = dset.index.gid_to_aids.get(gid, ())
        cids = frozenset(anns[a]['category_id'] for a in aids)
        name = img.get('name') or os.path.basename(img.get('file_name') or f'image {gid}')
        rows.append((gid, name, len(aids), len(cids), cids))
    table = pd.DataFrame(rows, columns=['gid', 'name', 'n_annots', 'n_cats', 'cids'])
    table['label'] = [f'{g}: {n} · {a} annots · {c} cats' for g, n, a, c in zip(
        table['gid'], table['name'], table['n_annots'], table['n_cats'])]
    return table


def filter_images(table, search: str = '', categories=(), dset=None):
    """Rows of an image table whose name / id contains ``search`` and that have
    an annotation of one of ``categories`` (names; empty: no filter)."""
    out = table
    search = (search or '').strip().lower()
    if search:
        hit = out['name'].str.lower().str.contains(search, regex=False) | \
            out['gid'].astype(str).eq(search)
        out = out[hit]
    if categories and dset is not None:
        want = {dset.name_to_cat[c]['id'] for c in categories if c in dset.name_to_cat}
        out = out[[bool(c & want) for c in out['cids']]]
    return out


#: (key, file stamp, backend, workdir) -> SharedDataset
_CACHE: dict[tuple, SharedDataset] = {}
_CACHE_LOCK = threading.Lock()


def dataset_key(dataset) -> tuple[str, str]:
    """``(cache key, label)`` of a dataset given as a demo key, path or CocoDataset."""
    import kwcoco
    if isinstance(dataset, kwcoco.CocoDataset):
        fpath = getattr(dataset, 'fpath', None)
        label = os.fspath(fpath) if fpath and os.path.exists(fpath) else 'in-memory'
        return f'obj:{id(dataset)}', label
    text = os.fspath(dataset)
    if is_demo_key(text):
        return f'demo:{text}', text
    real = os.path.realpath(os.path.expanduser(text))
    return real, text


def get_shared(dataset, backend=None, workdir=None) -> SharedDataset:
    """The shared sampler of ``dataset`` (built on first use, then cached).

    A dataset file is keyed by its real path, modification time and size, so
    a file changed on disk (or uploaded again) is read again.

    Args:
        dataset: a demo key, a ``.kwcoco.json`` path (check it with
            :func:`app.roots.check_path` first) or a ``kwcoco.CocoDataset``.
        backend: pixel backend of the sampler (``None`` or ``'npy'``).
        workdir: frame cache folder.

    Raises:
        FileNotFoundError, ValueError, KeyError: the dataset cannot be read.
    """
    key, label = dataset_key(dataset)
    stamp = None
    if os.path.isabs(key) and os.path.isfile(key):   # a file: a changed file is a new dataset
        st = os.stat(key)
        stamp = (st.st_mtime_ns, st.st_size)
    ckey = (key, stamp, backend, None if workdir is None else os.fspath(workdir))
    with _CACHE_LOCK:
        shared = _CACHE.get(ckey)
    if shared is not None:
        return shared
    from sampler_core import CocoSampler
    # another backend of the same dataset shares its CocoDataset
    dset = None
    with _CACHE_LOCK:
        for (k, kstamp, _, _), other in _CACHE.items():
            if k == key and kstamp == stamp:
                dset = other.dset
                break
    if dset is None:
        import kwcoco
        if isinstance(dataset, kwcoco.CocoDataset):
            dset = dataset
        elif is_demo_key(os.fspath(dataset)):
            dset = load_demo(os.fspath(dataset))
        else:
            dset = os.fspath(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler = CocoSampler(dset, workdir=workdir, backend=backend)
    shared = SharedDataset(key, label, sampler)
    with _CACHE_LOCK:
        return _CACHE.setdefault(ckey, shared)


def clear_cache() -> None:
    """Forget every shared sampler (tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def forget(path: str | os.PathLike) -> int:
    """Forget the shared samplers of the dataset file ``path``, or of every dataset file
    under the folder ``path`` (a released upload); return how many were dropped.

    Sessions that still hold one keep it; the next session reads the file again.

    Example:
        >>> import os, tempfile, kwcoco
        >>> folder = os.path.realpath(tempfile.mkdtemp())
        >>> fpath = os.path.join(folder, 'a.kwcoco.json')
        >>> kwcoco.CocoDataset.demo('shapes2').dump(fpath)
        >>> shared = get_shared(fpath)
        >>> (forget(folder), get_shared(fpath) is shared)
        (1, False)
    """
    real = os.path.realpath(os.fspath(path))
    prefix = real.rstrip(os.sep) + os.sep
    with _CACHE_LOCK:
        keys = [k for k in _CACHE if k[0] == real or k[0].startswith(prefix)]
        for k in keys:
            del _CACHE[k]
    return len(keys)


def session_sampler(shared_sampler):
    """A per-session view of a shared sampler with its own pools
    (:meth:`sampler_core.CocoSampler.fork`): it shares the dataset, frames,
    geometry cache, target table and spatial index; preselecting on it never
    changes the shared sampler.
    """
    return shared_sampler.fork()


@dataclass
class Pools:
    """The pools of one session, as tables.

    Attributes:
        pos: ``pandas.DataFrame`` with :data:`POOL_COLUMNS` (``kind == 'pos'``);
            ``index`` is the ``load_item`` index.
        neg: the same for negatives (``index`` continues after the positives).
        n_neg_asked: negatives the config asked for.
        config: the :class:`sampler_core.SamplingConfig` the pools were drawn with.
        nodata_stats: windows moved / dropped by ``max_nodata_fraction``
            (``CocoRegions.nodata_stats``).
        nodata_dropped: the windows it dropped (``CocoRegions.nodata_dropped``: ``kind``,
            ``gid``, ``ltrb`` arrays, capped, and their ``total``).
    """
    pos: object
    neg: object
    n_neg_asked: int
    config: object
    warnings: list = field(default_factory=list)
    nodata_stats: dict | None = None
    nodata_dropped: dict | None = None

    @property
    def n_pos(self) -> int:
        return len(self.pos)

    @property
    def n_neg(self) -> int:
        return len(self.neg)

    @property
    def all(self):
        import pandas as pd
        return pd.concat([self.pos, self.neg], ignore_index=True)

    def item(self, index: int) -> dict:
        """The row of ``load_item`` index ``index``."""
        if index < self.n_pos:
            return self.pos.iloc[index].to_dict()
        return self.neg.iloc[index - self.n_pos].to_dict()


def _table(rows: dict, kind: str, start: int, window_dims):
    import pandas as pd
    n = len(rows['gid'])
    df = pd.DataFrame({k: np.asarray(rows[k]) for k in
                       ('aid', 'gid', 'category_id', 'cx', 'cy', 'width', 'height')})
    df.insert(0, 'kind', kind)
    df.insert(0, 'index', np.arange(start, start + n, dtype=np.int64))
    from sampler_core.window import window_boxes   # the windows load_item cuts
    ltrb, _ = window_boxes(df['cx'].to_numpy(), df['cy'].to_numpy(), df['width'].to_numpy(),
                           df['height'].to_numpy(), window_dims)
    ltrb = ltrb.astype(np.float64)
    df['x0'], df['y0'], df['x1'], df['y1'] = ltrb.T
    return df


def pool_rows(regions) -> tuple[dict, dict]:
    """``(positives, negatives)`` of a preselected ``CocoRegions`` as column dicts."""
    cols = ('aid', 'gid', 'category_id', 'cx', 'cy', 'width', 'height')
    pos, neg = regions.pool_tables()
    return {k: pos[k] for k in cols}, {k: neg[k] for k in cols}


def compute_pools(sampler, config) -> Pools:
    """Preselect ``config``'s pools on a session sampler; return them as tables.

    Args:
        sampler: a :func:`session_sampler` (never the shared one).
        config: a :class:`sampler_core.SamplingConfig`.

    Raises:
        KeyError, ValueError: from ``CocoSampler.apply_config``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        n_pos, n_neg = sampler.apply_config(config)
    messages = user_messages(caught)
    asked = config.n_neg if config.n_neg is not None else int(config.neg_to_pos_ratio * n_pos)
    pos, neg = pool_rows(sampler.regions)
    wd = config.window_dims
    return Pools(pos=_table(pos, 'pos', 0, wd), neg=_table(neg, 'neg', n_pos, wd),
                 n_neg_asked=int(asked), config=config, warnings=messages,
                 nodata_stats=sampler.regions.nodata_stats,
                 nodata_dropped=sampler.regions.nodata_dropped)
