"""The explorer in a real browser (Playwright driving Debian's chromium).

The server is ``sampler-explorer serve --port 0`` in a subprocess; every wait is
on a condition (``expect`` / ``wait_for``), never a fixed sleep. Screenshots
of the main views go to ``test-artifacts/`` (also on failure).

Chromium must be installed (``scripts/run_tests.sh`` installs it): when it is
missing these tests FAIL, in CI and elsewhere.
"""
from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import pytest

from app.browser import launch_chromium, spawn_server, stop_server
from browser_util import ARTIFACTS, screenshot_if_failed, wait_until

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 30_000  # ms, for every wait on a condition


def setup_module():
    from playwright.sync_api import expect
    expect.set_options(timeout=TIMEOUT)


def launch_browser(playwright):
    """Debian's chromium; a missing browser is an error, never a skip."""
    try:
        return launch_chromium(playwright)
    except FileNotFoundError as ex:
        pytest.fail(f'{ex}; the browser tests cannot be skipped')


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp('serve')
    proc, url = spawn_server(['--workdir', work / 'cache'], cwd=work)
    yield url, work
    stop_server(proc)


@pytest.fixture(scope='module')
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={'width': 1500, 'height': 1300}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    n_failed = request.session.testsfailed
    yield pg
    screenshot_if_failed(pg, request, n_failed)
    context.close()


def shot(page, name, locator=None):
    ARTIFACTS.mkdir(exist_ok=True)
    target = locator if locator is not None else page
    kw = {} if locator is not None else {'full_page': True}
    target.screenshot(path=str(ARTIFACTS / f'{name}.png'), **kw)


def open_app(page, url):
    page.goto(url)
    page.locator('.overview canvas').first.wait_for(state='visible')
    status = page.locator('.status')
    status.wait_for()
    return status


def field(page, widget):
    """The <input> of the widget ``widget`` (an Explorer attribute: window_h, seed, ...)."""
    return page.locator(f'.w-{widget} input').first


def set_number(page, widget, value):
    """Type into an IntInput and commit with Enter."""
    box = field(page, widget)
    box.fill(str(value))
    box.press('Enter')


def settled_text(locator, pattern):
    """The text of ``locator`` once it matches ``pattern`` (a regex; waits, never reads once).

    Panel re-renders a pane by replacing its HTML, so a single read can land on a
    row whose cells are not all there yet; waiting for the full pattern cannot.
    """
    from playwright.sync_api import expect
    expect(locator).to_have_text(re.compile(pattern))
    return locator.text_content().strip()


def stat(page, name):
    row = page.locator('.stats-numbers tr', has_text=name).first
    return settled_text(row.locator('td').nth(1), r'\S')


def param_cell(page, name, pattern):
    """The value cell of the detail pane's params table in row ``name`` once it matches."""
    row = page.locator('.params-table tr', has_text=name)
    return settled_text(row.locator('td').last, pattern)


def test_browser_window_change_updates_preview_and_statistics(server, page):
    from playwright.sync_api import expect
    url, _ = server
    status = open_app(page, url)
    expect(status).to_contain_text('window 128x128')
    page.locator('.stats-numbers').wait_for()
    expect(page.locator('.thumb').first).to_be_visible()
    shot(page, 'main')
    before_cov = stat(page, 'image area covered')
    before_png = page.locator('.overview canvas').first.screenshot()
    set_number(page, 'window_h', 256)
    expect(status).to_contain_text('window 256x128')
    expect(page.locator('.stats-numbers tr', has_text='window (h x w)')).to_contain_text('256x128')
    cover = page.locator('.stats-numbers tr', has_text='image area covered').first
    expect(cover.locator('td').nth(1)).not_to_have_text(before_cov)
    canvas = page.locator('.overview canvas').first
    wait_until(lambda: canvas.screenshot() != before_png, page)   # the windows were redrawn
    shot(page, 'overview', page.locator('.overview').first)
    shot(page, 'statistics', page.locator('.stats').first)
    shot(page, 'galleries', page.locator('.galleries').first)
    # the state is in the URL: a new page with this link shows the same window
    page.wait_for_url(re.compile(r'window_dims='))
    other = page.context.new_page()
    status2 = open_app(other, page.url)
    expect(status2).to_contain_text('window 256x128')
    other.close()


