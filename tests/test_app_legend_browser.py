"""The sidebar's label list in a real browser (Playwright driving Debian's chromium): its
swatches have the overview's colours and a toggle hides / shows a category's annotations.

Every wait is on a condition, never a fixed sleep; a missing chromium FAILS the test.
"""
from __future__ import annotations

import re

import pytest

from app.browser import spawn_server, stop_server
from browser_util import ARTIFACTS, chromium_page, wait_until

TIMEOUT = 30_000  # ms

# {category name: [colours]} of the annotations the overview's glyphs hold in the page
_OVERVIEW_JS = '''
() => {
  if (!window.Bokeh || !window.Bokeh.documents.length) return null;
  const out = {};
  for (const m of window.Bokeh.documents[0].all_models) {
    const d = m.data_source && m.data_source.data;
    if (!d || !('aid' in d) || !('category' in d) || !('color' in d)) continue;
    for (let i = 0; i < d.aid.length; i++) {
      (out[d.category[i]] = out[d.category[i]] || new Set()).add(d.color[i]);
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v]]));
}
'''


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp('serve')
    proc, url = spawn_server(['--workdir', work / 'cache'], cwd=work)
    yield url
    stop_server(proc)


@pytest.fixture
def page(server, request):
    with chromium_page(request, TIMEOUT) as pg:
        yield pg


def test_browser_legend_toggle_hides_and_shows_a_category(server, page):
    from playwright.sync_api import expect
    from sampler_core.demo import load_demo
    dset = load_demo('shapes8')        # the served demo: open an image of several categories
    gid = max(dset.imgs, key=lambda g: len({dset.anns[a]['category_id']
                                            for a in dset.index.gid_to_aids[g]}))
    cats = {dset.cats[dset.anns[a]['category_id']]['name'] for a in dset.index.gid_to_aids[gid]}
    assert len(cats) >= 2
    page.goto(f'{server}?gid={gid}')
    page.locator('.overview canvas').first.wait_for(state='visible')
    shown = {}

    def overview_categories():
        shown.clear()
        shown.update(page.evaluate(_OVERVIEW_JS) or {})
        return shown

    wait_until(lambda: set(overview_categories()) == cats, page)
    before = dict(shown)
    boxes = page.locator('.legend-toggle input[type=checkbox]')
    swatches = page.locator('.swatch')
    expect(boxes.first).to_be_visible()
    assert boxes.count() == swatches.count() == len(dset.cats)
    # each swatch has the colour the overview draws its category in
    legend = {}
    for k in range(boxes.count()):
        name = boxes.nth(k).evaluate('e => e.nextElementSibling.textContent').strip()
        legend[name] = swatches.nth(k).get_attribute('data-color')
    for name, colors in before.items():
        assert colors == [legend[name]], (name, colors, legend[name])
    # untick one category: only its annotations leave the overview
    name = sorted(before)[0]
    toggle = boxes.nth(list(legend).index(name))
    toggle.click()
    wait_until(lambda: name not in overview_categories(), page)
    assert set(shown) == set(before) - {name}
    page.wait_for_url(re.compile(r'hidden_categories='))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / 'legend-hidden.png'), full_page=True)
    # tick it again: back
    toggle.click()
    wait_until(lambda: set(overview_categories()) == set(before), page)
