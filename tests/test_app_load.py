"""Sessions come and go: a closed session's state is freed (issue 13.7).

The server-side test opens waves of real chromium sessions against
``sampler-explorer serve`` and waits (on the server's "session closed" lines, never a
fixed sleep) until each wave is released before reading the server's memory.
"""
from __future__ import annotations

import gc
import threading
import time
import weakref



def _render(explorer):
    from bokeh.document import Document
    import panel as pn
    doc = Document()
    doc.add_root(pn.panel(explorer).get_root(doc))
    return doc


def test_release_frees_the_pools_and_the_sampler_fork():
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=4)
    _render(e)
    shared = e.state.shared.sampler
    refs = [weakref.ref(e.state.sampler), weakref.ref(e.state.pools)]
    e.release()                       # the explorer itself may still be referenced
    gc.collect()
    assert [r() is None for r in refs] == [True, True]
    e.state.revision += 1              # a late event does nothing
    assert shared.regions._negative_pool is None      # the shared sampler is untouched
    other = Explorer('shapes8', backend=None, n_pos=3)
    assert other.state.pools.n_pos == 3 and other.state.shared.sampler is shared


def _rss_mib(pid: int) -> float:
    import psutil
    return psutil.Process(pid).memory_info().rss / 2**20


def test_server_memory_returns_after_waves_of_sessions(tmp_path):
    """Waves of 5 sessions (page loaded, one change, closed): after the first wave the
    server's memory stays where it was (before the fix every wave added ~30 MiB)."""
    from playwright.sync_api import sync_playwright

    from app.browser import launch_chromium, spawn_server, stop_server
    closed = []
    changed = threading.Condition()

    def on_output(line):
        if 'a session closed' in line:
            with changed:
                closed.append(line)
                changed.notify_all()

    proc, url = spawn_server(['--workdir', tmp_path / 'cache'], cwd=tmp_path, on_output=on_output)
    opened = 0
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)

            def wave(n, k):
                nonlocal opened
                contexts = []
                for i in range(n):
                    ctx = browser.new_context()
                    page = ctx.new_page()
                    page.set_default_timeout(120_000)
                    page.goto(url)
                    contexts.append((ctx, page))
                    opened += 1
                for i, (ctx, page) in enumerate(contexts):
                    page.locator('.stats-numbers').wait_for()
                    h = 40 + 8 * (i + 5 * k)
                    box = page.locator('.w-window_h input').first
                    box.fill(str(h))
                    box.press('Enter')
                    page.locator('.stats-numbers tr', has_text='window (h x w)').filter(
                        has_text=f'{h}x128').wait_for()
                for ctx, _ in contexts:
                    ctx.close()
                deadline = time.monotonic() + 120
                with changed:       # Bokeh frees a session 15-17 s after its page closed
                    while len(closed) < opened:
                        left = deadline - time.monotonic()
                        assert left > 0, f'{len(closed)} of {opened} sessions released'
                        changed.wait(left)
                return _rss_mib(proc.pid)

            base = wave(1, 0)                       # imports, first page: the baseline
            after = [wave(5, k) for k in range(1, 4)]
            browser.close()
    finally:
        stop_server(proc)
    first = after[0] - base
    third = after[-1] - base
    assert third < first + 30, (base, after)


