"""The explorer's pool statistics: class balance, visible fractions, negatives found,
image area covered.

The four plots are Bokeh figures built once per session (:class:`StatsPlots`); a change of
the pools replaces the data of their ``ColumnDataSource`` s, their category factors and
titles, and nothing else: no model is created, no HoloViews plot re-rendered, and Bokeh
never re-walks the page's models for it (with 20 sessions on 2 cores, re-rendering four
HoloViews plots per change was about half of the server's time).

What they show is plain data computed by :func:`stats_data` from the pools (on a
worker thread in a served session): a change that keeps the pools (a ``read`` field of
:attr:`sampler_core.SamplingConfig.FIELD_ROLES`, e.g. ``visible_thresh``) computes nothing
and only moves the ``visible_thresh`` line, unless it changes the per-item draws
(:data:`DRAW_FIELDS`). Those are what one training epoch draws (:func:`epoch_draws`: the
items that repeat a pool window, the window sides, scales and time offsets drawn, through
the sampler's own per-item step): rows of the numbers table and three more plots, shown
while their option is on (each figure made the first time it is shown).

Example:
    >>> from app.state import ExplorerState
    >>> from app.stats import StatsPlots, stats_data
    >>> s = ExplorerState(dataset='shapes8', n_pos=4, n_neg=2, backend=None)
    >>> data = stats_data(s.pools, s.shared.dset, s.sampler.regions)
    >>> data['negatives']['windows']              # asked, found
    [2, 2]
    >>> plots = StatsPlots()
    >>> plots.show(data, visible_thresh=0.25)
    >>> plots.sources['negatives'].data['windows'], plots.span.location
    ([2, 2], 0.25)
"""
from __future__ import annotations

import math

import numpy as np
import panel as pn

from app import views

#: colour of the visible-fraction bars
GREY = '#64748b'
#: size of each statistics plot, pixels
PLOT_WIDTH, PLOT_HEIGHT = 400, 260
#: images in the coverage plot (the most covered first)
COVERAGE_LIMIT = 30
#: bins of the visible-fraction histogram over [0, 1]
VISIBLE_BINS = 20
#: the epoch whose items the statistics draw (SampleDataset's first epoch; export-chips')
DRAW_EPOCH = 0
#: most items of that epoch whose per-item draws (sizes, scales, frames) are computed
DRAW_LIMIT = 1_000
#: most items of that epoch whose repeated windows are counted
REPEAT_LIMIT = 1_000_000
#: bins of the drawn-scale histogram (window sides and time offsets get one bar per value,
#: up to this many values)
DRAW_BINS = 20
#: config fields that change the per-item draws without redrawing the pools
DRAW_FIELDS = ('scale', 'epoch_length', 'scale_range', 'window_size_range', 'output_dims',
               'time_steps', 'time_sampling', 'time_span', 'resolution')