def test_browser_click_samples_a_window_there(server, page):
    from playwright.sync_api import expect
    url, _ = server
    open_app(page, url)
    canvas = page.locator('.overview canvas').first
    box = canvas.bounding_box()
    page.mouse.click(box['x'] + box['width'] * 0.5, box['y'] + box['height'] * 0.5)
    number = r'-?\d+(\.\d+)?'
    center = param_cell(page, 'center (cx, cy)', rf'^\({number}, {number}\)$')
    cx, cy = (float(v) for v in center.strip('()').split(','))
    # the image is 600x600: a click in the middle of the plot lands near its centre
    assert 200 < cx < 400 and 200 < cy < 400, (cx, cy)
    offset = param_cell(page, 'offset (dx, dy)', r'^\(-?\d+, -?\d+\)$')
    dx, dy = (int(v) for v in offset.strip('()').split(','))
    assert (dx, dy) == (-math.floor(cx - 64), -math.floor(cy - 64))
    expect(page.locator('.detail canvas').first).to_be_visible()
    shot(page, 'detail', page.locator('.detail').first)


def test_browser_thumbnail_selects_its_image(server, page):
    from playwright.sync_api import expect
    url, _ = server
    open_app(page, url)
    button = page.locator('.thumb-button-neg button').nth(1)
    name = settled_text(button, r'img \d+')
    gid = int(re.search(r'img (\d+)', name).group(1))
    button.click()
    expect(page.locator('.thumb-button-neg button').nth(1)).to_contain_text('★')
    select = page.locator('.w-image_select select').first
    wait_until(lambda: select.locator('option:checked').inner_text().startswith(f'{gid}:'), page)


def test_browser_export_rebuilds_the_sampler(server, page, tmp_path):
    from playwright.sync_api import expect

    from app.state import ExplorerState
    from sampler_core import CocoSampler, SamplingConfig
    url, _ = server
    status = open_app(page, url)
    set_number(page, 'window_w', 96)
    expect(status).to_contain_text('window 128x96')
    set_number(page, 'seed', 3)
    expect(status).to_contain_text('seed 3')
    with page.expect_download() as info:
        page.get_by_text('Export config (YAML)').click()
    path = tmp_path / 'config.yaml'
    info.value.save_as(path)
    cfg = SamplingConfig.load(path)
    assert cfg.window_dims == (128, 96) and cfg.seed == 3 and cfg.dataset == 'shapes8'
    rebuilt = CocoSampler.from_config(str(path))
    ref = ExplorerState(dataset='shapes8', backend=None, window_dims=(128, 96), seed=3)
    n = ref.pools.n_pos + ref.pools.n_neg
    assert (rebuilt.regions.n_positives, rebuilt.regions.n_negatives) == (ref.pools.n_pos,
                                                                          ref.pools.n_neg)
    for i in range(n):
        assert rebuilt.load_item(i)['target']['space_slice'] == \
            ref.sampler.load_item(i)['target']['space_slice']


def test_browser_import_restores_the_widgets(server, page, tmp_path):
    from playwright.sync_api import expect

    from sampler_core import SamplingConfig
    url, _ = server
    status = open_app(page, url)
    cfg = SamplingConfig(dataset='shapes8', backend=None, window_dims=(72, 88), pad=(4, 2),
                         n_pos=5, n_neg=3, seed=9, visible_thresh=0.35)
    path = tmp_path / 'imported.yaml'
    cfg.dump(path)
    page.locator('.w-config_upload input[type=file]').set_input_files(str(path))
    expect(status).to_contain_text('window 72x88')
    expect(status).to_contain_text('5 positives, 3 negatives')
    expect(field(page, 'window_h')).to_have_value('72')
    expect(field(page, 'window_w')).to_have_value('88')
    expect(field(page, 'pad_h')).to_have_value('4')
    expect(field(page, 'pad_w')).to_have_value('2')
    expect(field(page, 'seed')).to_have_value('9')
    expect(field(page, 'n_pos')).to_have_value('5')
    expect(field(page, 'n_neg')).to_have_value('3')
    expect(page.locator('.explorer-alert')).to_be_hidden()


def test_browser_refuses_a_path_outside_the_roots(server, page):
    from playwright.sync_api import expect
    url, work = server
    status = open_app(page, url)
    outside = Path(work).parent / 'secret.kwcoco.json'
    outside.write_text('{}')
    for bad in ['/etc/passwd', os.path.join(str(work), '..', outside.name)]:
        field(page, 'path_input').fill(bad)
        page.locator('.w-open_button button').click()
        alert = page.locator('.explorer-alert')
        expect(alert).to_contain_text('refused')
        expect(alert).to_contain_text('outside the allowed folders')
    expect(page.locator('.notyf__toast, .notyf__message').first).to_be_visible()
    expect(status).to_contain_text('16 positives')     # the app keeps working
    shot(page, 'refused-path')


