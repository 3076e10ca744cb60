"""The explorer's overview: the image list, the image with its annotations and pool
windows, clicks on it, and the status line."""
from __future__ import annotations

import html
import os
import warnings
import weakref

import holoviews as hv
import numpy as np
import panel as pn

from app import views
from app.colors import halo_hook


#: hover of the overview's pool windows
WINDOW_HOVER = [('window', '@index'), ('kind', '@kind'), ('aid', '@aid')]
#: hover of the windows max_nodata_fraction dropped (dashed)
DROPPED_HOVER = [('window', '@kind (max_nodata_fraction)')]


def tap_selects_the_image_only(plot, element) -> None:
    """HoloViews hook of the overview's image: a click selects no annotation or window
    glyph (Bokeh would fade every other one until a later click); the click still
    reaches the Tap stream, which samples the window there."""
    from bokeh.models import TapTool
    image = plot.handles.get('glyph_renderer')
    for tool in plot.handles['plot'].tools:
        if isinstance(tool, TapTool) and image is not None and tool.renderers != [image]:
            tool.renderers = [image]


#: ms after the last wheel step before Bokeh reports a wheel zoom's new ranges (and the
#: server reads the image at the new resolution): a wheel zoom's ``RangesUpdate`` waits for
#: the end of the interaction, the figure's ``lod_timeout``, 500 ms by default; so the
#: sharper image followed a zoom half a second later than a pan
WHEEL_SETTLE_MS = 100