def stats_data(pools, dset, regions, pad=None, coverage=None, sampler=None) -> dict:
    """What the statistics show, as plain data (lists and arrays, no models).

    Args:
        pools: :class:`app.pools.Pools`.
        dset: the ``kwcoco.CocoDataset``.
        regions: the session sampler's ``regions`` (for the visible fractions).
        pad: ``(ph, pw)`` of the windows (default: the pools' config's).
        coverage: ``(per_image, overall)`` of :func:`app.views.coverage` when already
            computed (the status line has it), else computed here.
        sampler: the sampler of the pools: adds what a training epoch draws
            (:func:`epoch_draws`: ``draws``, the rows of the numbers table and the
            ``sides`` / ``scales`` / ``times`` plots); ``None``: left out.

    Returns:
        ``{'pools', 'fractions', 'overall', 'html', 'titles': {plot: text}, 'balance',
        'visible', 'negatives', 'coverage'}``; the last four are the column dicts of the
        plots' sources: ``balance`` (``category``, ``windows``, ``color``), ``visible``
        (``left``, ``right``, ``annotations``: histogram bins over [0, 1]),
        ``negatives`` (``what`` = asked / found, ``windows``, ``color``), ``coverage``
        (``image``, ``covered``: the :data:`COVERAGE_LIMIT` most covered images);
        ``draws`` (:func:`epoch_draws`, or None) and its plots' columns ``sides``,
        ``scales``, ``times`` (``left``, ``right``, ``items``; empty when off).
    """
    pad = tuple(pools.config.pad) if pad is None else tuple(pad)
    fractions = views.visible_fractions(regions, pools, pad)
    per_image, overall = coverage if coverage is not None else views.coverage(pools, dset, pad)
    balance = views.class_balance(pools, dset)
    counts, edges = np.histogram(fractions, bins=VISIBLE_BINS, range=(0.0, 1.0))
    top = views.top_covered(per_image, COVERAGE_LIMIT, dset.imgs)
    table = views.stats_table(pools, fractions, overall)
    nodata = pools.nodata_stats or {}
    if nodata.get('max_nodata_fraction') is not None:   # what max_nodata_fraction did
        table.loc[len(table)] = ['padded windows moved / dropped', (
            f"positives {nodata['positives_redrawn']} / {nodata['positives_dropped']}, "
            f"negatives {nodata['negatives_redrawn']} / {nodata['negatives_dropped']}")]
    draws = None if sampler is None else epoch_draws(sampler, pools)
    for row in draws_rows(draws):       # what one training epoch repeats and draws
        table.loc[len(table)] = list(row)
    first = '' if not draws or draws['drawn'] >= draws['items'] else f", first {draws['drawn']}"
    return {
        'pools': pools,     # the data is of these pools (and keeps their id unique meanwhile)
        'fractions': fractions,
        'overall': overall,
        'html': table.to_html(index=False, classes='stats-numbers', border=0),
        'titles': {
            'balance': 'Windows per category',
            'visible': f'Visible fraction of annotations (n={len(fractions)})',
            'negatives': f'Negatives: {pools.n_neg} found of {pools.n_neg_asked} asked',
            'coverage': f'Area covered: {overall:.1%} ({len(per_image)} images)',
            'sides': f'Window sides drawn (window_size_range, epoch {DRAW_EPOCH}{first})',
            'scales': f'Scales drawn (scale_range / output_dims / resolution, epoch '
                      f'{DRAW_EPOCH}{first})',
            'times': f'Time offsets drawn (time_steps, epoch {DRAW_EPOCH}{first})',
        },
        'draws': draws,
        **draws_columns(draws, pools.config),
        'balance': {'category': [str(c) for c in balance['category']],
                    'windows': [int(v) for v in balance['windows']],
                    'color': [str(c) for c in balance['color']]},
        'visible': {'left': edges[:-1], 'right': edges[1:], 'annotations': counts},
        'negatives': {'what': ['asked', 'found'],
                      'windows': [int(pools.n_neg_asked), int(pools.n_neg)],
                      'color': [views.OTHER_COLOR, views.NEG_COLOR]},
        'coverage': {'image': [str(g) for g in top['gid'].tolist()],
                     'covered': top['covered'].to_numpy(dtype=np.float64)},
    }


