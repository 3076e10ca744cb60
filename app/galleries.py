"""The explorer's galleries: the first positive and negative windows exactly as
``sampler.load_item`` returns them; a click finds one in the overview."""
from __future__ import annotations

import panel as pn

from app import views
from app.browse import encode_jpeg
from app.tiles import Tiles, jpeg_src, tile

#: side of a gallery thumbnail, pixels
THUMB = 150


#: JPEG quality of the thumbnails: a 150 px thumbnail is ~18 kB and 0.4 ms to encode (as a
#: PNG ~46 kB and 4 ms; twelve are sent per change to every session)
JPEG_QUALITY = 90


def draws_per_item(config) -> bool:
    """Whether ``config`` draws each item's window size or scale (``window_size_range``,
    ``scale_range``, ``output_dims``): then the gallery labels name what was drawn."""
    return any(getattr(config, k, None) is not None
               for k in ('window_size_range', 'scale_range', 'output_dims'))


def gallery_title(title: str, shown: int, total: int, config, note: str = '') -> str:
    """A gallery's Markdown title: how many items of the pool, their window and scale
    (:func:`app.views.window_summary`), a ``note`` (e.g. that windows repeat), and what the
    items draw (window side, scale) when the config draws them per item.

    Example:
        >>> from sampler_core import SamplingConfig
        >>> gallery_title('Positives', 2, 9, SamplingConfig(window_dims=(64, 64)))
        '**Positives**: first 2 of 9 (window 64x64), as sampler.load_item returns them'
        >>> gallery_title('Positives', 2, 9, SamplingConfig(window_dims=(64, 64), scale=0.5),
        ...               note='3 distinct: windows repeat')
        '**Positives**: first 2 of 9 (window 64x64 at scale 0.5; 3 distinct: windows repeat), as sampler.load_item returns them'
        >>> cfg = SamplingConfig(window_dims=(64, 64), window_size_range=[32, 48],
        ...                      scale_range=[0.5, 1.0])
        >>> text = gallery_title('Negatives', 2, 9, cfg)
        >>> text[text.index('load_item'):text.index(' returns')]
        'load_item(i, epoch=0)'
        >>> text[text.index('says'):]
        'says the window side drawn in 32-48 px and the scale drawn in 0.5-1.0'
    """
    note = f'; {note}' if note else ''
    text = (f'**{title}**: first {shown} of {total} ({views.window_summary(config)}{note}), '
            f'as sampler.load_item')
    if not draws_per_item(config):
        return text + ' returns them' + ('' if shown else ' — *none*')
    said = []
    if config.window_size_range is not None:
        lo, hi = config.window_size_range
        said.append(f'the window side drawn in {lo}-{hi} px')
    if config.scale_range is not None:
        lo, hi = config.scale_range
        said.append(f'the scale drawn in {lo}-{hi}')
    if config.output_dims is not None:
        said.append(f'the scale to output_dims {config.output_dims[0]}x{config.output_dims[1]}')
    return (text + '(i, epoch=0) returns them: each label says ' + ' and '.join(said)
            + ('' if shown else ' — *none*'))


class GalleriesView:
    """Methods of :class:`app.layout.Explorer` for this view (a mixin: they use
    the explorer's ``state`` and widgets)."""

    def _build_galleries(self) -> None:
        """A title and a :class:`app.tiles.Tiles` per pool (one Bokeh model each, refilled
        in place)."""
        s = self.state
        self._gallery_titles = {}
        self.gallery_tiles = {}
        rows = []
        for kind, title in (('pos', 'Positives'), ('neg', 'Negatives')):
            self._gallery_titles[kind] = pn.pane.Markdown(f'**{title}**')
            tiles = self.gallery_tiles[kind] = Tiles(kind=kind, tile_px=THUMB,
                                                     sizing_mode='stretch_width')
            tiles.on_click(lambda index: s.select_item(int(index)))
            rows += [self._gallery_titles[kind], tiles]
        self.galleries = pn.Column(*rows, sizing_mode='stretch_width', css_classes=['galleries'])

    def gallery_indices(self, kind: str) -> list:
        """The item indices the ``kind`` gallery shows, in order."""
        return [it['key'] for it in self.gallery_tiles[kind].items]

    def _gallery_key(self) -> tuple:
        s = self.state
        return (s.revision, s.gallery_size, id(s.pools), tuple(sorted(s.hidden_ids)))

    def _gallery_items(self) -> dict:
        """The gallery items of the current pools (computed here when no worker has)."""
        if self._gallery_cache[0] != self._gallery_key():
            self._gallery_cache = self._compute_galleries(self._snapshot())
        return self._gallery_cache[1]

    def _compute_galleries(self, snap: dict) -> tuple:
        """``(key, {kind: items})`` of a :meth:`_snapshot`: each window sampled, drawn and
        JPEG-encoded (runs on a worker thread in a served session)."""
        galleries = {kind: views.gallery(snap['sampler'], snap['pools'], kind,
                                         snap['gallery_size'], thumb=THUMB, colors=snap['colors'],
                                         hidden=snap['hidden'])
                     for kind in ('pos', 'neg')}
        for items in galleries.values():
            for it in items:
                it['jpeg'] = None if it['image'] is None else encode_jpeg(it['image'], JPEG_QUALITY)
                it['image'] = None          # only the JPEG is kept
        return snap['gallery_key'], galleries

    def _update_galleries(self) -> None:
        s = self.state
        galleries = self._gallery_items()
        if self._gallery_noted != self._gallery_cache[0]:
            self._gallery_noted = self._gallery_cache[0]
            errors = [it['error'] for items in galleries.values() for it in items if it['error']]
            if errors:
                s.notify(errors[0] + (f' (and {len(errors) - 1} more)' if len(errors) > 1 else ''))
        for kind, title in (('pos', 'Positives'), ('neg', 'Negatives')):
            items = galleries[kind]
            total = s.pools.n_pos if kind == 'pos' else s.pools.n_neg
            note = views.repeat_text(s.pools) if kind == 'pos' else ''
            self._gallery_titles[kind].object = gallery_title(title, len(items), total,
                                                              s.pools.config, note)
            tiles = []
            for it in items:
                mark = ' ★' if s.selected_item == it['index'] else ''
                drawn = views.drawn_text(it.get('window'), it.get('scale')) \
                    if draws_per_item(s.pools.config) else ''
                label = (f"#{it['index']} · img {it['gid']}{mark}"
                         + (f' · {drawn}' if drawn else '')
                         + (' · unreadable' if it['error'] else ''))
                tiles.append(tile(it['index'], label, src=jpeg_src(it['jpeg']),
                                  tone='warning' if mark else ''))
            self.gallery_tiles[kind].items = tiles
