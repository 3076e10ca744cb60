"""app/tiles.py: one Bokeh model per grid page / gallery, refilled in place."""
from __future__ import annotations

import base64

from bokeh.document import Document

from app.tiles import Tiles, jpeg_src, tile


def test_tiles_refill_their_model_down_to_empty_and_back():
    """A gallery that loses every item (a pool that became empty) is an empty list where
    a list of dicts was: Panel 1.9 took that for Parameterized objects and raised
    'unhashable type: dict' (the explorer said 'could not update the view')."""
    t = Tiles(kind='neg', tile_px=32)
    model = t.get_root(Document())
    first = [tile(3, '#3 · img 1', src=jpeg_src(b'\xff\xd8\xff')), tile(4, '#4 · img 2')]
    t.items = first
    assert model.data.page == {'items': first}
    t.items = []
    assert model.data.page == {'items': []}
    t.items = first[:1]
    assert model.data.page['items'] == first[:1]
    assert base64.b64decode(model.data.page['items'][0]['src'].split(',', 1)[1]) == \
        b'\xff\xd8\xff'


def test_a_click_reports_the_tile_key_each_time():
    t = Tiles()
    seen = []
    t.on_click(seen.append)
    t.items = [tile('a', 'A'), tile(7, 'seven')]
    t.clicked = [7, 1]
    t.clicked = [7, 2]          # the same tile again is another click
    t.clicked = ['a', 3]
    assert seen == [7, 7, 'a']


def test_tile_texts_and_tooltip():
    it = tile(5, 'short…', caption=[('3 ann', ''), ('2', 'pos')], tone='primary', data_gid=5,
              title='5: a much longer name')
    assert it == {'key': 5, 'label': 'short…', 'title': '5: a much longer name', 'src': '',
                  'tone': 'primary', 'caption': [['3 ann', ''], ['2', 'pos']], 'gid': 5}
    assert tile(1, 'x')['title'] == 'x' and jpeg_src(None) == ''