def test_browser_five_sessions_without_cross_talk(server, browser):
    from playwright.sync_api import expect
    url, _ = server
    contexts = [browser.new_context(viewport={'width': 1400, 'height': 1100}) for _ in range(5)]
    try:
        pages = [c.new_page() for c in contexts]
        for pg in pages:
            pg.set_default_timeout(TIMEOUT)
            pg.goto(url)
        statuses = []
        for pg in pages:
            pg.locator('.overview canvas').first.wait_for(state='visible')
            statuses.append(pg.locator('.status'))
        changes = [('window_h', 40, 'window 40x128'), ('window_w', 56, 'window 128x56'),
                   ('seed', 7, 'seed 7'), ('pad_h', 12, 'pad 12x0'),
                   ('n_pos', 5, '5 positives')]
        for pg, (label, value, _) in zip(pages, changes):
            set_number(pg, label, value)
        for st, (_, _, text) in zip(statuses, changes):
            expect(st).to_contain_text(text)
        # nobody sees another session's value: each page shows its own change only
        for k, (pg, st) in enumerate(zip(pages, statuses)):
            text = st.inner_text()
            for j, (widget, value, other) in enumerate(changes):
                if j != k:
                    assert other not in text, (k, j, text)
                    assert field(pg, widget).input_value() != str(value), (k, widget)
        shot(pages[0], 'session-0')
    finally:
        for c in contexts:
            c.close()


