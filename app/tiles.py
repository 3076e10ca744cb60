"""A wrapping row of picture tiles drawn by the browser from one list: the image grid's
page and the galleries.

Why one component: a page of 24-48 thumbnails built from Panel panes and buttons is ~100
Bokeh models, and every label, caption or picture change re-lays out the whole page in
BokehJS (measured: ~3 s of browser CPU for one grid page, 0.4 s for the galleries after a
window change). Here a page is one model property (:attr:`Tiles.items`): the browser
rebuilds the tiles with plain DOM calls, once, and Bokeh's layout is not involved.

Every text is put in with ``textContent`` (never as HTML), so names from a dataset or a
user cannot inject markup. A click sets :attr:`Tiles.clicked` to ``[key, n]`` (``n`` counts
clicks, so the same tile clicked twice is two events).

Example:
    >>> from app.tiles import Tiles, tile, jpeg_src
    >>> t = Tiles(kind='grid')
    >>> t.items = [tile(7, 'img 7', caption=[('3 ann', '')], src=jpeg_src(b'...'))]
    >>> t.items[0]['key'], t.items[0]['src'][:23]
    (7, 'data:image/jpeg;base64,')
    >>> seen = []
    >>> t.on_click(seen.append)
    >>> t.clicked = [7, 1]
    >>> seen
    [7]
"""
from __future__ import annotations

import base64
from typing import ClassVar

import panel as pn
import param


def jpeg_src(jpeg: bytes | None) -> str:
    """A ``data:`` address of JPEG bytes (an empty string for None: the tile shows no
    picture)."""
    if not jpeg:
        return ''
    return 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode('ascii')


def tile(key, label: str, caption=(), src: str = '', tone: str = '', data_gid=None,
         title: str | None = None) -> dict:
    """One tile of :attr:`Tiles.items`.

    Args:
        key: what a click on the tile reports (an int or a str).
        label: the tile's button text.
        caption: ``[(text, css class), ...]`` shown under the button (plain text pieces).
        src: the picture (:func:`jpeg_src`), or ``''`` while it is being drawn.
        tone: ``'primary'``, ``'warning'`` or ``''``: the button's colour.
        data_gid: written as the caption's ``data-gid`` attribute (the grid's image id).
        title: the button's tooltip (default: the label), e.g. a name the label shortens.
    """
    return {'key': key, 'label': str(label), 'src': src, 'tone': tone,
            'title': str(label if title is None else title),
            'caption': [[str(text), str(cls)] for text, cls in caption],
            'gid': None if data_gid is None else int(data_gid)}


class Tiles(pn.reactive.ReactiveHTML):
    """Tiles of ``tile_px`` pictures with a button and a caption each (see the module).

    ``kind`` names the CSS classes, for tests and user styles: ``grid`` tiles have
    ``grid-thumb`` / ``grid-button`` / ``grid-caption``; gallery tiles (``pos``, ``neg``)
    have ``thumb`` / ``thumb-button-<kind>`` / ``thumb-caption``.
    """

    items = param.List(default=[], precedence=-1, doc='The tiles (:func:`tile`), in order.')
    page = param.Dict(default={'items': []}, doc=(
        'What the browser draws: ``{"items": items}`` (kept by :attr:`items`). A dict, because '
        'Panel 1.9 takes an empty list that replaces a list of dicts for a list of '
        'Parameterized objects and fails (unhashable type: dict).'))
    clicked = param.List(default=[], doc='``[key, n]`` of the latest click (set by the browser).')
    kind = param.String(default='grid', doc='CSS naming: grid, pos or neg.')
    tile_px = param.Integer(default=128, bounds=(16, 1024), doc='Side of a picture, px.')

    _template = '<div id="tiles" class="tiles"></div>'

    _stylesheets: ClassVar[list] = ['''
.tiles { display: flex; flex-wrap: wrap; gap: 4px; }
.tile { display: flex; flex-direction: column; margin: 2px; }
.tile img { display: block; background: #222; object-fit: contain; }
.tile .pic { background: #222; }
.tile button { width: 100%; margin: 2px 0 0 0; padding: 3px 4px; font-size: 12px;
  border: 1px solid #ccc; border-radius: 4px; background: #f8f8f8; color: #222;
  cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tile button:hover { background: #ececec; }
.tile button.primary { background: #0072b5; border-color: #0072b5; color: white; }
.tile button.warning { background: #ffc107; border-color: #ffc107; color: #222; }
.tile .cap { font-size: 11px; color: #555; overflow: hidden; white-space: nowrap; }
.tile .cap .pos { color: #2a9d2a; font-weight: 600; }
.tile .cap .neg { color: #c0392b; font-weight: 600; }
.tile .cap.error { color: #c0392b; }
''']

    _scripts: ClassVar[dict] = {
        'render': 'self.page()',
        'page': '''
const px = data.tile_px, kind = data.kind;
const grid = kind === 'grid';
const names = grid ? ['grid-thumb', 'grid-button', 'grid-caption']
                   : ['thumb', 'thumb-button-' + kind, 'thumb-caption'];
if (state.n === undefined) state.n = 0;
const frag = document.createDocumentFragment();
for (const it of data.page.items) {
  const box = document.createElement('div');
  box.className = 'tile';
  box.style.width = px + 'px';
  const pic = document.createElement('div');
  pic.className = 'pic ' + names[0];
  pic.style.width = px + 'px'; pic.style.height = px + 'px';
  if (it.src) {
    const img = document.createElement('img');
    img.src = it.src; img.width = px; img.height = px; img.alt = it.label;
    pic.appendChild(img);
  }
  const bw = document.createElement('div');
  bw.className = names[1];
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = it.label; b.title = it.title;
  if (it.tone) b.classList.add(it.tone);
  b.addEventListener('click', () => { state.n += 1; data.clicked = [it.key, state.n]; });
  bw.appendChild(b);
  box.append(pic, bw);
  if (it.caption.length || it.gid !== null) {
    const cap = document.createElement('div');
    cap.className = 'cap ' + names[2];
    if (it.gid !== null) cap.setAttribute('data-gid', String(it.gid));
    for (const [text, cls] of it.caption) {
      const span = document.createElement('span');
      span.textContent = text;
      if (cls) span.className = cls;
      cap.appendChild(span);
    }
    box.appendChild(cap);
  }
  frag.appendChild(box);
}
tiles.replaceChildren(frag);
''',
        'tile_px': 'self.page()',
        'kind': 'self.page()',
    }

    @param.depends('items', watch=True, on_init=True)
    def _send_items(self) -> None:
        self.page = {'items': list(self.items)}

    def on_click(self, callback) -> None:
        """Call ``callback(key)`` on every click of a tile."""
        self.param.watch(lambda event: event.new and callback(event.new[0]), ['clicked'])
