"""The explorer's one state object: a :class:`~sampler_core.config.SamplingConfig` plus UI.

:class:`ExplorerState` *is* a ``SamplingConfig`` (a subclass): its config
fields are the exported config, so every widget of the sampling config is a
view of one of its parameters, and :meth:`ExplorerState.to_config` returns a
plain ``SamplingConfig`` whose YAML is exactly a config file. The extra
parameters hold what the user looks at (selected image, search text, clicked
point, gallery selection) and, hidden (``precedence=-1``), what the views read
(the pools, a revision counter, the last message).

Each state owns a per-session sampler (:func:`app.pools.session_sampler`) on a
shared, read-only one, so two sessions never see each other's pools or values.

Nothing here imports Panel; the app shows :attr:`ExplorerState.message` as a
notification.

Example:
    >>> from app.state import ExplorerState
    >>> state = ExplorerState(dataset='shapes8', n_pos=4, neg_to_pos_ratio=1.0, backend=None)
    >>> (state.pools.n_pos, state.pools.n_neg)
    (4, 4)
    >>> state.window_dims = (64, 96)
    >>> state.pools.pos[['x1', 'y1']].iloc[0].tolist() == (
    ...     state.pools.pos[['x0', 'y0']].iloc[0] + [96, 64]).tolist()
    True
    >>> type(state.to_config()).__name__
    'SamplingConfig'
"""
from __future__ import annotations

import os
import traceback

import param

from app.demo import DEFAULT_DEMO, is_demo_key
from app.pools import compute_pools, filter_images, get_shared, session_sampler
from app.roots import check_path, normalize_roots
from sampler_core.config import SamplingConfig, WindowDims

#: UI keys kept in the URL besides the config
URL_UI_KEYS = ('gid', 'search', 'image_categories', 'gallery_size', 'detail_frames',
               'hidden_categories')

#: the largest window side the explorer samples, pixels
MAX_WINDOW = 4096
#: the most pool windows (positives + negatives, or grid windows) one explorer change may draw;
#: the library's own bounds are far larger (``sampler_core.regions.MAX_POOL_ITEMS``), so an
#: exported config still draws bigger pools in training code
MAX_EXPLORER_WINDOWS = 200_000