def test_browser_large_image_stays_downsampled(browser, tmp_path):
    """A 5000x4000 image: the page gets a downsampled picture, zoom refines it."""
    from playwright.sync_api import expect

    from app.demo import make_large_demo
    path = make_large_demo(n_images=1, width=5000, height=4000, n_annots=8, root=tmp_path)
    proc, url = spawn_server([path, '--workdir', tmp_path / 'cache'], cwd=tmp_path)
    try:
        context = browser.new_context(viewport={'width': 1400, 'height': 1100})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        sizes = []
        pg.on('websocket', lambda ws: ws.on('framereceived', lambda f: sizes.append(len(f))))
        pg.goto(url)
        pg.locator('.overview canvas').first.wait_for(state='visible')
        expect(pg.locator('.status')).to_contain_text('positives')
        html = pg.content()
        # a whole 5000x4000 RGB image would be 60 MB; nothing close is ever sent
        assert len(html) < 20_000_000 and max(sizes or [0]) < 8_000_000
        canvas = pg.locator('.overview canvas').first
        box = canvas.bounding_box()
        n_before = len(sizes)
        pg.mouse.move(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
        for _ in range(5):
            pg.mouse.wheel(0, -400)
        # the zoom asks the server for the visible region at a finer stride
        wait_until(lambda: len(sizes) > n_before and max(sizes[n_before:]) > 10_000, pg)
        assert max(sizes) < 8_000_000
        shot(pg, 'large-image-zoomed', pg.locator('.overview').first)
        context.close()
    finally:
        stop_server(proc)


def test_browser_link_reopens_the_same_view(server, page):
    """Config and UI values in the query string are applied when the page opens."""
    from urllib.parse import urlencode

    from playwright.sync_api import expect
    url, _ = server
    query = urlencode({'window_dims': '[80, 112]', 'pad': '[6, 2]', 'n_pos': 5, 'seed': 4,
                       'categories': '["star"]', 'with_annots': '["boxes"]', 'gid': 3,
                       'visible_thresh': 0.25})
    status = open_app(page, f'{url}?{query}')
    expect(status).to_contain_text('image 3 ·')
    expect(status).to_contain_text('5 positives')
    expect(status).to_contain_text('window 80x112, pad 6x2, seed 4')
    expect(field(page, 'window_h')).to_have_value('80')
    expect(field(page, 'pad_w')).to_have_value('2')
    expect(page.locator('.w-categories')).to_contain_text('star')
    expect(page.locator('.explorer-alert')).to_be_hidden()


def test_browser_square_windows_round_trip_through_the_link(server, page):
    """'square box' reaches the state, the status line and the URL; the link reopens it."""
    from playwright.sync_api import expect
    url, _ = server
    status = open_app(page, url)
    page.locator('.w-window_mode button', has_text='square box').click()
    expect(status).to_contain_text('window square box')
    expect(field(page, 'window_h')).to_be_disabled()
    wait_until(lambda: 'window_dims=square' in page.url, page)
    link = page.url
    page.goto('about:blank')
    status = open_app(page, link)
    expect(status).to_contain_text('window square box')
    expect(page.locator('.w-window_mode button', has_text='square box')).to_have_class(
        re.compile('active'))


def _export_from_page(page, path):
    """The config the page's 'Export config (YAML)' button downloads."""
    from sampler_core import SamplingConfig
    with page.expect_download() as info:
        page.get_by_text('Export config (YAML)').click()
    info.value.save_as(path)
    return SamplingConfig.load(path)


def test_browser_link_carries_every_config_field(browser, shapes_copy, tmp_path):
    """A link with every config field opens a page whose export has each of them; a field
    changed in the page is in its URL, and that URL opens it again (measured break 2:
    scale, balance, split_*, mode, grid_*, class_weights and pad_value were dropped)."""
    import json
    from urllib.parse import urlencode

    from playwright.sync_api import expect

    from app.link import URL_CONFIG_KEYS, encode
    root, path = shapes_copy
    cats = sorted(c['name'] for c in json.loads(path.read_text())['categories'])
    proc, url = spawn_server([path, '--workdir', tmp_path / 'cache'], cwd=tmp_path)
    try:
        wanted = {
            'dataset': os.path.realpath(path), 'backend': 'npy', 'window_dims': [80, 96],
            'pad': [4, 8], 'pad_mode': 'reflect', 'pad_value': 3.5, 'scale': 0.75,
            'channels': 'r|g|b', 'visible_thresh': 0.25, 'with_annots': ['boxes', 'keypoints'],
            'categories': cats[1:3], 'n_pos': 7, 'n_neg': 5, 'neg_to_pos_ratio': 0.5,
            'neg_overlap': 0.1, 'seed': 11, 'mode': 'random', 'grid_overlap': 0.25,
            'grid_edge': 'drop', 'balance': 'inverse', 'class_weights': {cats[1]: 2.0},
            'split_by': 'image', 'val_fraction': 0.3, 'split_seed': 5,
            'split_block': [300, 200], 'epoch_length': 50, 'scale_range': [0.5, 1.5],
            'window_size_range': [40, 80], 'output_dims': None,   # output_dims: not with scale
            'max_nodata_fraction': 0.2,
            # the dataset has no videos or resolutions: these keep their defaults
            'time_steps': None, 'time_sampling': 'contiguous', 'time_span': None,
            'resolution': None}
        assert set(wanted) == set(URL_CONFIG_KEYS)
        context = browser.new_context(viewport={'width': 1500, 'height': 1300},
                                      accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        status = open_app(page, url + '?' + urlencode({k: encode(v)
                                                       for k, v in wanted.items()}))
        expect(status).to_contain_text('window 80x96 at scale 0.75, pad 4x8, seed 11')
        expect(page.locator('.explorer-alert')).to_be_hidden()
        cfg = _export_from_page(page, tmp_path / 'opened.yaml').to_dict()
        for key, value in wanted.items():
            assert cfg[key] == value, key
        # a field changed in the page is in its URL; that URL opens it in a fresh page
        field(page, 'scale').fill('0.5, 0.25')
        field(page, 'scale').press('Enter')
        wait_until(lambda: urlencode({'scale': encode([0.5, 0.25])}) in page.url, page)
        other = context.new_page()
        other.set_default_timeout(TIMEOUT)
        open_app(other, page.url)
        expect(other.locator('.explorer-alert')).to_be_hidden()
        again = _export_from_page(other, tmp_path / 'reopened.yaml').to_dict()
        assert again == {**cfg, 'scale': [0.5, 0.25]}
        context.close()
    finally:
        stop_server(proc)


# ------------------------------------------------------------------ hardening (issue 13)
#: a text that runs a script wherever it is rendered as HTML
EVIL = '<img src=x onerror=alert(1)>'

#: every <img src="x"> in the page, shadow roots included (an injected EVIL makes one)
_INJECTED_IMAGES = '''() => {
    const found = [];
    const walk = (root) => root.querySelectorAll('*').forEach(el => {
        if (el.tagName === 'IMG' && el.getAttribute('src') === 'x') found.push(el.outerHTML);
        if (el.shadowRoot) walk(el.shadowRoot);
    });
    walk(document);
    return found;
}'''


def watch_dialogs(page) -> list:
    """Messages of every dialog (alert, confirm, ...) the page opens; each is dismissed."""
    seen = []

    def on_dialog(dialog):
        seen.append(dialog.message)
        dialog.dismiss()

    page.on('dialog', on_dialog)
    return seen


def assert_no_script_ran(page, dialogs):
    assert page.evaluate(_INJECTED_IMAGES) == []
    assert dialogs == []


def shapes8_json(n: int = 8) -> bytes:
    """A shapes demo as .kwcoco.json bytes with absolute image paths (in the demo folder)."""
    import kwcoco
    dset = kwcoco.CocoDataset.demo(f'shapes{n}')
    dset.reroot(absolute=True)
    return dset.dumps().encode()


def test_browser_script_in_a_link_or_typed_path_is_shown_as_text(server, page):
    from urllib.parse import quote

    from playwright.sync_api import expect
    url, _ = server
    dialogs = watch_dialogs(page)
    status = open_app(page, f'{url}?dataset={quote(EVIL)}')
    alert = page.locator('.explorer-alert')
    expect(alert).to_contain_text(EVIL)                   # the text itself, not an image
    expect(page.locator('.notyf__message', has_text=EVIL).first).to_be_visible()
    assert_no_script_ran(page, dialogs)
    other = EVIL.replace('alert(1)', 'alert(2)')
    field(page, 'path_input').fill(other)
    page.locator('.w-open_button button').click()
    expect(alert).to_contain_text(other)
    expect(page.locator('.notyf__message', has_text=other).first).to_be_visible()
    assert_no_script_ran(page, dialogs)
    expect(status).to_contain_text('positives')           # the app keeps working
    shot(page, 'script-as-text')


def test_browser_category_named_with_html_is_shown_as_text(browser, tmp_path):
    import kwcoco
    from playwright.sync_api import expect
    dset = kwcoco.CocoDataset.demo('shapes8')
    dset.reroot(absolute=True)
    dset.rename_categories({'star': EVIL})
    dset.imgs[1]['name'] = EVIL                 # and an image (the grid's tiles)
    path = tmp_path / 'evil.kwcoco.json'
    dset.dump(str(path))
    proc, url = spawn_server([path, '--workdir', tmp_path / 'cache', '--backend', 'none'],
                             cwd=tmp_path)
    try:
        context = browser.new_context(viewport={'width': 1500, 'height': 1300})
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT)
        dialogs = watch_dialogs(pg)
        open_app(pg, url)
        expect(pg.locator('.stats-numbers')).to_be_visible()
        for widget in ('categories', 'image_categories'):
            pg.locator(f'.w-{widget} .choices').first.click()
            expect(pg.locator(f'.w-{widget} .choices__item--choice', has_text=EVIL).first
                   ).to_be_visible()
            pg.keyboard.press('Escape')
        pg.locator('.w-categories .choices').first.click()
        pg.locator('.w-categories .choices__item--choice', has_text=EVIL).first.click()
        expect(pg.locator('.w-categories .choices__list--multiple .choices__item',
                          has_text=EVIL).first).to_be_visible()      # the chosen one
        expect(pg.locator('.status')).to_contain_text('positives')
        expect(pg.locator('.image-grid .grid-button button').first).to_have_attribute(
            'title', f'1: {EVIL}')
        assert_no_script_ran(pg, dialogs)
        shot(pg, 'category-as-text')
        context.close()
    finally:
        stop_server(proc)


@pytest.fixture(scope='module')
def upload_server(tmp_path_factory):
    """A server whose uploads go to a folder the tests can look into."""
    work = tmp_path_factory.mktemp('serve-uploads')
    proc, url = spawn_server(['--workdir', work / 'cache', '--upload-dir', work / 'uploads',
                              '--backend', 'none'], cwd=work)
    yield url, work / 'uploads'
    stop_server(proc)


def upload_file(page, widget, name, data, mime='application/json'):
    page.locator(f'.w-{widget} input[type=file]').first.set_input_files(
        files=[{'name': name, 'mimeType': mime, 'buffer': data}])


def test_browser_upload_name_with_html_is_shown_as_text(upload_server, page):
    from playwright.sync_api import expect
    url, _ = upload_server
    dialogs = watch_dialogs(page)
    status = open_app(page, url)
    name = EVIL + '.kwcoco.json'
    upload_file(page, 'upload', name, shapes8_json())
    expect(page.locator('.dataset-info')).to_contain_text(name)
    expect(page.locator('.dataset-info')).to_contain_text('8 images')
    expect(status).to_contain_text('positives')
    assert_no_script_ran(page, dialogs)


def test_browser_uploads_are_per_session_and_removed_when_it_ends(upload_server, browser):
    from playwright.sync_api import expect
    url, uploads = upload_server
    contexts = [browser.new_context(viewport={'width': 1500, 'height': 1300}) for _ in range(2)]
    pages = [c.new_page() for c in contexts]
    for pg, n in zip(pages, (8, 2)):
        pg.set_default_timeout(TIMEOUT)
        open_app(pg, url)
        upload_file(pg, 'upload', 'train.kwcoco.json', shapes8_json(n))
        expect(pg.locator('.dataset-info')).to_contain_text(f'{n} images')
    for pg in pages:
        wait_until(lambda pg=pg: 'train.kwcoco.json' in pg.url, pg)
    links = [pg.url for pg in pages]
    assert links[0] != links[1]
    # each link opens its own session's data
    for link, n in zip(links, (8, 2)):
        other = contexts[0].new_page()
        open_app(other, link)
        expect(other.locator('.dataset-info')).to_contain_text(f'{n} images')
        other.close()
    assert len(os.listdir(uploads)) == 2
    for c in contexts:
        c.close()
    # Bokeh drops a session some seconds after its page closed: then its uploads go
    deadline = time.monotonic() + 120
    while os.listdir(uploads):
        assert time.monotonic() < deadline, os.listdir(uploads)
        time.sleep(1)     # polling the server's folder: a condition, not a fixed wait


def test_browser_upload_over_the_limit_is_refused_with_its_limit(server, page):
    from playwright.sync_api import expect
    url, _ = server
    status = open_app(page, url)
    upload_file(page, 'upload', 'big.kwcoco.json', b' ' * 25_000_000)
    box = page.locator('.w-upload').first
    expect(box).to_contain_text('File is too large')
    expect(box).to_contain_text('Maximum file size is 20 MB')
    set_number(page, 'window_h', 48)                     # the session still responds
    expect(status).to_contain_text('window 48x128')
    shot(page, 'upload-too-large')


def test_browser_imported_config_cannot_choose_the_workdir(server, page, tmp_path):
    import uuid

    from playwright.sync_api import expect

    from sampler_core import SamplingConfig
    url, _ = server
    evil = f'/tmp/evil-{uuid.uuid4().hex}'
    status = open_app(page, url)
    cfg = SamplingConfig(dataset='shapes8', backend='npy', workdir=evil, window_dims=(56, 72),
                         n_pos=4, n_neg=2)
    path = tmp_path / 'evil.yaml'
    cfg.dump(path)
    page.locator('.w-config_upload input[type=file]').first.set_input_files(str(path))
    expect(status).to_contain_text('window 56x72')
    expect(page.locator('.explorer-alert')).to_contain_text(f'workdir {evil} ignored')
    expect(page.locator('.thumb-button-pos button').first).to_contain_text('img')
    box = page.locator('.overview canvas').first.bounding_box()
    page.mouse.click(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)  # pixels read
    expect(page.locator('.params-table')).to_be_visible()
    assert not os.path.exists(evil)


def test_browser_uploads_are_removed_when_the_server_stops(browser, tmp_path):
    from playwright.sync_api import expect
    uploads = tmp_path / 'uploads'
    proc, url = spawn_server(['--workdir', tmp_path / 'cache', '--upload-dir', uploads,
                              '--backend', 'none'], cwd=tmp_path)
    try:
        context = browser.new_context(viewport={'width': 1500, 'height': 1300})
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT)
        open_app(pg, url)
        upload_file(pg, 'upload', 'train.kwcoco.json', shapes8_json(2))
        expect(pg.locator('.dataset-info')).to_contain_text('2 images')
        assert len(os.listdir(uploads)) == 1
    finally:
        stop_server(proc)                        # SIGTERM while the session is open
    assert proc.returncode == 0 and os.listdir(uploads) == []
    context.close()


