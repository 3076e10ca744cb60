"""The image grid (app/browse.py): sort, filter and paging against a plain-Python
computation on the kwcoco dataset (exact gids per page), thumbnails (exact pixels),
the LRU cache, and the explorer's grid widgets (a click opens the image)."""
from __future__ import annotations

import base64
import collections
import math

import kwcoco
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.browse import (SORT_KEYS, BrowseFacts, ThumbnailCache, grid_order, grid_page,
                        make_thumbnails, thumbnail)

CATS = ['cat', 'dog', 'eel', 'fox']


def _dataset(folder, n_images=67, seed=0) -> kwcoco.CocoDataset:
    """Images with repeated names, ids not in dataset order, 0-7 annotations each."""
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(folder / 'black.png')
    cats = [{'id': 10 + i, 'name': name} for i, name in enumerate(CATS)]
    images, anns = [], []
    for gid in rng.permutation(np.arange(100, 100 + n_images)).tolist():
        images.append({'id': gid, 'file_name': str(folder / 'black.png'), 'width': 64,
                       'height': 48, 'name': f'n{rng.randint(0, 20):02d}'})
        for _ in range(rng.choice([0, 0, 1, 2, 3, 7])):
            x, y = rng.randint(0, 40), rng.randint(0, 30)
            anns.append({'id': len(anns) + 1, 'image_id': gid,
                         'category_id': 10 + int(rng.randint(0, 4)),
                         'bbox': [x, y, 8 + rng.randint(0, 10), 6 + rng.randint(0, 10)]})
    dset = kwcoco.CocoDataset({'categories': cats, 'images': images, 'annotations': anns})
    return dset


@pytest.fixture(scope='module')
def state(tmp_path_factory):
    from app.state import ExplorerState
    dset = _dataset(tmp_path_factory.mktemp('browse'))
    return ExplorerState(dataset=dset, backend=None, n_pos=25, n_neg=12,
                         window_dims=(16, 16), roots=[str(tmp_path_factory.getbasetemp())])


def expected_order(state, sort='id', descending=False, categories=(), min_annots=0,
                   max_annots=None, has_pos=False, has_neg=False) -> list[int]:
    """The grid's order, by plain Python over the kwcoco dataset and the pool tables."""
    data = state.shared.dset.dataset
    images = data['images']
    count = collections.Counter(a['image_id'] for a in data['annotations'])
    cats_of = collections.defaultdict(set)
    for a in data['annotations']:
        cats_of[a['image_id']].add(a['category_id'])
    want = {c['id'] for c in data['categories'] if c['name'] in categories}
    pos = collections.Counter(state.pools.pos['gid'].tolist())
    neg = collections.Counter(state.pools.neg['gid'].tolist())
    keep = [img for img in images
            if min_annots <= count[img['id']]
            and (max_annots is None or count[img['id']] <= max_annots)
            and (not categories or cats_of[img['id']] & want)
            and (not has_pos or pos[img['id']]) and (not has_neg or neg[img['id']])]
    value = {'name': lambda img: img['name'], 'id': lambda img: img['id'],
             'annotations': lambda img: count[img['id']],
             'windows': lambda img: pos[img['id']] + neg[img['id']]}[sort]
    # Python's sort is stable, also with reverse=True: ties stay in dataset order
    return [img['id'] for img in sorted(keep, key=value, reverse=descending)]


def test_dataset_has_ties_and_empty_images(state):
    names = [img['name'] for img in state.shared.dset.dataset['images']]
    assert len(set(names)) < len(names)
    facts = BrowseFacts.of(state.shared)
    assert (facts.n_annots == 0).any() and facts.n_annots.max() == 7
    assert BrowseFacts.of(state.shared) is facts             # built once per dataset


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sort=st.sampled_from(SORT_KEYS), descending=st.booleans(),
       categories=st.lists(st.sampled_from(CATS), max_size=2, unique=True),
       min_annots=st.integers(0, 3), max_annots=st.one_of(st.none(), st.integers(0, 7)),
       has_pos=st.booleans(), has_neg=st.booleans(), per_page=st.integers(1, 30),
       page=st.integers(0, 80))
