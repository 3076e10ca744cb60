"""The example notebook runs top to bottom (nbclient) and shows the explorer inline; in
JupyterLab in a real browser without network access it renders and responds.

Chromium must be installed (``scripts/run_tests.sh`` installs it): when it is missing the
browser tests FAIL, in CI and elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / 'examples' / 'explorer.ipynb'
ARTIFACTS = ROOT / 'test-artifacts'


def test_notebook_example_executes_and_displays_the_explorer(tmp_path):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name='python3',
                            resources={'metadata': {'path': str(ROOT)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == 'code' for o in cell.get('outputs', [])]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    mimes = {m for o in outputs for m in o.get('data', {})}
    # the explorer displayed as a Panel / Bokeh view
    assert 'application/vnd.holoviews_exec.v0+json' in mimes, mimes
    text = '\n'.join(o.get('text', '') for o in outputs if o.get('output_type') == 'stream')
    assert 'positives,' in text


def test_notebook_explorer_object_is_a_viewer():
    import panel as pn

    from app import Explorer
    explorer = Explorer('shapes8', backend=None, n_pos=2)
    assert isinstance(explorer, pn.viewable.Viewer)
    assert explorer.__panel__() is not None
    # another Explorer has its own state
    other = Explorer('shapes8', backend=None, n_pos=3)
    assert (explorer.state.pools.n_pos, other.state.pools.n_pos) == (2, 3)


def test_notebook_explorer_takes_a_dataset_object_or_a_path(tmp_path):
    import kwcoco

    from app import Explorer
    dset = kwcoco.CocoDataset.demo('shapes8')
    by_object = Explorer(dset, backend=None, n_pos=2)
    assert by_object.state.shared.dset is dset
    assert by_object.state.to_config().dataset == dset.fpath
    by_path = Explorer(dset.fpath, backend=None, n_pos=2, roots=[dset.bundle_dpath])
    assert len(by_path.state.shared.dset.imgs) == 8 and by_path.state.message is None


# ---------------------------------------------------------------- JupyterLab in chromium
# ``examples/explorer.ipynb`` (a copy: JupyterLab saves what it runs) in JupyterLab, run in
# Debian's chromium at 1280x800 with every request that is not to the local Jupyter server
# aborted: the page must load everything it runs from the kernel's output and the local
# server. One JupyterLab and one run of the notebook for the whole module.

LAB_TIMEOUT = 240_000   # ms: the kernel imports the libraries and builds the explorer
TIMEOUT = 60_000        # ms, for every other wait on a condition
TOKEN = 'sampler-explorer-test'


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def setup_module():
    from playwright.sync_api import expect
    expect.set_options(timeout=TIMEOUT)


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    """A JupyterLab on 127.0.0.1 serving a folder holding a copy of the example notebook;
    Jupyter's config, data and settings in that folder (news and update checks off)."""
    import json
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request
    home = tmp_path_factory.mktemp('lab')
    work = home / 'notebooks'
    work.mkdir()
    for ui in UIS:
        shutil.copy(NOTEBOOK, work / f'{ui}-{NOTEBOOK.name}')
    settings = home / 'settings' / '@jupyterlab' / 'apputils-extension'
    settings.mkdir(parents=True)
    (settings / 'notification.jupyterlab-settings').write_text(
        json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
               JUPYTER_CONFIG_DIR=str(home / 'config'), JUPYTER_RUNTIME_DIR=str(home / 'runtime'),
               JUPYTERLAB_SETTINGS_DIR=str(home / 'settings'),
               JUPYTERLAB_WORKSPACES_DIR=str(home / 'workspaces'))
    env.pop('PANEL_INLINE', None)
    port = _free_port()
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           f'--ServerApp.token={TOKEN}', f'--ServerApp.root_dir={work}', '--allow-root',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
           # window.jupyterapp: the tests run the cells through the app's own command
           '--LabApp.expose_app_in_browser=True',
           '--JupyterNotebookApp.expose_app_in_browser=True']
    log = open(home / 'lab.log', 'w')
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f'{base}/api/status?token={TOKEN}', timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError('JupyterLab did not start:\n' +
                                       (home / 'lab.log').read_text())
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        log.close()