def test_served_updates_compute_only_the_latest_state_of_a_session(monkeypatch):
    """While a session's statistics / galleries are computed on a worker thread, further
    changes start nothing; when it ends, its stale result is dropped and one computation
    runs for the latest state only, whose result is shown (a spinner over the galleries
    meanwhile)."""
    from bokeh.document import Document

    from app.layout import Explorer

    class Loop:                       # the server loop: callbacks run when the test says
        def __init__(self):
            self.calls = []

        def add_callback(self, fn):
            self.calls.append(fn)

    class Doc(Document):
        def add_next_tick_callback(self, fn):
            fn()

    computed = []
    original = Explorer._compute_galleries

    def spy(self, snap):
        computed.append(snap['gallery_key'][0])
        return original(self, snap)

    monkeypatch.setattr(Explorer, '_compute_galleries', spy)
    e = Explorer('shapes8', backend=None, n_pos=4, hold_updates=True)
    loop = Loop()
    e._doc, e._loop, e._hold = Doc(), loop, False
    s = e.state

    def finish_job():
        job = e._job
        job.result(timeout=60)
        deadline = time.monotonic() + 60
        while not loop.calls:         # the done callback runs just after the result
            assert time.monotonic() < deadline
            time.sleep(0.01)
        loop.calls.pop(0)()

    s.window_dims = (40, 40)
    first = s.revision
    assert e._job is not None and e.galleries.loading
    s.window_dims = (48, 48)
    s.window_dims = (56, 56)          # superseded (48, 48): never computed
    finish_job()                      # the (40, 40) result is stale: one job for the latest
    assert e._job is not None and e.galleries.loading
    assert 'window 56x56' not in e._gallery_titles['pos'].object
    finish_job()
    assert computed == [first, s.revision] and s.revision == first + 2
    assert e._job is None and not e.galleries.loading
    assert 'window 56x56' in e._gallery_titles['pos'].object
    assert '56x56' in e.stats_numbers.object
    shown = e.gallery_indices('pos')
    assert shown == list(range(min(s.gallery_size, s.pools.n_pos)))


def test_websocket_clients_see_each_of_their_changes(tmp_path):
    """``bench_load.py --clients bokeh`` (the server measured without browsers): every
    session's change of the window height comes back from the server as the status line,
    the statistics table and both gallery titles naming the new size, in that order, with
    no errors. (Nothing is timed: only that each change is seen.)"""
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'benchmarks' / 'bench_load.py'
    spec = importlib.util.spec_from_file_location('bench_load', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / 'load.json'
    bench.main(['--clients', 'bokeh', '--sessions', '2', '--changes', '2', '--burst', '2',
                '--timeout', '300', '--json', str(out)])
    data = json.loads(out.read_text())
    assert data['errors'] == []
    changes = [r for r in data['results'] if r['kind'] == 'change']
    assert sorted((r['session'], r['burst']) for r in changes) == [(0, 2), (0, 2), (1, 2), (1, 2)]
    for r in changes:
        assert 0 < r['preview'] <= r['stats'] <= r['galleries']
    assert sorted(r['session'] for r in data['results'] if r['kind'] == 'open') == [0, 1]


def test_a_served_page_walks_its_model_graph_once_per_step(monkeypatch):
    """Opening a page costs the server one walk of the page's Bokeh model graph (~0.7k
    models, tens of ms with 20 sessions' objects alive) when the template's roots are added,
    one when the page has loaded (sidebar, image list, overview) and one a tick later
    (image grid, galleries, statistics): not one per root and per view (16 before), and
    every deferred view is then in the page."""
    import weakref

    import panel as pn
    from bokeh.document import Document
    from bokeh.document.models import DocumentModelManager
    from panel.io.state import set_curdoc

    from app.layout import Explorer

    class Request:
        arguments, headers, cookies = {}, {}, {}

    class Session:              # what a served document's session context offers Panel
        session, id, request = None, 'test-session', Request()

    class Doc(Document):        # next-tick callbacks run when the test says
        def __init__(self):
            super().__init__()
            self.ticks = []

        def add_next_tick_callback(self, fn):
            self.ticks.append(fn)

    walks = []
    original = DocumentModelManager.recompute

    def spy(self):
        walks.append(self)
        return original(self)

    monkeypatch.setattr(DocumentModelManager, 'recompute', spy)
    context = Session()
    doc = Doc()
    doc._session_context = weakref.ref(context)
    e = Explorer('shapes8', backend=None, n_pos=4, hold_updates=True)
    steps = []
    with set_curdoc(doc):
        page = e.template(sync_url=False)
        views = (e.overview, e.galleries, e.stats, e.grid, e.search, e.window_h)
        assert [bool(v._models) for v in views] == [False] * len(views)
        walks.clear()
        page.server_doc(doc)
        steps.append(len(walks))
        walks.clear()
        pn.state._on_load(doc)          # the browser has loaded the page
        steps.append(len(walks))
        walks.clear()
        while doc.ticks:
            doc.ticks.pop(0)()
        steps.append(len(walks))
    assert steps == [1, 1, 1]
    shown = [[m.document is doc for m, _ in v._models.values()] for v in views]
    assert shown == [[True]] * len(views)