def test_grid_pages_match_a_plain_python_computation(state, sort, descending, categories,
                                                     min_annots, max_annots, has_pos, has_neg,
                                                     per_page, page):
    query = dict(sort=sort, descending=descending, categories=categories,
                 min_annots=min_annots, max_annots=max_annots, has_pos=has_pos,
                 has_neg=has_neg)
    expected = expected_order(state, **query)
    facts = BrowseFacts.of(state.shared)
    gids, total = grid_page(facts, state.pools, page=page, per_page=per_page,
                            dset=state.shared.dset, **query)
    assert total == len(expected)
    last = max(0, math.ceil(len(expected) / per_page) - 1)
    shown = min(page, last)
    assert gids.tolist() == expected[shown * per_page:(shown + 1) * per_page]


def test_every_page_of_a_sort_together_is_the_whole_order_once(state):
    facts = BrowseFacts.of(state.shared)
    pages = [grid_page(facts, state.pools, page=p, per_page=10, sort='name')[0].tolist()
             for p in range(7)]
    assert sum(pages, []) == expected_order(state, sort='name')
    assert len(sum(pages, [])) == len(state.shared.dset.imgs) == 67


def test_window_sort_follows_new_pools(state):
    facts = BrowseFacts.of(state.shared)
    before = grid_order(facts, state.pools, sort='windows', descending=True).tolist()
    assert before == expected_order(state, sort='windows', descending=True)
    old = state.n_pos
    state.n_pos = 40
    try:
        after = grid_order(facts, state.pools, sort='windows', descending=True).tolist()
        assert after == expected_order(state, sort='windows', descending=True)
        assert after != before
    finally:
        state.n_pos = old


def test_bad_queries_name_the_bad_value(state):
    facts = BrowseFacts.of(state.shared)
    with pytest.raises(ValueError, match="'size'"):
        grid_order(facts, state.pools, sort='size')
    with pytest.raises(KeyError, match='owl'):
        grid_order(facts, state.pools, categories=['owl'], dset=state.shared.dset)
    with pytest.raises(ValueError, match='per_page=0'):
        grid_page(facts, state.pools, per_page=0)
    with pytest.raises(ValueError, match='pools'):
        grid_order(facts, None, has_pos=True)


def test_thumbnail_draws_the_box_at_its_pixels_in_its_category_colour(tmp_path):
    from app.state import ExplorerState
    Image.fromarray(np.zeros((200, 256, 3), np.uint8)).save(tmp_path / 'black.png')
    dset = kwcoco.CocoDataset()
    dset.add_category('thing', id=1)
    gid = dset.add_image(file_name=str(tmp_path / 'black.png'), width=256, height=200)
    dset.add_annotation(image_id=gid, category_id=1, bbox=[40, 20, 100, 60])
    state = ExplorerState(dataset=dset, backend=None, n_pos=1, roots=[str(tmp_path)])
    thumb = thumbnail(state.sampler, gid, size=128, colors={1: '#ff0000'})
    assert thumb.shape == (128, 128, 3) and thumb.dtype == np.uint8
    # read with stride 2 (256 / 128): 100 x 128 px, letterboxed with 14 black rows above;
    # the box ltrb (40, 20, 140, 80) -> (20, 10, 70, 40) -> rows 24..54, columns 20..70
    red = np.all(thumb == [255, 0, 0], axis=2)
    expected = np.zeros((128, 128), bool)
    expected[24, 20:71] = expected[54, 20:71] = True
    expected[24:55, 20] = expected[24:55, 70] = True
    assert (red == expected).all(), np.argwhere(red != expected)[:5]
    assert not thumb[~expected].any()                     # everything else stays black


