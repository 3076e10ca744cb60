"""The explorer's widgets, page layout and update runner.

:class:`Explorer` wraps one :class:`app.state.ExplorerState`; every widget is
linked both ways to a parameter of that state, and every plot is a view
(:mod:`app.views`) bound to it. The same object displays inline in a notebook
(``Explorer(dataset)``) and, through :meth:`Explorer.template`, as the served
page.

Each view's code lives in a module named after it, as a mixin of
:class:`Explorer`: :mod:`app.sidebar` (dataset, upload, import / export,
messages), :mod:`app.overview` (image list, the image with annotations and
windows, clicks, status line), :mod:`app.detail` (the clicked window),
:mod:`app.galleries` and :mod:`app.stats`. This module builds the widgets,
links them to the state, and runs the updates (statistics and galleries on
worker threads, applied in one batch).
"""
from __future__ import annotations

import os
import typing as t
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import holoviews as hv
import panel as pn
import param

from app import uploads as upl
from app import views
from app.browse import BrowseView
from app.demo import DEFAULT_DEMO, DEMOS
from app.detail import DetailView
from app.galleries import GalleriesView
from app.link import link_location
from app.overview import OverviewView
from app.sidebar import SidebarView
from app.stats import StatsView
from app.state import ExplorerState
from app.text import text_options
from sampler_core.config import _coerce_scale

#: config fields with a hand-made widget; any other field gets a generic one
_CUSTOM = {'version', 'dataset', 'dataset_hash', 'backend', 'workdir', 'window_dims', 'pad',
           'pad_mode', 'pad_value', 'scale', 'channels', 'visible_thresh', 'with_annots', 'categories',
           'n_pos', 'n_neg', 'neg_to_pos_ratio', 'neg_overlap', 'seed',
           'max_nodata_fraction', 'time_steps', 'time_sampling', 'time_span', 'resolution'}


#: window size choices besides 'fixed' (the two inputs) -> config ``window_dims``
BOX_WINDOWS = {'box size': None, 'square box': 'square'}

#: seconds after a page is built at which the server draws its overview (if its browser has
#: not connected yet): the browser fetches the static files first, then parses BokehJS
#: while the server draws
EARLY_DELAY = 0.25

_EXTENSIONS_LOADED = False

#: Enter in a text / number field of the explorer applies it as Tab does. JupyterLab's
#: output area keeps Enter from firing the input's ``change`` event (jupyterlab#6555),
#: which is when Bokeh reads the field; this sends that event itself.
ENTER_APPLIES = """<script>
(function () {
  if (window.samplerExplorerEnterApplies) { return; }
  window.samplerExplorerEnterApplies = true;
  document.addEventListener('keydown', function (event) {
    if (event.key !== 'Enter' || event.isComposing) { return; }
    var path = event.composedPath();
    var input = path[0];
    if (!input || input.tagName !== 'INPUT' || input.type !== 'text') { return; }
    var ours = path.some(function (el) {
      return el.classList && Array.prototype.some.call(el.classList, function (c) {
        return c.indexOf('w-') === 0; });
    });
    if (ours) { input.dispatchEvent(new Event('change')); }
  }, true);
})();
</script>"""

#: narrowest main column (px) beside the sidebar in a notebook cell; narrower cells show
#: it below the sidebar
MAIN_MIN_WIDTH = 720

#: worker threads that compute the statistics and galleries of every served session
WORKERS = 2
_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix='explorer')
    return _EXECUTOR


def _in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (the explorer shows in notebook cells)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), 'kernel', None) is not None


def ensure_extensions() -> None:
    """Load Panel's and HoloViews' bokeh extensions (once per process / notebook)."""
    global _EXTENSIONS_LOADED
    if not _EXTENSIONS_LOADED:
        # filedropper: the upload widgets are added after the page has loaded, so their
        # scripts (FilePond) must be part of every page from the start
        # in a notebook BokehJS, Panel's JS and CSS go inline with the output (not from a
        # CDN), so the explorer renders offline; PANEL_INLINE=0 asks for the CDN instead
        inline = pn.config.inline if 'PANEL_INLINE' in os.environ else _in_kernel()
        pn.extension('filedropper', notifications=True, inline=inline)
        hv.extension('bokeh', logo=False, inline=inline)
        # plain canvas: a few hundred glyphs per plot at most, and WebGL (HoloViews'
        # default) costs a shader compile and a blit per draw (software GL without a GPU)
        # plus bokeh-gl.js in every page
        hv.renderer('bokeh').webgl = False
        _EXTENSIONS_LOADED = True
    elif pn.state.curdoc is not None:
        pn.config.notifications = True