def epoch_draws(sampler, pools, epoch: int = DRAW_EPOCH, limit: int = DRAW_LIMIT) -> dict:
    """What one training epoch of the pools' config draws: repeated windows and the
    per-item draws, as ``SampleDataset(config, mode='train')`` and ``load_item(i, epoch=e)``
    give them (nothing is read).

    The epoch's items are :func:`sampler_core.torch.epoch_order` of the pools (its
    ``epoch_length``, else one per pool window; seed ``config.seed``); each item's target
    is completed by the sampler's own per-item step (``CocoSampler._config_target``: the
    draws of ``window_size_range`` / ``scale_range``, the ``output_dims`` and
    ``resolution`` scales, the ``time_steps`` frames), the one ``load_item`` uses.

    A window is repeated when an earlier item of the epoch has the same pool window
    (image, annotation and ``x0, y0, x1, y1``): the same pool index again
    (``epoch_length`` above the pools) or another pool row of the same window (balanced
    pools drawn with replacement, ``n_pos`` above the annotations).

    Args:
        sampler: the sampler the pools were drawn on (its ``regions`` are not read).
        pools: :class:`app.pools.Pools`.
        epoch: the epoch (>= 0).
        limit: the per-item draws of at most this many items (the epoch's first).

    Returns:
        ``{'items' (the epoch's length), 'counted' (items whose repeats are counted, at
        most REPEAT_LIMIT), 'pool_windows' (pool rows), 'distinct_pool_windows',
        'repeats' (items repeating a window), 'repeats_epoch' (of those, a pool index
        drawn again), 'repeats_pool' (another row of the same window), 'drawn' (items
        whose draws are below), 'sides' (window sides drawn, px, or None when
        window_size_range is off), 'scales' (each item's scale, y, or None when no scale
        varies by item), 'frames' (real frames per item, or None without time_steps),
        'offsets' (each time step's frame index minus the pool window's frame), 'errors'
        (items whose target could not be built: the first message)}``; arrays are numpy.

    Example:
        >>> from app.state import ExplorerState
        >>> s = ExplorerState(dataset='shapes8', n_pos=4, n_neg=0, backend=None,
        ...                   window_dims=(64, 64), window_size_range=[32, 48], epoch_length=10)
        >>> d = epoch_draws(s.sampler, s.pools)
        >>> d['items'], d['repeats'], d['repeats_epoch'], len(d['sides'])
        (10, 6, 6, 10)
        >>> bool(((d['sides'] >= 32) & (d['sides'] <= 48)).all())
        True
    """
    from sampler_core.torch import epoch_order
    cfg = pools.config
    table = pools.all
    n = len(table)
    length = n if cfg.epoch_length is None or n == 0 else int(cfg.epoch_length)
    counted = min(length, REPEAT_LIMIT)
    order = epoch_order(n, counted, epoch, cfg.seed) if n else np.zeros(0, dtype=np.int64)
    keys = table[['gid', 'aid', 'x0', 'y0', 'x1', 'y1']].to_numpy(dtype=np.float64)
    if n:
        uniq, window_id = np.unique(keys, axis=0, return_inverse=True)
        window_id = window_id.reshape(-1)
    else:
        uniq, window_id = keys, np.zeros(0, dtype=np.int64)
    repeats = counted - len(np.unique(window_id[order]))
    repeats_epoch = counted - len(np.unique(order))
    out = {'items': length, 'counted': counted, 'pool_windows': n,
           'distinct_pool_windows': len(uniq), 'repeats': int(repeats),
           'repeats_epoch': int(repeats_epoch), 'repeats_pool': int(repeats - repeats_epoch),
           'drawn': 0, 'sides': None, 'scales': None, 'frames': None, 'offsets': None,
           'errors': 0, 'error': None}
    want_scale = (cfg.scale_range is not None or cfg.output_dims is not None
                  or cfg.resolution is not None)
    if cfg.window_size_range is None and not want_scale and cfg.time_steps is None:
        return out
    cols = ('aid', 'gid', 'category_id', 'cx', 'cy', 'width', 'height')
    rows = {k: table[k].to_numpy() for k in cols}
    vid_gids = sampler.dset.index.vidid_to_gids
    imgs = sampler.dset.imgs
    sides, scales, frames, offsets = [], [], [], []
    for pool_index in order[:limit].tolist():
        tr = {k: rows[k][pool_index].item() for k in cols}
        try:
            sampler._config_target(tr, cfg, pool_index, epoch, pool_index, None)
        except (ValueError, KeyError, IndexError) as ex:
            out['errors'] += 1
            out['error'] = out['error'] or f'item of pool window {pool_index}: {ex}'
            continue
        out['drawn'] += 1
        if cfg.window_size_range is not None:
            sides.append(int(tr['window_dims'][0]))
        if want_scale:
            sc = tr.get('scale', 1.0)
            scales.append(float(sc[0] if isinstance(sc, tuple) else sc))
        if cfg.time_steps is not None:
            gid = rows['gid'][pool_index].item()
            here = list(vid_gids[imgs[gid]['video_id']]).index(gid)
            frames.append(len(tr['gids']))
            offsets.extend(int(t) - here for t in tr['time_indices'])
    if cfg.window_size_range is not None:
        out['sides'] = np.asarray(sides, dtype=np.int64)
    if want_scale:
        out['scales'] = np.asarray(scales, dtype=np.float64)
    if cfg.time_steps is not None:
        out['frames'] = np.asarray(frames, dtype=np.int64)
        out['offsets'] = np.asarray(offsets, dtype=np.int64)
    return out