def test_thumbnail_cache_is_an_lru_per_dataset_gid_and_size(state):
    cache = ThumbnailCache(max_items=3)
    gids = [int(g) for g in BrowseFacts.of(state.shared).gids[:4]]
    assert make_thumbnails(state.sampler, state.shared, gids[:3], 32, cache=cache) == 3
    assert make_thumbnails(state.sampler, state.shared, gids[:3], 32, cache=cache) == 0
    assert cache.get(state.shared, gids[0], 32, None) is not None    # now most recent
    make_thumbnails(state.sampler, state.shared, gids[3:], 32, cache=cache)
    assert len(cache) == 3
    assert cache.get(state.shared, gids[1], 32, None) is None        # the least recent went
    assert cache.get(state.shared, gids[0], 32, None)[:2] == b'\xff\xd8'   # a JPEG
    assert cache.get(state.shared, gids[0], 64, None) is None        # another size
    assert cache.get(object(), gids[0], 32, None) is None            # another dataset
    with pytest.raises(ValueError, match='0'):
        ThumbnailCache(max_items=0)


def test_unreadable_image_is_cached_as_its_message(tmp_path):
    from app.state import ExplorerState
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / 'ok.png')
    dset = kwcoco.CocoDataset()
    dset.add_category('thing', id=1)
    good = dset.add_image(file_name=str(tmp_path / 'ok.png'), width=20, height=20)
    bad = dset.add_image(file_name=str(tmp_path / 'gone.png'), width=20, height=20)
    (tmp_path / 'gone.png').write_bytes(b'not a png')
    state = ExplorerState(dataset=dset, backend=None, n_pos=0, n_neg=1, roots=[str(tmp_path)])
    cache = ThumbnailCache()
    make_thumbnails(state.sampler, state.shared, [good, bad], 32, cache=cache)
    assert isinstance(cache.get(state.shared, good, 32, None), bytes)
    assert f'image {bad} unreadable' in cache.get(state.shared, bad, 32, None)


def test_explorer_grid_pages_filters_and_opens_an_image(state):
    from app.layout import Explorer
    e = Explorer(state=state)
    q = e.grid_query
    shown = lambda: [it['key'] for it in e.grid_tiles.items]  # noqa: E731
    assert shown() == expected_order(state)[:24]
    assert 'page 1 of 3' in e.grid_status.object and 'thumbnails 24/24' in e.grid_status.object
    srcs = [it['src'] for it in e.grid_tiles.items]
    assert all(base64.b64decode(src.split(',', 1)[1])[:3] == b'\xff\xd8\xff' for src in srcs)
    assert [it['gid'] for it in e.grid_tiles.items] == shown()      # data-gid of each caption
    e.grid_next.clicks += 1
    assert q.page == 1 and shown() == expected_order(state)[24:48]
    e.grid_categories.value = ['eel']           # a filter goes back to the first page
    assert q.page == 0 and shown() == expected_order(state, categories=['eel'])[:24]
    e.grid_sort.value = 'annotations'
    e.grid_descending.value = True
    expected = expected_order(state, sort='annotations', descending=True, categories=['eel'])
    assert shown() == expected[:24]
    e.grid_tiles.clicked = [expected[3], 1]     # click -> the overview shows that image
    assert state.gid == expected[3]
    assert state.gid in e.image_select.options.values() and e.image_select.value == state.gid
    tones = [it['tone'] for it in e.grid_tiles.items]
    assert tones[3] == 'primary' and tones.count('primary') == 1
    e.grid_tiles.clicked = [10 ** 9, 2]         # an id the dataset lacks changes nothing
    assert state.gid == expected[3]
    e.grid_per_page.value = 48
    e.grid_categories.value = []
    assert shown() == expected_order(state, sort='annotations', descending=True)[:48]
    e.release()


def test_explorer_grid_follows_another_dataset():
    from app.demo import load_demo
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=2)
    e.grid_categories.value = ['star']
    e.state.dataset = 'shapes32'
    gids = [img['id'] for img in load_demo('shapes32').dataset['images']]
    assert e.grid_query.categories == [] and e.grid_query.page == 0
    assert [it['key'] for it in e.grid_tiles.items] == gids[:24]
    assert 'of 32' in e.grid_status.object and 'thumbnails 24/24' in e.grid_status.object
    e.release()
