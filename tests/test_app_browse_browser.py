"""The image grid in a real browser (Playwright driving Debian's chromium): page, filter
by a category, click a thumbnail and see that image in the overview.

Waits are on conditions, never fixed sleeps; a missing chromium FAILS (never skips).
"""
from __future__ import annotations

import re

import pytest

from app.browser import spawn_server, stop_server
from browser_util import ARTIFACTS, chromium_page

TIMEOUT = 120_000  # ms, for every wait on a condition (the shared machine is slow)


def setup_module():
    from playwright.sync_api import expect
    expect.set_options(timeout=TIMEOUT)


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp('serve-grid')
    proc, url = spawn_server(['shapes32', '--workdir', work / 'cache'], cwd=work)
    yield url
    stop_server(proc)


@pytest.fixture
def page(request, served):
    with chromium_page(request, TIMEOUT) as pg:
        yield pg


def expected_gids(category=None) -> list[int]:
    """Image ids of shapes32 in dataset order (those with an annotation of ``category``),
    read from the kwcoco file, not through the app."""
    from app.demo import load_demo
    data = load_demo('shapes32').dataset
    cid = {c['name']: c['id'] for c in data['categories']}.get(category)
    with_cat = {a['image_id'] for a in data['annotations'] if a['category_id'] == cid}
    return [img['id'] for img in data['images'] if category is None or img['id'] in with_cat]


def shown_gids(page) -> list[int]:
    """The image ids of the grid's visible thumbnails, in page order."""
    captions = page.locator('.image-grid .grid-caption[data-gid]')
    return [int(captions.nth(k).get_attribute('data-gid')) for k in range(captions.count())]


def test_browser_grid_pages_filters_and_opens_an_image(served, page):
    from playwright.sync_api import expect
    page.goto(served)
    page.locator('.overview canvas').first.wait_for(state='visible')
    status = page.locator('.image-grid .grid-page')
    everything = expected_gids()
    assert len(everything) == 32
    expect(status).to_have_text(re.compile(r'page 1 of 2 · images 1-24 of 32 · thumbnails 24/24'))
    expect(page.locator('.image-grid .grid-caption[data-gid]')).to_have_count(24)
    assert shown_gids(page) == everything[:24]
    expect(page.locator('.image-grid .grid-thumb img').first).to_be_visible()
    # the views added after the page loaded are there: nothing moves the buttons any more
    page.locator('.stats-numbers').wait_for()
    expect(page.locator('.thumb').first).to_be_visible()
    expect(page.locator('.w-search input').first).to_be_visible()
    # page 2
    page.locator('.w-grid_next button').click()
    expect(status).to_have_text(re.compile(r'page 2 of 2 · images 25-32 of 32 · thumbnails 8/8'))
    expect(page.locator('.image-grid .grid-caption[data-gid]')).to_have_count(8)
    assert shown_gids(page) == everything[24:]
    # filter by a category: back to page 1, only the 28 images with a 'star'
    want = expected_gids('star')
    assert len(want) == 28
    page.locator('.w-grid_categories .choices').first.click()
    page.locator('.w-grid_categories .choices__item--choice', has_text=re.compile(r'^\s*star\s*$')).first.click()
    expect(status).to_have_text(re.compile(r'page 1 of 2 · images 1-24 of 28 · thumbnails 24/24'))
    expect(page.locator('.image-grid .grid-caption[data-gid]')).to_have_count(24)
    assert shown_gids(page) == want[:24]
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator('.image-grid').first.screenshot(path=str(ARTIFACTS / 'grid.png'))
    # click a thumbnail: the overview shows that image
    target = want[23]
    overview_status = page.locator('.status')
    assert overview_status.get_attribute('data-gid') != str(target)
    page.locator('.image-grid .grid-button button').nth(23).click()
    expect(overview_status).to_have_attribute('data-gid', str(target))
    expect(overview_status).to_contain_text(f'image {target} ')
    select = page.locator('.w-image_select select').first
    expect(select.locator('option:checked')).to_have_text(re.compile(rf'^{target}:'))