class UploadDropper(pn.widgets.FileDropper):
    """A FileDropper that refuses a file over ``max_bytes`` in the browser (before it is
    sent) and again on the server (a client may skip the browser's check): chunks past
    the limit are dropped and ``on_refused(name, max_bytes)`` is called.

    Files are sent in chunks of :data:`app.uploads.UPLOAD_CHUNK_BYTES`, below the
    server's websocket message limit.
    """

    max_bytes = param.Integer(default=upl.MAX_UPLOAD_BYTES, bounds=(1, None), doc=(
        'Largest file accepted, bytes.'))

    _rename: t.ClassVar[dict] = {**pn.widgets.FileDropper._rename, 'max_bytes': None}

    def __init__(self, on_refused=None, **params):
        params.setdefault('chunk_size', upl.UPLOAD_CHUNK_BYTES)
        super().__init__(**params)
        self.max_file_size = f'{self.max_bytes // 1000}KB'   # filepond counts 1 KB = 1000 B
        self.on_refused = on_refused
        self._dropped = set()

    def _process_event(self, event):
        data = getattr(event, 'data', None) or {}
        if event.event_name == 'upload_event':
            name = data.get('name')
            if data.get('chunk') == 1:
                self._file_buffer.pop(name, None)
                self._dropped.discard(name)
            if name in self._dropped:
                return
            held = sum(len(c) for chunks in self._file_buffer.values() for c in chunks)
            if held + len(data.get('data') or b'') > self.max_bytes:
                self._file_buffer.clear()      # also partial files of other names
                if len(self._dropped) > 64:
                    self._dropped.clear()
                self._dropped.add(name)
                if self.on_refused is not None:
                    self.on_refused(name, self.max_bytes)
                return
        super()._process_event(event)


def _scale_text(value) -> str:
    if value is None:
        return ''
    if isinstance(value, (list, tuple)):
        return ', '.join(f'{float(v):g}' for v in value)
    return f'{float(value):g}'


def _parse_scale(text):
    """'' -> None, '0.5' -> 0.5, '0.5, 0.25' -> [0.5, 0.25] (as the config stores it)."""
    text = (text or '').strip()
    if not text:
        return None
    try:
        parts = [float(p) for p in text.replace(',', ' ').split()]
    except ValueError:
        raise ValueError(f'scale must be a number or two numbers "sy, sx", got {text!r}') from None
    value = parts[0] if len(parts) == 1 else parts
    _coerce_scale(value)   # the config's own check: one or two positive, finite numbers
    return value




def _change_before_browser_connects(doc, change) -> bool:
    """Run ``change`` (edits of Panel objects shown in ``doc``) now if no browser has
    connected to ``doc`` yet, so that it is part of the document the browser pulls;
    return whether it ran.

    Until its browser has loaded, Panel applies changes to a served document a tick later
    (``pn.state._connected``); a browser connecting in between would miss them. So the
    change is applied at once, with Panel told for its duration that it may.
    """
    session = getattr(doc.session_context, 'session', None)
    connected = getattr(pn.state, '_connected', None)
    if session is None or session.connection_count > 0 or not hasattr(connected, 'get'):
        return False
    from panel.io.state import set_curdoc
    before = connected.get(doc)
    connected[doc] = True
    try:
        with set_curdoc(doc):
            change()
    finally:
        if before is None:
            connected.pop(doc, None)
        else:
            connected[doc] = before
    return True


class _Template(pn.template.BootstrapTemplate):
    """The served page: a BootstrapTemplate whose roots are added to the session's document
    with its model graph frozen, so that Bokeh walks it once instead of once per root."""

    def _init_doc(self, doc=None, comm=None, title=None, notebook=False, location=True):
        document = doc or pn.state.curdoc
        if document is None or notebook:
            return super()._init_doc(doc, comm, title, notebook, location)
        with document.models.freeze():
            return super()._init_doc(document, comm, title, notebook, location)