class ExplorerState(SamplingConfig):
    """Sampling config + what the explorer shows. See the module docstring.

    ``workdir`` (where frames are cached) is the server's choice: it is set when the
    state is built; an imported config's ``workdir`` is ignored with a notice and any
    later change is refused, so no user of a shared server chooses where it writes.

    Args:
        dataset: demo key, ``.kwcoco.json`` path or a ``kwcoco.CocoDataset``.
        roots: folders a typed path may resolve into (default: working
            directory and demo folders); see :mod:`app.roots`.
        **params: config fields and UI parameters.

    Raises:
        PermissionError, FileNotFoundError, ValueError: the initial dataset
            cannot be opened (later errors go to :attr:`message` instead).
    """

    # --- app defaults that differ from the library's --------------------------
    window_dims = WindowDims(default=(128, 128), length=2, allow_None=True,
                             doc=SamplingConfig.param.window_dims.doc)
    n_pos = param.Integer(default=16, allow_None=True, bounds=(0, None), doc=(
        'Number of positives; None: every annotation.'))

    # --- UI ------------------------------------------------------------------
    gid = param.Integer(default=None, allow_None=True, doc='Image shown in the overview.')
    search = param.String(default='', doc='Text the image list is filtered by (name or id).')
    image_categories = param.List(default=[], item_type=str, doc=(
        'Show only images with annotations of these categories.'))
    click_xy = param.NumericTuple(default=None, length=2, allow_None=True, doc=(
        '(x, y) image pixel last clicked in the overview: centre of the detail window.'))
    selected_item = param.Integer(default=None, allow_None=True, doc=(
        'load_item index of the gallery window highlighted in the overview.'))
    gallery_size = param.Integer(default=6, bounds=(1, 24), doc=(
        'Positives and negatives shown in each gallery.'))
    detail_frames = param.Integer(default=1, bounds=(1, 8), doc=(
        'Frames of the clip sampled on a click when the image is a video frame.'))
    hidden_categories = param.List(default=[], item_type=str, doc=(
        'Categories not drawn in the overview, detail pane and galleries. A view setting '
        'only: the pools, statistics and exported config do not change.'))

    # --- internal: what views read -------------------------------------------
    pools = param.Parameter(default=None, precedence=-1, doc='app.pools.Pools of this session.')
    revision = param.Integer(default=0, precedence=-1, doc='Bumped after every applied change.')
    message = param.Dict(default=None, allow_None=True, precedence=-1, doc=(
        'Last problem for the user: {"level", "text", "serial"}.'))
    dataset_label = param.String(default='', precedence=-1, doc='The loaded dataset.')

    UI_KEYS = ('gid', 'search', 'image_categories', 'click_xy', 'selected_item', 'gallery_size',
               'detail_frames', 'hidden_categories')

    def __init__(self, dataset=DEFAULT_DEMO, roots=None, **params):
        ui = {k: params.pop(k) for k in list(params) if k in self.UI_KEYS}
        import kwcoco
        self._dset_obj = dataset if isinstance(dataset, kwcoco.CocoDataset) else None
        self._dset_obj_label = None
        if self._dset_obj is not None:
            from app.pools import dataset_key
            dataset = self._dset_obj_label = dataset_key(dataset)[1]
        super().__init__(dataset=os.fspath(dataset), **params)
        self.roots = normalize_roots(roots)
        self.shared = None
        self.sampler = None
        self._serial = 0
        self._busy = False
        self._load_sampler()
        self._fit_pools_to_dataset()
        self._refresh_pools()
        self.param.update(**ui)
        if self.gid is None or self.gid not in self.shared.dset.imgs:
            self.gid = self.image_ids()[0] if self.image_ids() else None
        self.param.watch(self._on_config, [k for k in self.FIELDS if k not in self.INERT_FIELDS])
        self.param.watch(self._on_gid, ['gid'])

    # ------------------------------------------------------------------ config
    def config_dict(self) -> dict:
        """The config fields of this state as a plain dict (``SamplingConfig.to_dict``)."""
        return SamplingConfig.to_dict(self)

    def to_config(self, with_hash: bool = False) -> SamplingConfig:
        """A plain :class:`SamplingConfig` of the current values (the exported file).

        Args:
            with_hash: fill ``dataset_hash`` with the dataset's content hash and
                name a dataset file by its absolute real path (the exported file).
        """
        data = self.config_dict()
        data.pop('version')
        if with_hash:
            data['dataset_hash'] = self.shared.dataset_hash
            if not is_demo_key(self.dataset) and os.path.isabs(self.shared.key):
                data['dataset'] = self.shared.key   # absolute: the file works from anywhere
        return SamplingConfig(**data)

    def export_yaml(self) -> str:
        """The YAML text of :meth:`to_config` (with the dataset hash)."""
        return self.to_config(with_hash=True).dumps('yaml')

    @staticmethod
    def python_snippet(filename: str = 'config.yaml') -> str:
        """Python code that rebuilds the sampler and its pools from the exported file."""
        return (
            'from sampler_core import CocoSampler\n'
            f"sampler = CocoSampler.from_config('{filename}')\n"
            'for index in range(len(sampler)):  # positives, then negatives\n'
            '    sample = sampler.load_item(index)\n'
            "    im, annots = sample['im'], sample['annots']\n")

    def load_config(self, text: str | bytes) -> bool:
        """Restore every config field from YAML / JSON text (an imported file).

        Errors (bad file, unknown dataset, refused path) go to :attr:`message`;
        then nothing changes.

        Returns:
            whether the config was applied.
        """
        if isinstance(text, bytes):
            text = text.decode('utf8', errors='replace')
        try:
            cfg = SamplingConfig.loads(text)
        except (KeyError, TypeError, ValueError) as ex:
            self.notify(f'cannot import config: {_msg(ex)}')
            return False
        data = {k: getattr(cfg, k) for k in self.FIELDS
                if k not in self.INERT_FIELDS and k != 'workdir'}   # workdir: the server's
        self.param.update(**data)
        if any(getattr(self, k) != v for k, v in data.items()):  # refused: the message says why
            return False
        if cfg.dataset_hash is not None and self.shared is not None \
                and cfg.dataset_hash != self.shared.dataset_hash:
            self.notify(f'the dataset changed since this config was exported '
                        f'(hash {cfg.dataset_hash[:12]}... != {self.shared.dataset_hash[:12]}...)',
                        level='warning')
        if cfg.workdir is not None and os.fspath(cfg.workdir) != self.workdir:
            self.notify(_workdir_refusal(cfg.workdir, self.workdir), level='warning')
        return True

    # ------------------------------------------------------------------ messages
    def notify(self, text: str, level: str = 'error') -> None:
        """Publish a message for the user (the app shows it as a notification)."""
        self._serial += 1
        self.message = {'level': level, 'text': text, 'serial': self._serial}

    # ------------------------------------------------------------------ loading
    def _open_shared(self, dataset: str):
        """The shared sampler of ``dataset``, after the allowed-roots check."""
        if self._dset_obj is not None and dataset == self._dset_obj_label:
            return get_shared(self._dset_obj, backend=self.backend, workdir=self.workdir)
        if is_demo_key(dataset):
            return get_shared(dataset, backend=self.backend, workdir=self.workdir)
        real = check_path(dataset, self.roots)  # raises before anything is read
        if not os.path.isfile(real):
            raise FileNotFoundError(f'dataset file does not exist: {dataset}')
        shared = get_shared(real, backend=self.backend, workdir=self.workdir)
        shared.check_files_inside(self.roots)
        return shared

    def _load_sampler(self) -> None:
        shared = self._open_shared(self.dataset)
        self.shared = shared
        self.sampler = session_sampler(shared.sampler)
        self.dataset_label = self.dataset
        if shared.data_warnings:   # e.g. annotations left out of the pools, named
            self.notify(' / '.join(shared.data_warnings), level='warning')

    def _fit_pools_to_dataset(self) -> None:
        """A dataset without (valid) annotations has no positives: ask for none and for the
        negatives they would have paired instead (``n_neg`` = the positives asked, the
        explorer's default ``n_pos`` for all), so that its images and negatives are shown and
        the export rebuilds them."""
        if len(self.sampler.regions.targets) or self.n_pos == 0:
            return
        asked = self.param['n_pos'].default if self.n_pos is None else self.n_pos
        self.n_pos = 0
        if self.n_neg is None:
            self.n_neg = asked
        self.notify(f'{self.dataset_label} has no annotations: no positives, '
                    f'{self.n_neg} negatives', level='info')

    def _refresh_pools(self) -> None:
        cfg = self.to_config()
        fixed = cfg.window_dims if isinstance(cfg.window_dims, tuple) else ()
        side = max(fixed or (0,)) + 2 * max(cfg.pad)
        if side > MAX_WINDOW:
            raise ValueError(f'window {fixed} with pad {tuple(cfg.pad)} '
                             f'is larger than allowed ({MAX_WINDOW} pixels a side)')
        if cfg.categories:
            unknown = [c for c in cfg.categories if c not in self.shared.dset.name_to_cat]
            if unknown:
                raise KeyError(f'unknown categories {unknown} in dataset {self.dataset}')
        self._check_pool_size(cfg)
        self.pools = compute_pools(self.sampler, cfg)

    def _check_pool_size(self, cfg: SamplingConfig) -> None:
        """Refuse, before any work, a change that would draw more than
        :data:`MAX_EXPLORER_WINDOWS` windows (one session must not hold the server)."""
        dset = self.shared.dset
        if cfg.mode == 'grid':
            from sampler_core.grid import count_grid_windows
            extents = [(int(img.get('height') or 1), int(img.get('width') or 1))
                       for img in dset.imgs.values()]
            num = count_grid_windows(extents, cfg.window_dims, cfg.grid_overlap, cfg.grid_edge)
            what = (f'a grid of window_dims={list(cfg.window_dims)} with grid_overlap='
                    f'{cfg.grid_overlap} has {num:,} windows')
        else:
            n_pos = cfg.n_pos if cfg.n_pos is not None else dset.n_annots
            n_neg = cfg.n_neg if cfg.n_neg is not None else cfg.neg_to_pos_ratio * n_pos
            num = n_pos + n_neg
            what = f'n_pos={cfg.n_pos} and n_neg={cfg.n_neg} ask for {int(num):,} windows'
        if num > MAX_EXPLORER_WINDOWS:
            raise ValueError(f'{what}, more than the explorer draws ({MAX_EXPLORER_WINDOWS:,}); '
                             f'export the config and draw larger pools with '
                             f'CocoSampler.from_config')

    def _on_config(self, *events) -> None:
        if self._busy:
            return
        names = {e.name for e in events}
        self._busy = True
        try:
            if 'workdir' in names:   # where the server writes is the server's choice only
                new = next(e.new for e in events if e.name == 'workdir')
                old = next(e.old for e in events if e.name == 'workdir')
                raise PermissionError(_workdir_refusal(new, old))
            role = self.change_role(names)   # what the config says these fields need
            if role == 'sampler':
                self._load_sampler()
                self._fit_pools_to_dataset()
                if 'categories' not in names:
                    self.categories = [c for c in self.categories
                                       if c in self.shared.dset.name_to_cat]
                ids = self.image_ids()
                if self.gid not in self.shared.dset.imgs:
                    self.gid = ids[0] if ids else None
                self.image_categories = []
                self.hidden_categories = []
                self.click_xy = None
            if role in ('sampler', 'pools'):
                self._refresh_pools()
                self.selected_item = None
            else:
                self.sampler.config = self.to_config()
                self.pools.config = self.sampler.config
            self.revision += 1
        except Exception as ex:  # a problem the user can fix: say it, keep the old values
            if not isinstance(ex, (KeyError, ValueError, TypeError, OSError, IndexError)):
                traceback.print_exc()
            self.notify(_msg(ex))
            self.param.update(**{e.name: e.old for e in events})
            try:
                if self.dataset_label != self.dataset or self.shared.sampler.backend != self.backend:
                    self._load_sampler()  # a new dataset loaded, then its pools failed
                if self.pools is None or self.pools.config.to_dict() != self.to_config().to_dict():
                    self._refresh_pools()
                else:
                    self.sampler.config = self.pools.config
            except Exception:  # pragma: no cover - the old values worked before
                traceback.print_exc()
        finally:
            self._busy = False

    def _on_gid(self, event) -> None:
        if self.selected_item is not None and self.pools is not None:
            try:
                if self.pools.item(self.selected_item)['gid'] != event.new:
                    self.selected_item = None
            except IndexError:
                self.selected_item = None
        self.click_xy = None

    def dataset_is_current(self) -> bool:
        """Whether opening :attr:`dataset` now gives the loaded one (a dataset file changed
        on disk since, or now refused, is not current)."""
        if self.shared is None:
            return False
        try:
            return self._open_shared(self.dataset) is self.shared
        except Exception:
            return False

    # ------------------------------------------------------------------ browsing
    def image_ids(self) -> list:
        """Image ids that pass the search text and category filter, in dataset order."""
        table = filter_images(self.shared.image_table, self.search, self.image_categories,
                              self.shared.dset)
        return table['gid'].tolist()

    def step_image(self, step: int) -> None:
        """Select the next (``step=1``) or previous (``-1``) image of the filtered list."""
        ids = self.image_ids()
        if not ids:
            return
        if self.gid in ids:
            self.gid = ids[(ids.index(self.gid) + step) % len(ids)]
        else:
            self.gid = ids[0]

    def select_item(self, index: int) -> None:
        """Show the image of pool item ``index`` and highlight its window."""
        row = self.pools.item(int(index))
        self.param.update(gid=int(row['gid']), selected_item=int(index))

    @property
    def hidden_ids(self) -> set:
        """Category ids of :attr:`hidden_categories` in the loaded dataset."""
        name_to_cat = self.shared.dset.name_to_cat
        return {name_to_cat[n]['id'] for n in self.hidden_categories if n in name_to_cat}

    @property
    def category_names(self) -> list[str]:
        """Category names of the loaded dataset (sorted by id)."""
        cats = self.shared.dset.cats
        return [cats[c]['name'] for c in sorted(cats)]


def _workdir_refusal(asked, kept) -> str:
    return (f'workdir {asked} ignored: the cache folder is chosen by the server '
            f'(serve --workdir), never by a config or a link; it stays {kept}')


def _msg(ex: BaseException) -> str:
    if isinstance(ex, KeyError) and ex.args:
        return str(ex.args[0])
    return str(ex) or type(ex).__name__

