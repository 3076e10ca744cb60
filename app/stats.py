"""The explorer's pool statistics: class balance, visible fractions, negatives found,
image area covered."""
from __future__ import annotations

import holoviews as hv
import panel as pn

from app import views


class StatsView:
    """Methods of :class:`app.layout.Explorer` for this view (a mixin: they use
    the explorer's ``state`` and widgets)."""

    def _stats_key(self) -> tuple:
        s = self.state
        return (s.revision, id(s.pools))

    def _stats_data(self) -> dict:
        """The statistics data of the current pools (computed here when no worker has)."""
        if self._stats_cache[0] != self._stats_key():
            self._stats_cache = self._compute_stats(self._snapshot())
        return self._stats_cache[1]

    @staticmethod
    def _compute_stats(snap: dict) -> tuple:
        """``(key, data)`` of a :meth:`_snapshot`: visible fractions and coverage (runs on a
        worker thread in a served session)."""
        fr = views.visible_fractions(snap['sampler'].regions, snap['pools'], snap['pad'])
        per_image, overall = snap['coverage']
        return snap['stats_key'], {'fr': fr, 'per_image': per_image, 'overall': overall}

    def _build_stats(self) -> None:
        """Four plots that update their data in place (DynamicMaps on a tick stream)."""
        s = self.state
        self._stats_tick = hv.streams.Stream.define('StatsTick', tick=0)()
        size = dict(width=400, height=260, framewise=True, tools=['hover'])

        def balance(tick):
            return views.class_balance_plot(s.pools, s.shared.dset)

        def visible(tick):
            fr = self._stats_data()['fr']
            return views.visible_histogram(fr, s.visible_thresh).relabel(
                f'Visible fraction of annotations (n={len(fr)})')

        def negatives(tick):
            return views.negatives_plot(s.pools)

        def covered(tick):
            d = self._stats_data()
            return views.coverage_plot(d['per_image'], d['overall'], gids=s.shared.dset.imgs)

        plots = [
            hv.DynamicMap(balance, streams=[self._stats_tick]).opts(
                xrotation=45, color='category', cmap='Category20', show_legend=False, **size),
            hv.DynamicMap(visible, streams=[self._stats_tick]).opts(
                hv.opts.Histogram(color='#64748b', **size),
                hv.opts.VLine(color='red', line_dash='dashed'),
                hv.opts.Overlay(show_legend=False)),
            hv.DynamicMap(negatives, streams=[self._stats_tick]).opts(
                color='negatives', cmap=['#94a3b8', views.NEG_COLOR], show_legend=False,
                **size),
            hv.DynamicMap(covered, streams=[self._stats_tick]).opts(
                ylim=(0, 1), xrotation=45, color=views.POS_COLOR, **size),
        ]
        self.stats_numbers = pn.pane.HTML('', css_classes=['stats-table'])
        self.stats = pn.Column(
            self.stats_numbers,
            pn.GridBox(*[pn.pane.HoloViews(p, linked_axes=False) for p in plots], ncols=2),
            css_classes=['stats'])

    def _update_stats(self) -> None:
        s = self.state
        d = self._stats_data()
        numbers = views.stats_table(s.pools, d['fr'], d['overall'])
        self.stats_numbers.object = numbers.to_html(index=False, classes='stats-numbers',
                                                    border=0)
        self._stats_tick.event(tick=s.revision)
