"""The explorer's detail pane: the window sampled where the overview was clicked."""
from __future__ import annotations

import holoviews as hv
import panel as pn

from app import views
from app.colors import halo_hook
from app.text import escape_markdown


class DetailView:
    """Methods of :class:`app.layout.Explorer` for this view (a mixin: they use
    the explorer's ``state`` and widgets)."""

    def _update_detail(self, event) -> None:
        s = self.state
        if event.name != 'click_xy' and s.click_xy is None:
            return                      # nothing shown: nothing to redo
        self.detail[:] = [self._detail(s.click_xy, s.revision)]

    def _detail(self, click, revision):
        s = self.state
        if click is None or s.gid is None:
            return self._detail_empty
        try:
            sample = views.detail_sample(s.sampler, s.to_config(), s.gid, *click,
                                         n_frames=s.detail_frames)
            element = views.detail_view(sample, s.shared.dset, hidden=s.hidden_ids)
        except Exception as ex:
            s.notify(f'cannot sample a window at {click}: {ex}')
            return pn.pane.Markdown(f'**cannot sample this window**: {escape_markdown(ex)}',
                                    width=420)
        h, w = element.get(0).data.shape[:2]
        scale = min(380 / h, 440 / w)
        plot = element.opts(
            hv.opts.RGB(frame_width=max(60, int(w * scale)), frame_height=max(60, int(h * scale)),
                        invert_yaxis=True, xlim=(0, w), ylim=(0, h),
                        title=f'window at ({click[0]:.0f}, {click[1]:.0f}), image {s.gid}'),
            hv.opts.Rectangles(fill_alpha=0, line_color='color', line_width=2, tools=['hover'],
                               hooks=[halo_hook]),
            hv.opts.Polygons(fill_color='color', line_color='color', fill_alpha=0.25,
                             tools=['hover'], hooks=[halo_hook]),
            hv.opts.Points(color='color', size=6, line_color='white', tools=['hover']),
            hv.opts.Overlay(show_legend=False))
        table = pn.pane.DataFrame(views.params_table(sample), index=False,
                                  css_classes=['params-table'], width=420)
        return pn.Column(pn.pane.HoloViews(plot), table)