def _run_all_cells(page) -> None:
    """Run every cell (the app's ``notebook:run-all-cells`` command) once the notebook's
    kernel is connected and idle; wait until every code cell has run."""
    page.locator('.jp-Notebook').wait_for()
    page.wait_for_function("""() => {
        const app = window.jupyterapp;
        const widget = app && app.shell.currentWidget;
        const kernel = widget && widget.sessionContext && widget.sessionContext.session &&
            widget.sessionContext.session.kernel;
        return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
    }""", timeout=LAB_TIMEOUT)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
        return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
    }""", timeout=LAB_TIMEOUT)


#: the two notebook front ends of the one server: JupyterLab and Notebook 7 (the classic
#: notebook's successor, built from JupyterLab's components); page of a notebook's path
UIS = {'lab': '/lab/tree/{}', 'notebook7': '/notebooks/{}'}


@pytest.fixture(scope='module', params=list(UIS))
def lab_page(lab, request):
    """The example notebook in JupyterLab or Notebook 7 after running every cell, in
    chromium cut off from the network; yields ``(page, aborted)``: ``aborted`` lists every
    URL the page asked for elsewhere than the local server (each request was aborted)."""
    from playwright.sync_api import sync_playwright

    from app.browser import launch_chromium
    aborted, errors = [], []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(lab + '/'):
            request_route.continue_()
        else:
            aborted.append(url)
            request_route.abort()

    with sync_playwright() as p:
        try:
            browser = launch_chromium(p)
        except FileNotFoundError as ex:
            pytest.fail(f'{ex}; the browser tests cannot be skipped')
        context = browser.new_context(viewport={'width': 1280, 'height': 800})
        context.route('**/*', route)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.on('pageerror', lambda ex: errors.append(str(ex)))
        page.on('console', lambda m: errors.append(m.text) if m.type == 'error' and
                'ERR_FAILED' not in m.text else None)
        page.explorer_errors = errors
        ui = request.param
        page.goto(f'{lab}{UIS[ui].format(f"{ui}-{NOTEBOOK.name}")}?token={TOKEN}')
        try:
            _run_all_cells(page)
            page.locator('.overview canvas').first.wait_for(state='visible')
            yield page, aborted
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f'FAILED-notebook-{ui}.png'))
            raise
        finally:
            context.close()
            browser.close()


@pytest.fixture
def lab_shot(lab_page, request):
    """The notebook page; a screenshot in ``test-artifacts/`` when the test fails."""
    page, _ = lab_page
    n_failed = request.session.testsfailed
    yield page
    if request.session.testsfailed > n_failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f'FAILED-{request.node.name}.png'))


#: the text of an element and of the shadow roots in it (Bokeh renders into shadow roots)
_DEEP_TEXT = """el => {
    const text = node => node.nodeType === Node.TEXT_NODE ? node.textContent :
        ['STYLE', 'SCRIPT'].includes(node.nodeName) ? '' :
        [...(node.shadowRoot ? node.shadowRoot.childNodes : []), ...node.childNodes]
            .map(text).join(' ');
    return text(el).replace(/\\s+/g, ' ').trim();
}"""


def _shot(page, name):
    """A screenshot of the explorer's overview and status line in ``test-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator('.status-line').first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f'{name}.png'))


def _status(page):
    return page.locator('.status-line .status').first


def _window_dims(page) -> tuple[int, int]:
    """``(height, width)`` of the windows, as the status line says ("window HxW")."""
    import re

    from playwright.sync_api import expect
    status = _status(page)
    expect(status).to_contain_text(re.compile(r'window \d+x\d+'))
    h, w = re.search(r'window (\d+)x(\d+)', status.inner_text()).groups()
    return int(h), int(w)