class Explorer(SidebarView, OverviewView, BrowseView, DetailView, GalleriesView, StatsView,
               pn.viewable.Viewer):
    """The sampler explorer for one dataset; one state per instance (per session).

    Args:
        dataset: a demo key (default ``shapes8``), a ``.kwcoco.json`` path or a
            ``kwcoco.CocoDataset``.
        roots: folders a path typed in the app may resolve into.
        uploads: where uploaded datasets go (default: the server's
            :func:`app.uploads.server_store`); this explorer's uploads are released
            when its session ends (or by :meth:`release_uploads`).
        **config: initial config / UI values (any :class:`ExplorerState` parameter).

    Example:
        >>> from app import Explorer           # doctest: +SKIP
        >>> Explorer('shapes8')                # shows the UI inline in a notebook
    """

    def __init__(self, dataset=DEFAULT_DEMO, roots=None, state: ExplorerState | None = None,
                 hold_updates: bool = False, uploads: upl.UploadStore | None = None, **config):
        super().__init__()
        ensure_extensions()
        import uuid
        self.uploads = uploads if uploads is not None else upl.server_store()
        self._owner = f'explorer-{uuid.uuid4().hex}'   # holds this session's uploads
        #: built ahead of its session (``hold_updates``): statistics and galleries wait for
        #: the page (:meth:`template`) instead of being computed at once
        self._hold = hold_updates
        #: a served session's document and server loop (set by :meth:`template`); None
        #: elsewhere: then every view is updated at once
        self._doc = self._loop = None
        self._job = None                # the running statistics / gallery computation
        self._released = False
        self._stats_cache = self._coverage_cache = (None, None)
        self._gallery_noted = None
        self.state = state if state is not None else ExplorerState(dataset=dataset, roots=roots,
                                                                   **config)
        if self.uploads.root not in self.state.roots:
            self.state.roots = self.state.roots + [self.uploads.root]
        self.uploads.acquire(self._owner, self.state.shared.key)
        self._syncing = False
        self._gallery_cache = (None, None)
        self._build()
        self.state.param.watch(self._on_message, ['message'])
        self.state.param.watch(self._on_dataset, ['dataset_label'])

    # ------------------------------------------------------------ linking
    def _link(self, name, widget, to_widget=lambda v: v, to_state=lambda v: v, event='value'):
        """Two-way link between ``widget.<event>`` and ``state.<name>``."""
        state = self.state

        def w2s(ev):
            if self._syncing:
                return
            try:
                new = to_state(ev.new)
            except (TypeError, ValueError) as ex:
                state.notify(str(ex))
                return
            if new != getattr(state, name):
                with self._batched():
                    state.param.update(**{name: new})

        def s2w(ev):
            self._syncing = True
            try:   # the state's value now: a refused change is restored before this runs
                widget.value = to_widget(getattr(state, name))
            finally:
                self._syncing = False

        widget.value = to_widget(getattr(state, name))
        widget.param.watch(w2s, event)
        state.param.watch(s2w, name)
        return widget

    def _link_pair(self, name, w_a, w_b, mode=None):
        """Link a ``(height, width)`` tuple parameter to two integer inputs; ``mode``: a
        choice of 'fixed' or one of :data:`BOX_WINDOWS` (the boxes' size, or square)."""
        state = self.state

        def to_state(_):
            if mode is not None and mode.value != 'fixed':
                return BOX_WINDOWS[mode.value]
            return (int(w_a.value), int(w_b.value))

        def w2s(ev):
            if self._syncing or w_a.value is None or w_b.value is None:
                return
            new = to_state(None)
            if new != getattr(state, name):
                with self._batched():
                    state.param.update(**{name: new})

        def s2w(*_):
            value = getattr(state, name)
            fixed = isinstance(value, tuple)
            self._syncing = True
            try:
                if mode is not None:
                    mode.value = 'fixed' if fixed else \
                        next(k for k, v in BOX_WINDOWS.items() if v == value)
                if fixed:
                    w_a.value, w_b.value = int(value[0]), int(value[1])
                w_a.disabled = w_b.disabled = not fixed
            finally:
                self._syncing = False

        s2w()
        for w in (w_a, w_b) + ((mode,) if mode is not None else ()):
            w.param.watch(w2s, 'value')
        state.param.watch(s2w, name)

    # ------------------------------------------------------------ widgets
    def _build(self) -> None:
        s = self.state
        self._detail_empty = pn.pane.Markdown(
            '*Click the overview: a window centred there is sampled and shown here.*',
            css_classes=['detail-empty'], width=420)
        # dataset
        self.demo_select = pn.widgets.Select(
            label='Demo dataset', options=[''] + list(DEMOS),
            value=s.dataset if s.dataset in DEMOS else '', description='\n'.join(
                f'{k}: {v}' for k, v in DEMOS.items()))
        self.demo_select.param.watch(self._on_demo, 'value')
        self.path_input = pn.widgets.TextInput(
            label='Dataset path (.kwcoco.json)', placeholder='data/train.kwcoco.json',
            value='' if s.dataset in DEMOS else s.dataset)
        self.open_button = pn.widgets.Button(label='Open', color='primary')
        self.open_button.on_click(self._on_open)
        self.upload = UploadDropper(
            accepted_filetypes=upl.UPLOAD_FILETYPES, max_bytes=self.uploads.max_upload_bytes,
            label=(f'Upload .kwcoco.json / .zip / .tar (at most '
                   f'{upl.megabytes(self.uploads.max_upload_bytes)})'),
            on_refused=self._on_upload_refused, layout='compact')
        self.upload.param.watch(self._on_upload, 'value')
        self.alert = pn.pane.Alert('', alert_type='danger', visible=False,
                                   css_classes=['explorer-alert'])
        self.dataset_info = pn.pane.Markdown(self._dataset_info(), css_classes=['dataset-info'])

        # windows
        self.window_mode = pn.widgets.RadioButtonGroup(
            label='window', options=['fixed', *BOX_WINDOWS], value='fixed', color='default')
        self.window_h = pn.widgets.IntInput(label='window height', start=1, end=4096, step=8,
                                            value=128, width=110)
        self.window_w = pn.widgets.IntInput(label='window width', start=1, end=4096, step=8,
                                            value=128, width=110)
        self._link_pair('window_dims', self.window_h, self.window_w, self.window_mode)
        self.pad_h = pn.widgets.IntInput(label='pad height', start=0, end=1024, step=4, value=0,
                                         width=110)
        self.pad_w = pn.widgets.IntInput(label='pad width', start=0, end=1024, step=4, value=0,
                                         width=110)
        self._link_pair('pad', self.pad_h, self.pad_w)
        self.pad_mode = pn.widgets.Select.from_param(s.param.pad_mode, label='padkw mode')
        self.channels = pn.widgets.Select(label='channels', options=self._channel_options())
        self._link('channels', self.channels, to_widget=self._channels_option,
                   to_state=lambda v: None if v in ('<all>', None) else v)
        self.visible_thresh = pn.widgets.FloatSlider.from_param(
            s.param.visible_thresh, step=0.05, value_throttled=s.visible_thresh)
        self.with_annots = pn.widgets.CheckButtonGroup.from_param(s.param.with_annots,
                                                                  label='with_annots')
        self.scale = pn.widgets.TextInput(label='scale (empty: none; s or sy, sx)',
                                          placeholder='e.g. 0.5')
        self._link('scale', self.scale, to_widget=_scale_text, to_state=_parse_scale)

        # pools
        self.categories = pn.widgets.MultiChoice(label='positive categories (empty: all)',
                                                 options=text_options(s.category_names))
        self._link('categories', self.categories, to_widget=list, to_state=list)
        self.n_pos = pn.widgets.IntInput.from_param(s.param.n_pos, label='positives (n_pos)',
                                                    start=0)
        self.n_neg = pn.widgets.IntInput.from_param(s.param.n_neg,
                                                    label='negatives (n_neg, empty: ratio)',
                                                    start=0)
        self.neg_ratio = pn.widgets.FloatSlider(label='neg_to_pos_ratio', start=0.0, end=4.0,
                                                step=0.25)
        self._link('neg_to_pos_ratio', self.neg_ratio, event='value_throttled')
        self.neg_overlap = pn.widgets.FloatSlider(label='neg_overlap', start=0.0, end=1.0,
                                                  step=0.05)
        self._link('neg_overlap', self.neg_overlap, event='value_throttled')
        self.max_nodata = self._link('max_nodata_fraction', pn.widgets.FloatInput(
            label='max_nodata_fraction (empty: off)', start=0.0, end=1.0, step=0.05,
            placeholder='off', description=s.param.max_nodata_fraction.doc))
        self.seed = pn.widgets.IntInput.from_param(s.param.seed, start=0)
        self.backend = pn.widgets.Select.from_param(s.param.backend)
        self.gallery_size = pn.widgets.IntSlider.from_param(s.param.gallery_size,
                                                            label='gallery size')
        self.detail_frames = pn.widgets.IntSlider.from_param(
            s.param.detail_frames, label='detail clip frames (videos)')
        self._build_time_widgets()
        others = [k for k in s.FIELDS if k not in _CUSTOM]
        self.more = pn.Param(s.param, parameters=others, show_name=False,
                             default_layout=pn.Column) if others else None

        # config import / export
        self.download = pn.widgets.FileDownload(
            callback=self._export, filename='config.yaml', label='Export config (YAML)',
            color='success', embed=False)
        self.config_upload = UploadDropper(
            max_bytes=upl.MAX_CONFIG_BYTES, on_refused=self._on_upload_refused,
            label=f'Import a config (.yaml / .json, at most {upl.megabytes(upl.MAX_CONFIG_BYTES)})',
            layout='compact')
        self.config_upload.param.watch(self._on_import, 'value')
        snippet = s.python_snippet()
        self.snippet = pn.pane.Markdown(f'```python\n{snippet}```', css_classes=['snippet'])
        self.copy_button = pn.widgets.Button(label='Copy snippet', color='light')
        self.copy_button.js_on_click(args={'text': snippet},
                                     code='navigator.clipboard.writeText(text)')

        # browsing
        self.search = pn.widgets.TextInput.from_param(s.param.search, label='search images',
                                                      placeholder='name or id')
        self.image_categories = pn.widgets.MultiChoice(label='images with category',
                                                       options=text_options(s.category_names))
        self._link('image_categories', self.image_categories, to_widget=list, to_state=list)
        self.image_select = pn.widgets.Select(label='image', size=1)
        self.image_count = pn.pane.Markdown('', css_classes=['image-count'])
        self._update_image_options()
        self.image_select.param.watch(self._on_image_select, 'value')
        s.param.watch(lambda *_: self._update_image_options(),
                      ['search', 'image_categories', 'gid', 'dataset_label'])
        self.frame_slider = pn.widgets.IntSlider(label='frame (time)', start=0, end=1, value=0,
                                                 width=260, visible=False)
        self.frame_slider.param.watch(self._on_frame, 'value_throttled')
        self._update_frame_slider()
        s.param.watch(lambda *_: self._update_frame_slider(), ['gid', 'dataset_label'])
        self.prev_button = pn.widgets.Button(label='◀ previous', width=100)
        self.next_button = pn.widgets.Button(label='next ▶', width=100)
        self.prev_button.on_click(lambda _: s.step_image(-1))
        self.next_button.on_click(lambda _: s.step_image(1))

        # a stable CSS class per widget (w-<attribute>) for tests and user styles
        for attr in ('demo_select', 'path_input', 'open_button', 'upload', 'window_mode',
                     'window_h', 'window_w', 'pad_h', 'pad_w', 'pad_mode', 'channels',
                     'visible_thresh', 'with_annots', 'scale', 'frame_slider', 'detail_frames', 'categories', 'n_pos', 'n_neg', 'neg_ratio',
                     'neg_overlap', 'max_nodata', 'seed', 'backend', 'gallery_size', 'download', 'config_upload',
                     'copy_button', 'search', 'image_categories', 'image_select', 'prev_button',
                     'next_button', 'time_steps', 'time_sampling', 'time_span', 'resolution'):
            widget = getattr(self, attr)
            widget.css_classes = list(widget.css_classes or []) + [f'w-{attr}']

        # views
        self.overview = pn.Column(css_classes=['overview'])
        self._ov_dims = None
        self._ov_reset = False
        self._window_sources = weakref.WeakSet()    # the shown overviews' pool windows
        self._on_overview_gid()
        # after the dataset's own watchers (its category colours, :meth:`_on_dataset`)
        s.param.watch(self._on_overview_gid, ['gid', 'dataset_label'], precedence=1)
        s.param.watch(self._update_windows, ['gid', 'revision', 'selected_item', 'click_xy'])
        self.status = pn.pane.HTML(pn.bind(self._status, s.param.revision, s.param.gid),
                                   css_classes=['status-line'], sizing_mode='stretch_width')
        self.detail = pn.Column(self._detail_empty, css_classes=['detail'])
        s.param.watch(self._update_detail, ['click_xy', 'revision', 'detail_frames',
                                            'hidden_categories'])
        self._build_galleries()
        self._build_stats()
        self._build_legend()
        self._build_browse()
        self._schedule_updates()
        s.param.watch(self._schedule_updates, ['revision', 'gallery_size', 'selected_item',
                                               'hidden_categories'])




    # ------------------------------------------------------------ callbacks














    # ------------------------------------------------------------ views
    # ------------------------------------------------------------ overview








    # ------------------------------------------------------------ galleries






    # ------------------------------------------------------------ statistics





    # ------------------------------------------------------------ deferred updates
    def _batched(self):
        """In a served session, the page's models changed by a state change are sent in one
        batch. (Not frozen: a change of the config only puts data into existing models, and
        leaving a freeze re-walks every model of the page, ~40 ms, even when none was
        added; views that add models, e.g. a new overview plot, freeze for themselves.)"""
        import contextlib
        if self._doc is None or self._released:
            return contextlib.nullcontext()
        return pn.io.hold(self._doc)

    def _snapshot(self) -> dict:
        """What the statistics and galleries are computed from, read at once (on the server
        loop): a worker never reads the state while the loop changes it."""
        s = self.state
        return {'sampler': s.sampler, 'pools': s.pools, 'dset': s.shared.dset,
                'pad': tuple(s.pad), 'gallery_size': s.gallery_size,
                'colors': views.category_colors(s.shared.dset), 'hidden': s.hidden_ids,
                'coverage': self._coverage(), 'stats_key': self._stats_key(),
                'gallery_key': self._gallery_key()}

    def _schedule_updates(self, *events) -> None:
        """Bring the statistics and galleries up to the state.

        Outside a served session (notebooks, tests) at once. In a served session their data
        (windows sampled and drawn, visible fractions) is computed on a worker thread
        (:data:`WORKERS` shared by all sessions), so the server loop stays free for every
        session's changes; the result is applied on the loop in one batch. A session has at
        most one computation running: changes made meanwhile only mark it out of date, and
        when it ends one computation starts for the latest state (superseded states are
        never computed, stale results never shown). A highlight change only relabels the
        gallery buttons.
        """
        if self._released:
            return
        if self._hold:          # built ahead of its page: computed once the page has loaded
            return
        if self._loop is None:
            self._apply_updates()
            return
        if self._stats_cache[0] == self._stats_key() and \
                self._gallery_cache[0] == self._gallery_key():
            self._apply_updates()           # e.g. a highlight: nothing to compute
            return
        if self._job is None:
            self._start_job()
        # else: the running computation starts one for the latest state when it ends

    def _start_job(self) -> None:
        snap = self._snapshot()
        need_stats = self._stats_cache[0] != snap['stats_key']
        need_gallery = self._gallery_cache[0] != snap['gallery_key']
        self._set_loading(need_stats, need_gallery)
        loop, doc = self._loop, self._doc

        def compute():
            return (self._compute_stats(snap) if need_stats else None,
                    self._compute_galleries(snap) if need_gallery else None)

        def done(future):
            # tornado's add_callback is the one thread-safe way back onto the loop
            loop.add_callback(lambda: doc.add_next_tick_callback(partial(self._job_done, future)))

        self._job = _executor().submit(compute)
        self._job.add_done_callback(done)

    def _job_done(self, future) -> None:
        """On the loop: keep the result if it is still the state's, show it, and start one
        computation for the latest state if it moved on meanwhile."""
        self._job = None
        if self._released:
            return
        try:
            stats, gallery = future.result()
        except Exception as ex:  # keep the app alive; tell the user
            import traceback
            traceback.print_exc()
            self.state.notify(f'could not update the view: {ex}')
            stats = gallery = None
        if stats is not None and stats[0] == self._stats_key():
            self._stats_cache = stats
        if gallery is not None and gallery[0] == self._gallery_key():
            self._gallery_cache = gallery
        current = (self._stats_cache[0] == self._stats_key(),
                   self._gallery_cache[0] == self._gallery_key())
        if not all(current):
            self._start_job()               # the state moved on: only its latest is computed
        self._apply_updates(stats=current[0], galleries=current[1])

    def _apply_updates(self, stats: bool = True, galleries: bool = True) -> None:
        """Show the computed statistics and galleries, in one message to the page
        (``pn.io.hold``). Only data and texts of existing models change, so Bokeh has no
        model graph to walk again (no ``freeze``: leaving one re-walks every model of the
        page, ~40 ms each time; new gallery slots freeze for themselves. Not frozen the
        first time either: Panel's design hooks then give the new gallery pictures style
        sheets that are replaced, with a walk of the graph, at every later change)."""
        with pn.io.hold(self._doc):
            try:
                if stats:
                    self._update_stats()
                if galleries:
                    self._update_galleries()
            except Exception as ex:  # keep the app alive; tell the user
                import traceback
                traceback.print_exc()
                self.state.notify(f'could not update the view: {ex}')
            self._set_loading(not stats and self._job is not None,
                              not galleries and self._job is not None)

    def _set_loading(self, stats: bool, galleries: bool) -> None:
        """Panel's loading spinner over the galleries while they are computed. (Not over the
        statistics: toggling it over their four plots costs the browser about a second of
        re-layout per change on a loaded 2-core machine; their table says which window
        they show.)"""
        if self._loop is None:
            return
        if self.galleries.loading != galleries:
            self.galleries.loading = galleries

    def _release_held_updates(self) -> None:
        """Compute what was held while the explorer was built ahead of its page: in a
        served session once the page has loaded (the static files and the overview go
        first), elsewhere at once."""
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            from tornado.ioloop import IOLoop
            self._doc, self._loop = doc, IOLoop.current()

        def release():
            self._hold = False
            self._schedule_updates()
            self._update_grid()

        if self._loop is not None and self._hold:
            pn.state.onload(release)
        else:
            release()

    def _on_session_destroyed(self, session_context) -> None:
        self.release_uploads()
        self.release()
        print('sampler-explorer: a session closed, its state released', flush=True)

    def release(self) -> None:
        """Free this session's state (called when its session is destroyed): its pools,
        sampler fork, caches and pending work. The shared dataset stays for the other
        sessions."""
        self._released = True
        if self._job is not None:
            self._job.cancel()
        self._stats_cache = self._gallery_cache = self._coverage_cache = (None, None)
        self._stats_plots.forget()
        s = self.state
        for by_what in list(s.param.watchers.values()):   # widgets, views, streams, URL
            for watchers in list(by_what.values()):
                for watcher in list(watchers):
                    s.param.unwatch(watcher)
        s.pools = None
        s.sampler = None
        self._doc = None

    # ------------------------------------------------------------ layout

    def main(self) -> list:
        """The main column's views."""
        # rows that wrap (FlexBox) where the page is narrower than their parts: the main
        # column never scrolls sideways (usable at 1280x800)
        browser = pn.FlexBox(self.search, self.image_categories,
                             pn.Column(self.image_select, self.frame_slider),
                             pn.Column(pn.Row(self.prev_button, self.next_button),
                                       self.image_count), sizing_mode='stretch_width')
        return [
            self._deferred(browser),
            self.status,
            self._deferred(pn.FlexBox(self.overview, self.detail, sizing_mode='stretch_width'),
                           when='early'),
            pn.Card(self._deferred(self.grid, when='later'), title='Browse images',
                    sizing_mode='stretch_width', css_classes=['browse-card']),
            pn.Card(self._deferred(self.galleries, when='later'), title='Galleries',
                    sizing_mode='stretch_width'),
            pn.Card(self._deferred(self.stats, when='later'), title='Statistics of the pools',
                    sizing_mode='stretch_width'),
        ]

    def _deferred(self, view, when: str = 'onload'):
        """In a served session ``view`` is added after the page's HTML is sent (the overview
        shows first); elsewhere (notebooks, tests) it is there at once.

        ``when='onload'``: once the page has loaded; ``'later'``: one tick after that (the
        widgets reach the browser before the statistics plots).
        ``when='early'``: :data:`EARLY_DELAY` seconds after the page is built, while the
        browser still loads BokehJS, so that the document it pulls already holds ``view``;
        if the browser has connected by then, once the page has loaded instead (see
        :func:`_change_before_browser_connects`).

        The views of one moment are added together (:meth:`_show_deferred`): Bokeh walks
        the page's model graph once for them all, not once per view.
        """
        if when not in ('onload', 'later', 'early'):
            raise ValueError(f"when must be 'onload', 'later' or 'early', got {when!r}")
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            return view
        holder = pn.Column(pn.indicators.LoadingSpinner(value=True, size=30),
                           sizing_mode='stretch_width')

        shown_early = []

        def show():
            if not shown_early:
                holder[:] = [view]

        if when == 'early':
            from tornado.ioloop import IOLoop

            def show_early():
                if _change_before_browser_connects(doc, show):
                    shown_early.append(True)

            def at_delay():
                if doc.session_context is not None:   # the session may have ended since
                    doc.add_next_tick_callback(show_early)

            IOLoop.current().call_later(EARLY_DELAY, at_delay)
        pending = getattr(self, '_pending_views', None)
        if pending is None or pending[0] is not doc:
            pending = self._pending_views = (doc, {'onload': [], 'later': []})

            def later():
                self._show_deferred(doc, pending[1]['later'])

            def onload():
                self._show_deferred(doc, pending[1]['onload'])
                doc.add_next_tick_callback(later)

            pn.state.onload(onload)
        pending[1]['later' if when == 'later' else 'onload'].append(show)
        return holder

    @staticmethod
    def _show_deferred(doc, shows: list) -> None:
        """Run the ``shows`` of :meth:`_deferred` (each puts a view into the page) with the
        document's model graph frozen: one walk of it for all their new models. Held, so
        that the page gets them in one message once the walk has made them known (sent
        one by one while frozen, the models they share, e.g. style sheets, went in each)."""
        with pn.io.hold(doc), doc.models.freeze():
            while shows:
                shows.pop(0)()

    def __panel__(self):
        # a notebook cell: the main column goes below the sidebar when the cell is narrower
        # than both (MAIN_MIN_WIDTH: the overview's plot)
        return pn.FlexBox(pn.Column(*self.sidebar(), width=330),
                          pn.Column(*self.main(), sizing_mode='stretch_width',
                                    min_width=MAIN_MIN_WIDTH),
                          pn.pane.HTML(ENTER_APPLIES, width=0, height=0, margin=0),
                          flex_wrap='wrap', sizing_mode='stretch_width')

    def template(self, title: str = 'sampler-explorer', sync_url: bool = True):
        """The served page (BootstrapTemplate); keeps the state in the URL query.

        The sidebar's widgets, the galleries and the statistics are added once the
        page has loaded, so the browser draws the overview first. Each part of the main
        column is its own Bokeh root: a change of one (the status line, a gallery title)
        re-lays out that part only, not the overview and statistics plots with it (one
        Column holding them all cost ~0.3 s of browser CPU per window change).
        """
        ensure_extensions()
        self._release_held_updates()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(self._on_session_destroyed)
        if sync_url and pn.state.location is not None:
            self.link = link_location(pn.state.location, self.state)   # app.link
        return _Template(
            title=title,
            sidebar=[self._deferred(pn.Column(*self.sidebar(), sizing_mode='stretch_width'))],
            main=self.main(), sidebar_width=340,
            header_background="#14532d")
