"""The explorer's pool statistics: class balance, visible fractions, negatives found,
image area covered.

The four plots are Bokeh figures built once per session (:class:`StatsPlots`); a change of
the pools replaces the data of their ``ColumnDataSource`` s, their category factors and
titles, and nothing else: no model is created, no HoloViews plot re-rendered, and Bokeh
never re-walks the page's models for it (with 20 sessions on 2 cores, re-rendering four
HoloViews plots per change was about half of the server's time).

What they show is plain data computed by :func:`stats_data` from the pools only (on a
worker thread in a served session): a change that keeps the pools (a ``read`` field of
:attr:`sampler_core.SamplingConfig.FIELD_ROLES`, e.g. ``visible_thresh``) computes nothing
and only moves the ``visible_thresh`` line.

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

#: bar colours of the class-balance plot when its table has no ``color`` column (row order)
BALANCE_PALETTE = 'Category20_20'
#: colour of the visible-fraction bars, and of the ``negatives asked`` bar
GREY, LIGHT_GREY = '#64748b', '#94a3b8'
#: size of each statistics plot, pixels
PLOT_WIDTH, PLOT_HEIGHT = 400, 260
#: images in the coverage plot (the most covered first)
COVERAGE_LIMIT = 30
#: bins of the visible-fraction histogram over [0, 1]
VISIBLE_BINS = 20


def _balance_colors(table) -> list[str]:
    """The bars' colours: the class-balance table's own ``color`` column when it has one,
    else a Category20 colour per row. (Colours are chosen apart from the counts, so that
    another colour rule only changes this function or the table.)"""
    if 'color' in table:
        return [str(c) for c in table['color']]
    from bokeh import palettes
    palette = getattr(palettes, BALANCE_PALETTE)
    return [palette[i % len(palette)] for i in range(len(table))]


def stats_data(pools, dset, regions, pad=None, coverage=None) -> dict:
    """What the statistics show, as plain data (lists and arrays, no models).

    Args:
        pools: :class:`app.pools.Pools`.
        dset: the ``kwcoco.CocoDataset``.
        regions: the session sampler's ``regions`` (for the visible fractions).
        pad: ``(ph, pw)`` of the windows (default: the pools' config's).
        coverage: ``(per_image, overall)`` of :func:`app.views.coverage` when already
            computed (the status line has it), else computed here.

    Returns:
        ``{'pools', 'fractions', 'overall', 'html', 'titles': {plot: text}, 'balance',
        'visible', 'negatives', 'coverage'}``; the last four are the column dicts of the
        plots' sources: ``balance`` (``category``, ``windows``, ``color``), ``visible``
        (``left``, ``right``, ``annotations``: histogram bins over [0, 1]),
        ``negatives`` (``what`` = asked / found, ``windows``, ``color``), ``coverage``
        (``image``, ``covered``: the :data:`COVERAGE_LIMIT` most covered images).
    """
    pad = tuple(pools.config.pad) if pad is None else tuple(pad)
    fractions = views.visible_fractions(regions, pools, pad)
    per_image, overall = coverage if coverage is not None else views.coverage(pools, dset, pad)
    balance = views.class_balance(pools, dset)
    counts, edges = np.histogram(fractions, bins=VISIBLE_BINS, range=(0.0, 1.0))
    top = views.top_covered(per_image, COVERAGE_LIMIT, dset.imgs)
    table = views.stats_table(pools, fractions, overall)
    nodata = getattr(pools, 'nodata_stats', None) or {}
    if nodata.get('max_nodata_fraction') is not None:   # what max_nodata_fraction did
        table.loc[len(table)] = ['padded windows moved / dropped', (
            f"positives {nodata['positives_redrawn']} / {nodata['positives_dropped']}, "
            f"negatives {nodata['negatives_redrawn']} / {nodata['negatives_dropped']}")]
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
        },
        'balance': {'category': [str(c) for c in balance['category']],
                    'windows': [int(v) for v in balance['windows']],
                    'color': _balance_colors(balance)},
        'visible': {'left': edges[:-1], 'right': edges[1:], 'annotations': counts},
        'negatives': {'what': ['asked', 'found'],
                      'windows': [int(pools.n_neg_asked), int(pools.n_neg)],
                      'color': [LIGHT_GREY, views.NEG_COLOR]},
        'coverage': {'image': [str(g) for g in top['gid'].tolist()],
                     'covered': top['covered'].to_numpy(dtype=np.float64)},
    }


class StatsPlots:
    """The four statistics figures of one session and their sources; :meth:`show` puts new
    data into them in place.

    Attributes:
        figures: ``{'balance', 'visible', 'negatives', 'coverage'}`` -> Bokeh figure.
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
        self._shown = None

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
                self.figures[name].title.text = data['titles'][name]
        if visible_thresh is not None and self.span.location != float(visible_thresh):
            self.span.location = float(visible_thresh)

    def forget(self) -> None:
        """Drop the data shown (and the pools it holds): the session has ended."""
        self._shown = None

    def panel(self):
        """The four figures in a two-column grid (Panel)."""
        return pn.GridBox(*[pn.pane.Bokeh(self.figures[k]) for k in
                            ('balance', 'visible', 'negatives', 'coverage')], ncols=2)


def stats_columns() -> dict:
    """Empty columns of each statistics source (the plots before any pools are shown)."""
    return {'balance': {'category': [], 'windows': [], 'color': []},
            'visible': {'left': [], 'right': [], 'annotations': []},
            'negatives': {'what': [], 'windows': [], 'color': []},
            'coverage': {'image': [], 'covered': []}}


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
        """The statistics depend on the pools only (a new object after every change that
        redraws them)."""
        return (id(self.state.pools),)

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
                                             snap['pad'], snap['coverage'])

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