def console_errors(page) -> list:
    """Uncaught errors and console errors of ``page`` (failed resource loads left out: the
    test machine has no internet, and the page asks a CDN for a font)."""
    seen = []
    page.on('pageerror', lambda ex: seen.append(f'pageerror: {ex}'))
    page.on('console', lambda msg: msg.type == 'error' and 'Failed to load resource'
            not in msg.text and seen.append(f'console: {msg.text}'))
    return seen


def next_frames(page, n: int = 3):
    for _ in range(n):
        page.evaluate('() => new Promise(r => requestAnimationFrame(() => r()))')


def test_browser_pool_changes_raise_no_console_errors(server, page):
    """The tour: one positive category, then n_neg = 5, started BokehJS 'Size mismatch'
    errors, one more per change (the coverage bar plot changed its number of bars)."""
    from urllib.parse import quote

    from playwright.sync_api import expect
    url, _ = server
    errors = console_errors(page)
    status = open_app(page, url + '?categories=' + quote('["star"]'))
    page.locator('.stats-numbers').wait_for()
    for n_neg in (5, 6, 2):
        set_number(page, 'n_neg', n_neg)
        expect(status).to_contain_text(f'{n_neg} negatives')
        expect(page.locator('.stats-numbers tr', has_text='negatives asked').locator('td').nth(1)
               ).to_have_text(str(n_neg))
        next_frames(page)
    assert errors == []


