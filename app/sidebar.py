"""The explorer's sidebar: dataset choice and upload, the label list (counts, colours,
show / hide), config import / export, messages."""
from __future__ import annotations

import html
import io
import os

import panel as pn

from app import uploads as upl
from app import views
from app.demo import DEMOS
from app.text import escape_markdown, text_options


#: most categories the label list shows (in id order); the rest are named by a count
LEGEND_LIMIT = 200


def _swatch(color: str) -> str:
    """HTML of a colour swatch (``color``: a palette ``'#rrggbb'``, never user text)."""
    return (f'<span class="swatch" data-color="{color}" style="display:inline-block;'
            f'width:14px;height:14px;background:{color};border:2px solid #000;'
            f'border-radius:3px;margin-top:6px"></span>')


class SidebarView:
    """Methods of :class:`app.layout.Explorer` for this view (a mixin: they use
    the explorer's ``state`` and widgets)."""

    def _channel_options(self) -> list:
        dset = self.state.shared.dset
        codes = sorted({img.get('channels') or 'r|g|b' for img in dset.imgs.values()})
        options = ['<all>']
        for code in codes:
            parts = code.split('|')
            for opt in [code] + (parts if len(parts) > 1 else []):
                if opt not in options:
                    options.append(opt)
        if self.state.channels and self.state.channels not in options:
            options.append(self.state.channels)
        return options

    def _channels_option(self, channels) -> str:
        """The channel widget's option of ``channels`` (added to its options when the state
        holds a code they lack, e.g. from a link: a Select would replace it otherwise)."""
        option = channels or '<all>'
        if option not in self.channels.options:
            self.channels.options = self._channel_options()
        return option

    def _build_time_widgets(self) -> None:
        """Widgets of the video time sampling and resolution fields, each with its
        field's documentation as tooltip."""
        s = self.state
        doc = {k: s.param[k].doc for k in ('time_steps', 'time_sampling', 'time_span',
                                          'resolution')}
        self.time_steps = pn.widgets.IntInput.from_param(
            s.param.time_steps, label='time_steps (videos; empty: one image)', start=1,
            description=doc['time_steps'])
        self.time_sampling = pn.widgets.Select.from_param(
            s.param.time_sampling, label='time_sampling', description=doc['time_sampling'])
        self.time_span = pn.widgets.IntInput.from_param(
            s.param.time_span, label='time_span (frames; empty: the video)', start=1,
            description=doc['time_span'])
        self.resolution = pn.widgets.TextInput(
            label='resolution (units per pixel; empty: none)', placeholder='e.g. 0.5 GSD',
            description=doc['resolution'])
        self._link('resolution', self.resolution, to_widget=_resolution_text,
                   to_state=_parse_resolution)

    def _dataset_info(self) -> str:
        s = self.state
        d = s.shared.dset
        return (f'**{escape_markdown(s.dataset_label)}**: {len(d.imgs)} images, '
                f'{len(d.anns)} annotations, {len(d.cats)} categories')

    def _on_message(self, event) -> None:
        msg = event.new
        if not msg:
            return
        self.alert.object = escape_markdown(msg['text'])   # user and dataset text: as text
        self.alert.alert_type = 'danger' if msg['level'] == 'error' else 'warning'
        self.alert.visible = True
        notes = pn.state.notifications
        if notes is not None:                  # notyf renders its message as HTML
            getattr(notes, msg['level'] if msg['level'] in ('error', 'warning', 'info')
                    else 'error')(html.escape(msg['text']), duration=8000)

    def _on_dataset(self, event) -> None:
        s = self.state
        self.dataset_info.object = self._dataset_info()
        self.categories.options = text_options(s.category_names)
        self.image_categories.options = text_options(s.category_names)
        self.uploads.acquire(self._owner, s.shared.key)   # opened by a link: held too
        self.channels.options = self._channel_options()
        self.alert.visible = False
        self._syncing = True
        try:
            self.demo_select.value = s.dataset if s.dataset in DEMOS else ''
        finally:
            self._syncing = False

    def _on_demo(self, event) -> None:
        if self._syncing or not event.new:
            return
        self.alert.visible = False
        self.state.dataset = event.new

    def _on_open(self, _=None) -> None:
        text = (self.path_input.value or '').strip()
        self.alert.visible = False
        if not text:
            self.state.notify('type the path of a .kwcoco.json file first')
            return
        self.state.dataset = text

    @staticmethod
    def _take_file(widget) -> tuple[str, bytes] | None:
        """The (name, bytes) of the file just uploaded to ``widget``; the widget keeps no copy."""
        files = widget.value or {}
        if not files:
            return None
        widget.param.update(value={}, mime_type={})
        name, data = next(iter(files.items()))
        return name, data.encode('utf8') if isinstance(data, str) else bytes(data)

    def _on_upload(self, event) -> None:
        got = self._take_file(self.upload)
        if got is None:
            return
        name = os.path.basename(got[0] or 'upload.kwcoco.json')
        try:
            fpath = self.uploads.add_dataset(self._owner, name, got[1])
        except (ValueError, TypeError, OSError) as ex:
            self.state.notify(str(ex))
            return
        self.alert.visible = False
        self.path_input.value = fpath
        self.state.dataset = fpath

    def _on_upload_refused(self, name: str, limit: int) -> None:
        self.state.notify(f'refused: {name} is larger than the upload limit of '
                          f'{upl.megabytes(limit)}')

    def _on_import(self, event) -> None:
        got = self._take_file(self.config_upload)
        if got is not None:
            self.alert.visible = False
            self.state.load_config(got[1])

    def release_uploads(self) -> list[str]:
        """This explorer's session has ended: release its uploads (the files nobody else
        holds are deleted, their shared samplers forgotten); return the deleted folders."""
        return self.uploads.release(self._owner)

    def _export(self):
        try:
            return io.StringIO(self.state.export_yaml())
        except Exception as ex:  # pragma: no cover - config fields are always valid
            self.state.notify(f'cannot export: {ex}')
            return io.StringIO('')

    # ------------------------------------------------------------ label list
    def _build_legend(self) -> None:
        """The label list: one row per category (swatch, show / hide toggle, counts); rows
        are rebuilt for a new dataset, their counts updated in place."""
        self.legend_rows = pn.Column(css_classes=['legend'], sizing_mode='stretch_width',
                                     max_height=420, scroll=True)
        self.legend_note = pn.pane.Markdown('', css_classes=['legend-note'])
        self._legend = {}          # category name -> (checkbox, counts pane)
        self._legend_dset = None
        self._rebuild_legend()
        s = self.state
        s.param.watch(lambda *_: self._rebuild_legend(), ['dataset_label'])
        s.param.watch(lambda *_: self._update_legend(),
                      ['search', 'image_categories', 'revision'])
        s.param.watch(self._legend_from_state, ['hidden_categories'])

    def _rebuild_legend(self) -> None:
        s = self.state
        dset = s.shared.dset
        if self._legend_dset is dset:
            return self._update_legend()
        self._legend_dset = dset
        rows, self._legend = [], {}
        hidden = set(s.hidden_categories)
        for cid in sorted(dset.cats)[:LEGEND_LIMIT]:
            name = dset.cats[cid]['name']
            color = views.category_colors(dset)[cid]
            box = pn.widgets.Checkbox(label=name, value=name not in hidden, width=150,
                                      css_classes=['legend-toggle', f'legend-cid-{cid}'])
            box.param.watch(lambda ev, name=name: self._on_legend_toggle(name, ev.new), 'value')
            counts = pn.pane.HTML('', css_classes=['legend-counts'], margin=(5, 0))
            self._legend[name] = (box, counts)
            rows.append(pn.Row(pn.pane.HTML(_swatch(color), width=18, margin=(0, 2)), box,
                               counts, css_classes=['legend-row'], margin=0))
        self.legend_rows[:] = rows
        more = len(dset.cats) - len(rows)
        self.legend_note.object = (f'*{more} more categories not listed*' if more > 0 else '')
        self._update_legend()

    def _update_legend(self) -> None:
        """Counts: annotations in the dataset · in the listed images · positive windows."""
        s = self.state
        table = s.shared.image_table
        from app.pools import filter_images
        listed = filter_images(table, s.search, s.image_categories, s.shared.dset)
        gids = None if len(listed) == len(table) else listed['gid'].tolist()
        counts = views.label_counts(s.shared.dset, gids, s.pools)
        for row in counts.itertuples(index=False):
            entry = self._legend.get(row.name)
            if entry is None:
                continue
            text = (f'<span title="annotations · in the listed images · positive windows">'
                    f'{row.annotations} · {row.in_filter} · {row.positives}</span>')
            if entry[1].object != text:
                entry[1].object = text

    def _on_legend_toggle(self, name: str, shown: bool) -> None:
        if self._syncing:
            return
        hidden = [n for n in self.state.hidden_categories if n != name]
        if not shown:
            hidden.append(name)
        self.state.hidden_categories = hidden

    def _legend_from_state(self, event) -> None:
        hidden = set(event.new)
        self._syncing = True
        try:
            for name, (box, _) in self._legend.items():
                if box.value != (name not in hidden):
                    box.value = name not in hidden
        finally:
            self._syncing = False

    def sidebar(self) -> list:
        cards = [
            pn.Card(self.demo_select, self.path_input, self.open_button, self.upload,
                    self.dataset_info, self.alert, title='Dataset', collapsed=False),
            pn.Card(pn.pane.Markdown('annotations · in the listed images · positive windows; '
                                     'untick to hide a category in every view',
                                     css_classes=['legend-help']),
                    self.legend_rows, self.legend_note, title='Labels', collapsed=False),
            pn.Card(self.window_mode, pn.Row(self.window_h, self.window_w),
                    pn.Row(self.pad_h, self.pad_w), self.pad_mode, self.scale, self.channels,
                    self.visible_thresh, self.with_annots, title='Windows'),
            pn.Card(self.categories, self.n_pos, self.n_neg, self.neg_ratio, self.neg_overlap,
                    self.max_nodata, self.seed, self.backend, self.gallery_size, self.detail_frames,
                    title='Pools'),
            pn.Card(self.time_steps, self.time_sampling, self.time_span, self.resolution,
                    title='Time and resolution', collapsed=True),
        ]
        if self.more is not None:
            cards.append(pn.Card(self.more, title='More config', collapsed=True))
        cards.append(pn.Card(self.download, self.config_upload, self.snippet, self.copy_button,
                             title='Config'))
        return cards


def _resolution_text(value) -> str:
    """The resolution widget's text of a state value (``''`` for None)."""
    return '' if value is None else str(value)


def _parse_resolution(text: str):
    """The state value of the resolution widget's text: None, a number, or the text
    (``"0.5 GSD"``); a bad one raises ValueError / TypeError naming it."""
    from sampler_core.resolution import parse_resolution
    text = (text or '').strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        parse_resolution(text)
        return text