class OverviewView:
    """Methods of :class:`app.layout.Explorer` for this view (a mixin: they use
    the explorer's ``state`` and widgets)."""

    def _update_image_options(self) -> None:
        s = self.state
        from app.pools import filter_images
        table = filter_images(s.shared.image_table, s.search, s.image_categories, s.shared.dset)
        options = views.image_options(table)
        if s.gid is not None and s.gid not in options.values():
            row = s.shared.image_table[s.shared.image_table['gid'] == s.gid]
            if len(row):
                options = {row['label'].iloc[0]: s.gid, **options}
        self._syncing = True
        try:
            if options != self.image_select.options:
                self.image_select.options = options
            if s.gid in options.values():
                self.image_select.value = s.gid
        finally:
            self._syncing = False
        shown = min(len(table), len(options))
        self.image_count.object = (f'{len(table)} of {len(s.shared.image_table)} images match'
                                   + (f' (first {shown} listed)' if shown < len(table) else ''))

    def _update_frame_slider(self) -> None:
        s = self.state
        if s.gid is None:
            self.frame_slider.visible = False
            return
        frames = views.video_frames(s.shared.dset, s.gid)
        self._syncing = True
        try:
            if len(frames) > 1:
                self.frame_slider.param.update(end=len(frames) - 1, value=frames.index(s.gid),
                                               visible=True)
            else:
                self.frame_slider.visible = False
        finally:
            self._syncing = False

    def _on_frame(self, event) -> None:
        s = self.state
        if self._syncing or s.gid is None or event.new is None:
            return
        frames = views.video_frames(s.shared.dset, s.gid)
        if 0 <= event.new < len(frames):
            s.gid = frames[event.new]

    def _on_image_select(self, event) -> None:
        if not self._syncing and event.new is not None:
            self.state.gid = int(event.new)

    def _on_overview_gid(self, *events) -> None:
        """Another image: reuse the plot when it has the same size, else build a new one."""
        s = self.state
        gid = s.gid
        if gid is None:
            self.overview[:] = [pn.pane.Markdown('No image matches.')]
            self._ov_dims = None
            return
        dims = views.image_dims(s.sampler.dset, gid)
        dataset_changed = any(e.name == 'dataset_label' for e in events)
        if dims == self._ov_dims and not dataset_changed:
            self._ov_reset = True          # the hook puts the axes back on the whole image
            self._ov_stream.event(gid=gid)
        else:
            self._ov_stream = hv.streams.Stream.define('OverviewImage', gid=gid)()
            self.overview[:] = [self._overview_plot(dims)]
            self._ov_dims = dims

    def _overview_plot(self, dims):
        """The overview plot: image (refined on zoom), annotations, pool windows.

        One plot serves every image of size ``dims``; the image shown is the
        ``gid`` of ``self._ov_stream``.
        """
        s = self.state
        height, width = max(1, dims[0]), max(1, dims[1])   # an image of no size: a 1 px plot
        ov = self._ov_stream
        last = {'gid': None, 'ann_gid': None}

        def image(gid, with_annots, hidden_categories, x_range=None, y_range=None):
            sampler = s.sampler
            if gid != last['gid']:        # a new image: the old zoom does not apply
                last['gid'] = gid
                x_range = y_range = None
            try:
                rgb, bounds, _ = views.image_region(sampler, gid, x_range, y_range)
                if 'boxes' in with_annots:   # many boxes in view: drawn into the image
                    dset = sampler.dset
                    _, burned = views.overview_annotations(dset, gid, x_range, y_range,
                                                           s.hidden_ids)
                    if len(burned):
                        _, ltrb, cids = views.image_boxes(dset, gid)
                        colors = views.category_colors(dset)
                        rgb = views.burn_boxes(rgb.copy(), bounds, ltrb[burned], [
                            colors.get(c, views.UNKNOWN) for c in cids[burned].tolist()])
                return views.rgb_element(rgb, bounds)
            except Exception as ex:
                s.notify(f'cannot read image {gid}: {ex}')
                return views.rgb_element(np.zeros((2, 2, 3), np.uint8), (0, 0, width, height))

        def annots(gid, with_annots, hidden_categories, x_range=None, y_range=None):
            if gid != last['ann_gid']:
                last['ann_gid'] = gid
                x_range = y_range = None
            # an annotation that cannot be drawn is left out with a warning naming it
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                try:
                    dset = s.sampler.dset
                    aids, _ = views.overview_annotations(dset, gid, x_range, y_range,
                                                         s.hidden_ids)
                    overlay = views.annotation_overlay(dset, gid, with_annots,
                                                       views.category_colors(dset), s.hidden_ids,
                                                       aids)
                except Exception as ex:     # never lose the overview to one annotation
                    s.notify(f'cannot draw the annotations of image {gid}: {ex}')
                    return views.annotation_overlay(s.sampler.dset, gid, ())
            if caught:
                s.notify(str(caught[0].message), level='warning')
            return overlay

        # the hook is kept in HoloViews' process-wide option store (with the element's
        # options): it refers to this session weakly, or a closed session is never freed
        me, ov_ref = weakref.ref(self), weakref.ref(ov)

        def title(plot, element):
            explorer, stream = me(), ov_ref()
            if explorer is None or stream is None or explorer.state.sampler is None:
                return
            gid = stream.gid
            img = explorer.state.sampler.dset.imgs.get(gid, {})
            plot.handles['plot'].title.text = (
                f'image {gid}: {os.path.basename(img.get("file_name") or "")}'[:80])
            if explorer._ov_reset:
                explorer._ov_reset = False
                xr, yr = plot.handles['x_range'], plot.handles['y_range']
                xr.start, xr.end = 0, width
                yr.start, yr.end = (height, 0) if yr.start > yr.end else (0, height)

        # one set of streams for both layers: a pan or zoom triggers one refresh of the
        # overlay, not one per layer
        streams = [ov, hv.streams.Params(s, ['with_annots', 'hidden_categories']),
                   hv.streams.RangeXY()]
        rgb = hv.DynamicMap(image, streams=streams)
        ann = hv.DynamicMap(annots, streams=streams)
        tap = hv.streams.Tap(source=rgb, x=None, y=None)
        tap.add_subscriber(self._on_tap)
        ann_hover = [('aid', '@aid'), ('category', '@category'), ('area', '@area{0}')]

        def windows_layer(plot, element):
            explorer = me()
            if explorer is not None and 'windows' not in plot.handles:
                plot.handles['windows'] = explorer._windows_layer(plot.handles['plot'])

        frame_w = 640
        frame_h = max(120, min(720, int(round(frame_w * height / max(width, 1)))))
        plot = (rgb * ann).opts(
            hv.opts.RGB(frame_width=frame_w, frame_height=frame_h, invert_yaxis=True,
                        xlim=(0, width), ylim=(0, height), tools=['tap'],
                        hooks=[title, tap_selects_the_image_only],
                        active_tools=['wheel_zoom', 'tap'], default_tools=['pan', 'wheel_zoom',
                                                                           'box_zoom', 'reset']),
            hv.opts.Rectangles(fill_alpha=0.0, line_width=2),
            hv.opts.Rectangles('Boxes', line_color='color', tools=['hover'],
                               hover_tooltips=ann_hover, hooks=[halo_hook]),
            hv.opts.Polygons(fill_color='color', line_color='color', fill_alpha=0.25,
                             line_width=1, tools=['hover'], hover_tooltips=ann_hover,
                             hooks=[halo_hook]),
            hv.opts.Points(color='color', size=5, line_color='white',
                           tools=['hover'], hover_tooltips=ann_hover),
            hv.opts.Overlay(show_legend=False, hooks=[windows_layer],
                            lod={'timeout': WHEEL_SETTLE_MS}),
        )
        return pn.pane.HoloViews(plot, linked_axes=False)

    def _windows_layer(self, fig):
        """Draw the pool windows on the overview's Bokeh figure ``fig`` (on top of the
        annotations) as one glyph; return its source, which :meth:`_update_windows` refills
        in place. (A window change is a new ``data`` of one source: no HoloViews re-render
        of the overlay, no new models for Bokeh to walk.) Below them, dashed, the windows
        ``max_nodata_fraction`` dropped (:func:`app.views.dropped_columns`), a second source
        refilled with the first."""
        from bokeh.models import ColumnDataSource, HoverTool
        dropped = ColumnDataSource(views.dropped_columns(self.state.pools, self.state.gid))
        dashed = fig.quad(left='x0', right='x1', top='y1', bottom='y0', source=dropped,
                          line_color='color', fill_alpha=0.0, line_width=2, line_dash='dashed')
        fig.add_tools(HoverTool(renderers=[dashed], tooltips=DROPPED_HOVER))
        source = ColumnDataSource(self._window_columns())
        glyph = fig.quad(left='x0', right='x1', top='y1', bottom='y0', source=source,
                         line_color='color', fill_color='color', fill_alpha=0.06,
                         line_width='width')
        fig.add_tools(HoverTool(renderers=[glyph], tooltips=WINDOW_HOVER))
        self._dropped_sources()[source] = dropped
        self._window_sources.add(source)
        return source

    def _dropped_sources(self):
        """Each shown overview's pool-window source -> its dropped-window source (weak)."""
        found = self.__dict__.get('_dropped_of')
        if found is None:
            found = self.__dict__['_dropped_of'] = weakref.WeakKeyDictionary()
        return found

    def _window_columns(self) -> dict:
        s = self.state
        click = s.click_xy
        cw = None if click is None else views.click_window(s.pools.config, *click)
        return views.window_columns(s.pools, s.gid, s.selected_item, cw)

    def _update_windows(self, *events) -> None:
        """Put the current pool windows into every shown overview's windows source."""
        sources = list(self._window_sources)
        if not sources or self.state.pools is None:
            return
        data = self._window_columns()
        dropped = views.dropped_columns(self.state.pools, self.state.gid)
        pairs = self._dropped_sources()
        # a click reaches here from HoloViews' Tap callback, which Panel runs without the
        # document lock: Bokeh models changed there must go through ``unlocked``
        with pn.io.unlocked():
            for source in sources:
                if source.data != data:
                    source.data = dict(data)
                other = pairs.get(source)
                if other is not None and other.data != dropped:
                    other.data = dict(dropped)

    def _on_tap(self, x=None, y=None) -> None:
        if x is None or y is None:
            return
        self.state.click_xy = (float(x), float(y))

    def _coverage(self):
        """``views.coverage`` of the current pools (cached per revision)."""
        s = self.state
        key = (s.revision, id(s.pools), tuple(s.pad))
        if getattr(self, '_coverage_cache', (None,))[0] != key:
            self._coverage_cache = (key, views.coverage(s.pools, s.shared.dset, s.pad))
        return self._coverage_cache[1]

    def _status(self, revision, gid=None) -> str:
        s = self.state
        _, overall = self._coverage()
        text = views.summary(s.pools, overall)
        return (f'<div class="status" data-revision="{revision}" data-gid="{gid}">'
                f'image {gid} · {html.escape(text)}</div>')