#: every element of the page (shadow roots too) whose right edge passes the window's, and
#: the document's scroll and client widths (a notification's fixed, fading toast is an
#: overlay, not page content)
_OVERFLOW = '''() => {
    const doc = document.scrollingElement, width = doc.clientWidth, out = [];
    const walk = (root) => root.querySelectorAll('*').forEach(el => {
        if (String(el.className).includes('notyf')) return;
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.right > width + 1) out.push(`${el.tagName}.${el.className} ${r.right}`);
        if (el.shadowRoot) walk(el.shadowRoot);
    });
    walk(document);
    return {scroll: doc.scrollWidth, client: width, outside: out.slice(0, 10)};
}'''


@pytest.fixture(scope='module')
def video_server(tmp_path_factory):
    work = tmp_path_factory.mktemp('serve-video')
    proc, url = spawn_server(['vidshapes3-frames6', '--workdir', work / 'cache',
                              '--backend', 'none'], cwd=work)
    yield url
    stop_server(proc)


@pytest.mark.parametrize('width', [1280, 1440, 1600], ids=['1280', '1440', '1600'])
def test_browser_page_fits_the_window_with_a_video_clip(browser, video_server, width):
    """The tour: at 1280 and 1440 px the browse row did not wrap and the main column
    scrolled sideways; at 1600 px a 3-frame video clip ran off the right edge."""
    context = browser.new_context(viewport={'width': width, 'height': 800})
    try:
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT)
        open_app(pg, video_server + '?detail_frames=3')
        pg.locator('.stats-numbers').wait_for()
        box = pg.locator('.overview canvas').first.bounding_box()
        pg.mouse.click(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
        param_cell(pg, 'im shape', r'^\(3, ')                  # the 3-frame clip is drawn
        next_frames(pg)
        found = pg.evaluate(_OVERFLOW)
        if found['outside']:
            shot(pg, f'overflow-{width}')
        assert found['scroll'] <= found['client'] and found['outside'] == [], found
    finally:
        context.close()


def test_browser_upload_of_a_zip_with_images_opens_it(upload_server, page, tmp_path):
    """A .kwcoco.json with relative image paths is refused with a hint; a zip of it and
    its images opens, pixels and all."""
    import json

    from playwright.sync_api import expect
    from test_app_uploads import archive_of, dataset_members, tiny_dataset
    url, _ = upload_server
    status = open_app(page, url)
    dataset = tiny_dataset(tmp_path)
    upload_file(page, 'upload', 'rel.kwcoco.json', json.dumps(dataset).encode())
    expect(page.locator('.explorer-alert')).to_contain_text('relative to its folder')
    upload_file(page, 'upload', 'set.zip', archive_of('zip', dataset_members(tmp_path, dataset)),
                mime='application/zip')
    expect(page.locator('.dataset-info')).to_contain_text('train.kwcoco.json')
    expect(page.locator('.dataset-info')).to_contain_text('2 images')
    expect(status).to_contain_text('positives')
    expect(page.locator('.explorer-alert')).to_be_hidden()
    expect(page.locator('.thumb-button-pos button').first).not_to_contain_text('unreadable')