def test_notebook_browser_renders_offline_and_fits_the_cell(lab_page, lab_shot, request):
    from playwright.sync_api import expect
    page, aborted = lab_page
    canvas = page.locator('.overview canvas').first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box['width'] > 300 and box['height'] > 300, box
    # the notebook's second cell set the state from code: the page shows it
    expect(_status(page)).to_contain_text('window 64x128')
    # nothing came from elsewhere: no script was asked of a CDN (BokehJS, Panel and its
    # extensions are inline in the output); Panel re-sends some of its own stylesheets by
    # URL when a pane is updated (aborted here: those panes keep Bokeh's defaults)
    scripts = [u for u in aborted if not u.split('?')[0].endswith('.css')]
    assert scripts == [], scripts
    # the explorer fits the cell: nothing of it reaches past the output area's right edge
    # (every element, through the shadow roots Bokeh renders into), and no sideways scroll
    overflow = page.evaluate("""() => {
        const all = (root, acc) => {
            for (const el of root.querySelectorAll('*')) {
                acc.push(el);
                if (el.shadowRoot) all(el.shadowRoot, acc);
            }
            return acc;
        };
        const bad = [];
        for (const out of document.querySelectorAll('.jp-OutputArea-output')) {
            const edge = out.getBoundingClientRect().right;
            if (out.scrollWidth > out.clientWidth) bad.push(['scroll', out.scrollWidth, out.clientWidth]);
            for (const el of all(out, [])) {
                const r = el.getBoundingClientRect();
                if (r.width > 0 && r.right > edge + 1)
                    bad.push([el.tagName, String(el.className), Math.round(r.right), Math.round(edge)]);
            }
        }
        const panel = document.querySelector('.jp-WindowedPanel-outer');
        if (panel && panel.scrollWidth > panel.clientWidth)
            bad.push(['notebook scroll', panel.scrollWidth, panel.clientWidth]);
        return bad.slice(0, 20);
    }""")
    assert overflow == [], overflow
    _shot(page, f'notebook-{request.node.callspec.id}')


def test_notebook_browser_enter_applies_a_number(lab_page, lab_shot):
    from playwright.sync_api import expect
    page, _ = lab_page
    status = _status(page)
    height, width = _window_dims(page)
    new = height + 40
    box = page.locator('.w-window_h input').first
    box.scroll_into_view_if_needed()
    box.fill(str(new))
    box.press('Enter')
    expect(status).to_contain_text(f'window {new}x{width}')
    expect(box).to_have_value(str(new))


def test_notebook_browser_click_samples_a_window_there(lab_page, lab_shot, request):
    """As in the served app: a click samples the window centred there (detail pane)."""
    import math
    import re

    from playwright.sync_api import expect
    page, _ = lab_page
    height, width = _window_dims(page)
    canvas = page.locator('.overview canvas').first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.click(box['x'] + box['width'] * 0.5, box['y'] + box['height'] * 0.5)
    number = r'-?\d+(\.\d+)?'

    def cell(name, pattern):
        row = page.locator('.params-table tr', has_text=name)
        try:
            expect(row.locator('td').last).to_have_text(re.compile(pattern))
        except AssertionError as ex:
            text = page.locator('.detail').first.evaluate(_DEEP_TEXT)
            raise AssertionError(f'{ex}\ndetail pane: {text!r}\nstatus: '
                                 f'{_status(page).inner_text()!r}\nbrowser errors: '
                                 f'{page.explorer_errors}') from None
        return row.locator('td').last.text_content().strip()

    center = cell('center (cx, cy)', rf'^\({number}, {number}\)$')
    cx, cy = (float(v) for v in center.strip('()').split(','))
    # the image is 600x600: a click in the middle of the plot lands near its centre
    assert 200 < cx < 400 and 200 < cy < 400, (cx, cy)
    offset = cell('offset (dx, dy)', r'^\(-?\d+, -?\d+\)$')
    dx, dy = (int(v) for v in offset.strip('()').split(','))
    assert (dx, dy) == (-math.floor(cx - width / 2), -math.floor(cy - height / 2))
    expect(page.locator('.detail canvas').first).to_be_visible()
    _shot(page, f'notebook-{request.node.callspec.id}-click')