def _value_bars(values, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(left, right, count)`` of integer ``values`` in ``[lo, hi]``: one bar per whole
    number when there are at most :data:`DRAW_BINS` * 3, else :data:`DRAW_BINS` bins."""
    if hi - lo + 1 <= DRAW_BINS * 3:
        edges = np.arange(lo, hi + 2, dtype=np.float64) - 0.5
    else:
        edges = np.linspace(lo - 0.5, hi + 0.5, DRAW_BINS + 1)
    counts, edges = np.histogram(values, bins=edges)
    return edges[:-1], edges[1:], counts


def draws_columns(draws: dict | None, config) -> dict:
    """The columns of the per-item draw plots (``sides``, ``scales``, ``times``:
    ``left``, ``right``, ``items``) of :func:`epoch_draws` ``draws`` (empty when off)."""
    out = {k: {'left': [], 'right': [], 'items': []} for k in DRAW_PLOTS}
    if not draws:
        return out
    if draws['sides'] is not None and len(draws['sides']):
        lo, hi = (int(v) for v in config.window_size_range)
        left, right, counts = _value_bars(draws['sides'], lo, hi)
        out['sides'] = {'left': left, 'right': right, 'items': counts}
    if draws['scales'] is not None and len(draws['scales']):
        sc = draws['scales']
        lo, hi = float(sc.min()), float(sc.max())
        if hi - lo < 1e-9 * max(1.0, abs(hi)):     # one value: one bar around it
            lo, hi = lo * 0.99, hi * 1.01 if hi > 0 else hi + 0.01
        counts, edges = np.histogram(sc, bins=DRAW_BINS, range=(lo, hi))
        out['scales'] = {'left': edges[:-1], 'right': edges[1:], 'items': counts}
    if draws['offsets'] is not None and len(draws['offsets']):
        off = draws['offsets']
        left, right, counts = _value_bars(off, int(off.min()), int(off.max()))
        out['times'] = {'left': left, 'right': right, 'items': counts}
    return out


def draws_rows(draws: dict | None) -> list[tuple[str, str]]:
    """Rows ``(statistic, value)`` of the numbers table for :func:`epoch_draws` ``draws``."""
    if not draws:
        return []
    d = draws
    counted = f" (first {d['counted']})" if d['counted'] < d['items'] else ''
    rows = [(f'epoch {DRAW_EPOCH} items (SampleDataset)',
             (f"{d['items']} from {d['pool_windows']} pool windows "
              f"({d['distinct_pool_windows']} distinct)")),
            ('items repeating a window' + counted,
             (f"{d['repeats']}: {d['repeats_epoch']} as epoch_length is above the pools, "
              f"{d['repeats_pool']} as the pools repeat a window (balance, n_pos above the "
              f"annotations)"))]
    first = f" (first {d['drawn']} items)" if d['drawn'] < d['items'] else ''
    if d['sides'] is not None and len(d['sides']):
        sides = d['sides']
        rows.append(('window sides drawn' + first,
                     f'{sides.min()}-{sides.max()} px, mean {sides.mean():.1f}'))
    if d['scales'] is not None and len(d['scales']):
        sc = d['scales']
        rows.append(('scales drawn' + first,
                     f'{sc.min():.3g}-{sc.max():.3g}, mean {sc.mean():.3g}'))
    if d['frames'] is not None and len(d['frames']):
        fr, off = d['frames'], d['offsets']
        rows.append(('frames per item' + first,
                     f'{fr.min()}-{fr.max()} (time offsets {off.min()} to {off.max()})'))
    if draws['errors']:
        rows.append(('items that cannot be read', f"{draws['errors']}: {draws['error']}"))
    return rows


#: the per-item draw plots (shown only when their option is on)
DRAW_PLOTS = ('sides', 'scales', 'times')


class StatsPlots:
    """The four statistics figures of one session and their sources; :meth:`show` puts new
    data into them in place.

    Attributes:
        figures: ``{'balance', 'visible', 'negatives', 'coverage'}`` -> Bokeh figure; also
            each per-item draw plot of :data:`DRAW_PLOTS` once it has been shown.
        sources: the same keys -> their ``ColumnDataSource``.
        span: the ``visible_thresh`` line of the visible-fraction plot.
    """

    def __init__(self):
        from bokeh.models import ColumnDataSource, FactorRange, Range1d, Span
        empty = stats_columns()
        self.sources = {k: ColumnDataSource(data=v) for k, v in empty.items()}
        src = self.sources
        self.figures = {
            'balance': _figure(FactorRange(), tooltips=[('category', '@category'),
                                                        ('windows', '@windows')]),
            'visible': _figure(Range1d(0, 1), tooltips=[('visible fraction', '@left{0.00}-@right{0.00}'),
                                                        ('annotations', '@annotations')]),
            'negatives': _figure(FactorRange(factors=['asked', 'found']),
                                 tooltips=[('negatives', '@what'), ('windows', '@windows')]),
            'coverage': _figure(FactorRange(), y_range=Range1d(0, 1),
                                tooltips=[('image', '@image'), ('covered', '@covered{0.0%}')]),
        }
        fig = self.figures
        fig['balance'].vbar(x='category', top='windows', width=0.8, source=src['balance'],
                            fill_color='color', line_color='color')
        fig['balance'].xaxis.major_label_orientation = math.pi / 4
        fig['balance'].xaxis.axis_label, fig['balance'].yaxis.axis_label = 'category', 'windows'
        fig['visible'].quad(left='left', right='right', bottom=0, top='annotations',
                            source=src['visible'], fill_color=GREY, line_color='white')
        fig['visible'].xaxis.axis_label = 'visible fraction'
        fig['visible'].yaxis.axis_label = 'annotations'
        self.span = Span(location=0.0, dimension='height', line_color='red', line_dash='dashed',
                         line_width=2)
        fig['visible'].add_layout(self.span)
        fig['negatives'].vbar(x='what', top='windows', width=0.8, source=src['negatives'],
                              fill_color='color', line_color='color')
        fig['negatives'].xaxis.axis_label = 'negatives'
        fig['negatives'].yaxis.axis_label = 'windows'
        fig['coverage'].vbar(x='image', top='covered', width=0.8, source=src['coverage'],
                             fill_color=views.POS_COLOR, line_color=views.POS_COLOR)
        fig['coverage'].xaxis.major_label_orientation = math.pi / 4
        fig['coverage'].xaxis.axis_label, fig['coverage'].yaxis.axis_label = 'image', 'covered'
        #: the panes of the figures; a per-item draw plot is hidden while its option is off,
        #: and its figure is made the first time it is shown (most sessions never draw per
        #: item: three figures fewer to build, send and walk, ~80 Bokeh models)
        self.panes = {k: pn.pane.Bokeh(f) for k, f in self.figures.items()}
        self.panes.update({k: pn.Column(visible=False, margin=0) for k in DRAW_PLOTS})
        self._shown = None

    def _draw_figure(self, name: str):
        """The figure of the per-item draw plot ``name`` (one of :data:`DRAW_PLOTS`)."""
        from bokeh.models import DataRange1d
        label, unit, tooltips = {
            'sides': ('window side drawn (px)', 'items',
                      [('side', '@left{0.0}-@right{0.0} px'), ('items', '@items')]),
            'scales': ('scale drawn (y)', 'items',
                       [('scale', '@left{0.000}-@right{0.000}'), ('items', '@items')]),
            'times': ('frame offset from the pool window\'s frame', 'time steps',
                      [('offset', '@left{0.0}-@right{0.0}'), ('time steps', '@items')]),
        }[name]
        fig = _figure(DataRange1d(), tooltips=tooltips)
        fig.quad(left='left', right='right', bottom=0, top='items', source=self.sources[name],
                 fill_color=GREY, line_color='white')
        fig.xaxis.axis_label, fig.yaxis.axis_label = label, unit
        return fig

    def show(self, data: dict, visible_thresh: float | None = None) -> None:
        """Show :func:`stats_data` ``data`` (nothing is sent when it is already shown) and
        move the ``visible_thresh`` line."""
        if data is not self._shown:
            self._shown = data
            for name in ('balance', 'coverage'):
                key = 'category' if name == 'balance' else 'image'
                self.figures[name].x_range.factors = list(data[name][key])
            for name, source in self.sources.items():
                source.data = dict(data[name])
                if name in self.figures:
                    self.figures[name].title.text = data['titles'][name]
            for name in DRAW_PLOTS:
                shown = bool(len(data[name]['items']))
                if shown and name not in self.figures:
                    self.figures[name] = self._draw_figure(name)
                    self.figures[name].title.text = data['titles'][name]
                    self.panes[name][:] = [pn.pane.Bokeh(self.figures[name])]
                if self.panes[name].visible != shown:
                    self.panes[name].visible = shown
        if visible_thresh is not None and self.span.location != float(visible_thresh):
            self.span.location = float(visible_thresh)

    def forget(self) -> None:
        """Drop the data shown (and the pools it holds): the session has ended."""
        self._shown = None

    def panel(self):
        """The figures in a two-column grid (Panel); the per-item draw plots last."""
        return pn.GridBox(*[self.panes[k] for k in
                            ('balance', 'visible', 'negatives', 'coverage', *DRAW_PLOTS)],
                          ncols=2)


def stats_columns() -> dict:
    """Empty columns of each statistics source (the plots before any pools are shown)."""
    return {'balance': {'category': [], 'windows': [], 'color': []},
            'visible': {'left': [], 'right': [], 'annotations': []},
            'negatives': {'what': [], 'windows': [], 'color': []},
            'coverage': {'image': [], 'covered': []},
            **{k: {'left': [], 'right': [], 'items': []} for k in DRAW_PLOTS}}


def _figure(x_range, y_range=None, tooltips=()):
    from bokeh.models import HoverTool
    from bokeh.plotting import figure
    kw = {} if y_range is None else {'y_range': y_range}
    fig = figure(width=PLOT_WIDTH, height=PLOT_HEIGHT, x_range=x_range, title=' ',
                 tools='pan,wheel_zoom,box_zoom,reset,save', toolbar_location='right', **kw)
    fig.add_tools(HoverTool(tooltips=list(tooltips)))
    fig.toolbar.logo = None
    fig.xgrid.grid_line_color = None
    return fig


class StatsView:
    """Methods of :class:`app.layout.Explorer` for this view (a mixin: they use
    the explorer's ``state`` and widgets)."""

    def _stats_key(self) -> tuple:
        """The statistics depend on the pools (a new object after every change that
        redraws them) and on the config fields of the per-item draws (:data:`DRAW_FIELDS`)."""
        s = self.state
        return (id(s.pools), tuple(repr(getattr(s, k)) for k in DRAW_FIELDS))

    def _stats_data(self) -> dict:
        """The statistics data of the current pools (computed here when no worker has)."""
        if self._stats_cache[0] != self._stats_key():
            self._stats_cache = self._compute_stats(self._snapshot())
        return self._stats_cache[1]

    @staticmethod
    def _compute_stats(snap: dict) -> tuple:
        """``(key, stats_data)`` of a :meth:`_snapshot` (runs on a worker thread in a served
        session)."""
        return snap['stats_key'], stats_data(snap['pools'], snap['dset'], snap['sampler'].regions,
                                             snap['pad'], snap['coverage'], snap['sampler'])

    def _build_stats(self) -> None:
        self._stats_plots = StatsPlots()
        self.stats_numbers = pn.pane.HTML('', css_classes=['stats-table'])
        self.stats = pn.Column(self.stats_numbers, self._stats_plots.panel(),
                               css_classes=['stats'])

    def _update_stats(self) -> None:
        d = self._stats_data()
        if self.stats_numbers.object != d['html']:
            self.stats_numbers.object = d['html']
        self._stats_plots.show(d, self.state.visible_thresh)
