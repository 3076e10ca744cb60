"""The explorer's sidebar: dataset choice and upload, config import / export, messages."""
from __future__ import annotations

import html
import io
import os

import panel as pn

from app import uploads as upl
from app import views
from app.demo import DEMOS
from app.text import escape_markdown, text_options


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
        self.colors = views.category_colors(s.shared.dset)
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

    def sidebar(self) -> list:
        cards = [
            pn.Card(self.demo_select, self.path_input, self.open_button, self.upload,
                    self.dataset_info, self.alert, title='Dataset', collapsed=False),
            pn.Card(self.window_mode, pn.Row(self.window_h, self.window_w),
                    pn.Row(self.pad_h, self.pad_w), self.pad_mode, self.scale, self.channels,
                    self.visible_thresh, self.with_annots, title='Windows'),
            pn.Card(self.categories, self.n_pos, self.n_neg, self.neg_ratio, self.neg_overlap,
                    self.seed, self.backend, self.gallery_size, self.detail_frames,
                    title='Pools'),
        ]
        if self.more is not None:
            cards.append(pn.Card(self.more, title='More config', collapsed=True))
        cards.append(pn.Card(self.download, self.config_upload, self.snippet, self.copy_button,
                             title='Config'))
        return cards
