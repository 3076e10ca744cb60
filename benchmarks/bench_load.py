"""Many sessions editing at once: how long until each session sees its own change.

Starts ``sampler-explorer serve`` (:func:`app.browser.spawn_server`, localhost only), opens
``--sessions`` pages at once in Debian's chromium (one browser context each, so each page is
its own server session) and lets every session make ``--changes`` window-size changes at the
same time, each after a short think pause (random, seeded). A change is typed into the
window-height input and committed with Enter; then, measured inside the page
(``performance.now()`` at the key, a MutationObserver plus animation-frame polling):

* **preview**: the status line (updated with the overview's windows) shows the new size;
* **full**: the statistics table and both gallery titles show it as well.

``--burst N`` types N sizes in quick succession per change (only the last must show: the
server computes the galleries and statistics of a session's latest change only).

Reports p50 / p95 / max seconds per change for both, the page errors (uncaught exceptions
in a page), the server's CPU seconds per change and its memory. Every wait is bounded
(``--timeout`` per change); the run stops by itself.

``--clients bokeh`` measures the server itself: instead of 20 chromium pages (whose
renderers take most of a 2-core machine), each session is a Bokeh websocket client
(:func:`bokeh.client.pull_session`, one thread and one IO loop each) that sends the
browser's "document ready" event, then sets the window-height widget's value (the model
with CSS class ``w-window_h``) as a page does, and times until the server has pushed the
status line (**preview**), the statistics table (**stats**) and both gallery titles
(**galleries**) naming the new size. No page is rendered, so these times are the
server's (and the client's decoding of its messages).

Usage:
    python benchmarks/bench_load.py [--sessions 20] [--changes 5] [--burst 1] [--json out.json]
    python benchmarks/bench_load.py --clients bokeh [--sessions 20] [--changes 5]

Nothing is timed in the tests; the figures go to benchmarks/README-app.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / 'benchmarks'), str(ROOT)]
from _data import print_machine_info  # noqa: E402

from app.browser import CHROMIUM, CHROMIUM_ARGS, spawn_server, stop_server  # noqa: E402

#: ``window.__done`` resolves with {name: ms} once every condition [name, selector, text]
#: holds, timed from ``window.__arm()`` (called just before the last Enter of a change)
_MEASURE_JS = '''
([conditions, timeoutMs]) => {
  // the text of every element matching ``sel`` (in any shadow root), its shadow roots' too
  const deepText = (el) => {
    let text = el.textContent;
    if (el.shadowRoot) text += deepText(el.shadowRoot);
    el.querySelectorAll('*').forEach((c) => { if (c.shadowRoot) text += deepText(c.shadowRoot); });
    return text;
  };
  const textOf = (sel) => {
    const all = [];
    const visit = (root) => {
      root.querySelectorAll(sel).forEach((el) => all.push(deepText(el)));
      root.querySelectorAll('*').forEach((el) => { if (el.shadowRoot) visit(el.shadowRoot); });
    };
    visit(document);
    return all.join(' | ').replace(/\\s+/g, ' ');
  };
  let t0 = null;
  const times = {};
  window.__done = new Promise((resolve, reject) => {
    let finished = false;
    const check = () => {
      if (finished || t0 === null) return;
      for (const [name, sel, text] of conditions) {
        if (!(name in times) && textOf(sel).includes(text)) times[name] = performance.now() - t0;
      }
      if (Object.keys(times).length === conditions.length) { finished = true; resolve(times); }
    };
    const obs = new MutationObserver(check);
    obs.observe(document, {subtree: true, childList: true, characterData: true});
    const poll = () => { check(); if (!finished) requestAnimationFrame(poll); };
    window.__arm = () => { t0 = performance.now(); requestAnimationFrame(poll); };
    setTimeout(() => { if (!finished) reject(new Error('timeout: ' + JSON.stringify(times))); },
               timeoutMs);
  });
}
'''


async def wait_ready(page, timeout_ms: int) -> None:
    await page.locator('.stats-numbers').first.wait_for(timeout=timeout_ms)
    for name in ('Positives', 'Negatives'):
        await page.locator('.galleries p', has_text=name).first.wait_for(timeout=timeout_ms)


async def session(browser, url: str, k: int, args, results: list, errors: list) -> None:
    rng = random.Random(args.seed * 1000 + k)
    context = await browser.new_context(viewport={'width': 1400, 'height': 1200})
    page = await context.new_page()
    page.on('pageerror', lambda ex: errors.append(f'session {k}: {ex}'))
    timeout_ms = int(args.timeout * 1000)
    page.set_default_timeout(timeout_ms)
    try:
        await _session_changes(page, url, k, args, results, errors, rng, timeout_ms)
    except Exception as ex:  # a session that failed: counted, the others go on
        errors.append(f'session {k}: {type(ex).__name__}: {str(ex).splitlines()[0]}')
    finally:
        await context.close()


async def _session_changes(page, url, k, args, results, errors, rng, timeout_ms) -> None:
    t0 = time.perf_counter()
    await page.goto(url)
    await wait_ready(page, 3 * timeout_ms)   # 20 pages opening at once
    results.append({'session': k, 'kind': 'open', 's': time.perf_counter() - t0})
    box = page.locator('.w-window_h input').first
    for c in range(args.changes):
        await asyncio.sleep(rng.uniform(0, args.think))
        sizes = [24 + 4 * ((k * 7 + c * args.burst + b) % 60) for b in range(args.burst)]
        last = sizes[-1]
        conds = [['preview', '.status', f'window {last}x128'],
                 ['stats', '.stats-numbers', f'{last}x128'],
                 ['galleries', '.galleries', f'window {last}x128']]
        await page.evaluate(_MEASURE_JS, [conds, timeout_ms])
        for b, h in enumerate(sizes):
            await box.fill(str(h))
            if b == len(sizes) - 1:
                await page.evaluate('() => window.__arm()')
            await box.press('Enter')
            if b < len(sizes) - 1:
                await asyncio.sleep(0.05)
        try:
            times = await page.evaluate('() => window.__done')
        except Exception as ex:  # a change that never showed: counted, the run goes on
            errors.append(f'session {k} change {c}: {str(ex).splitlines()[0]}')
            continue
        # galleries: both titles name the size (the positives' title is enough to
        # start; wait for the negatives' title too)
        neg = page.locator('.galleries p', has_text='Negatives').filter(
            has_text=f'window {last}x128').first
        await neg.wait_for(timeout=timeout_ms)
        results.append({'session': k, 'kind': 'change', 'burst': args.burst,
                        **{name: ms / 1000 for name, ms in times.items()}})


def pct(values, q: float) -> float:
    values = sorted(values)
    if not values:
        return float('nan')
    pos = (len(values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def summary(values) -> str:
    if not values:
        return 'no data'
    return (f'p50 {statistics.median(values):.2f} s, p95 {pct(values, 95):.2f} s, '
            f'max {max(values):.2f} s (n={len(values)})')


async def run(url: str, args) -> tuple[list, list]:
    from playwright.async_api import async_playwright
    if not os.path.exists(CHROMIUM):
        raise FileNotFoundError(f'{CHROMIUM} is missing: apt-get install -y chromium')
    results: list = []
    errors: list = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            await asyncio.wait_for(asyncio.gather(*[
                session(browser, url, k, args, results, errors) for k in range(args.sessions)],
                return_exceptions=False), timeout=args.deadline)
        finally:
            await browser.close()
    return results, errors



# ------------------------------------------------------------ Bokeh websocket clients
def _register_panel_models() -> None:
    """Import every ``panel.models`` module: the client must know each model type the
    server's document holds (e.g. FileDropper) to read it."""
    import importlib
    import pkgutil

    import panel.models
    for info in pkgutil.iter_modules(panel.models.__path__):
        try:
            importlib.import_module(f'panel.models.{info.name}')
        except ImportError:  # an optional extension's model (e.g. a missing package)
            pass
    import app.tiles  # noqa: F401  (the explorer's own ReactiveHTML data model: Tiles)


def _models_with_class(doc, css_class: str) -> list:
    return [m for m in list(doc.models) if css_class in (getattr(m, 'css_classes', None) or [])]


def _texts(doc, css_class: str) -> str:
    return ' | '.join(str(getattr(m, 'text', '')) for m in _models_with_class(doc, css_class))


def _gallery_titles(doc) -> list:
    return [str(m.text) for m in list(doc.models)
            if 'load_item returns' in str(getattr(m, 'text', '') or '')]


def client_session(url: str, k: int, args, results: list, errors: list,
                   opened: threading.Barrier) -> None:
    """One server session driven over its websocket, in this thread (its own IO loop)."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    from bokeh.client import pull_session
    from bokeh.events import DocumentReady
    from tornado.ioloop import IOLoop
    rng = random.Random(args.seed * 1000 + k)
    loop = IOLoop()
    session = None

    def until(predicate, timeout: float) -> float:
        """Run the IO loop (applying the server's messages) until ``predicate()`` holds;
        its seconds, or raise TimeoutError after ``timeout`` seconds."""
        t0 = time.perf_counter()
        if not predicate():
            handle = loop.call_later(timeout, loop.stop)
            session._connection._loop_until(predicate)
            loop.remove_timeout(handle)
            if not predicate():
                raise TimeoutError(f'not shown within {timeout:.0f} s')
        return time.perf_counter() - t0

    try:
        t0 = time.perf_counter()
        session = pull_session(url=url, io_loop=loop)
        doc = session.document
        doc.callbacks.send_event(DocumentReady())    # as a page does once it has loaded
        until(lambda: 'x128' in _texts(doc, 'stats-table') and len(_gallery_titles(doc)) == 2,
              3 * args.timeout)
        box = _models_with_class(doc, 'w-window_h')[0]
        results.append({'session': k, 'kind': 'open', 's': time.perf_counter() - t0})
    except Exception as ex:
        errors.append(f'session {k} open: {type(ex).__name__}: {str(ex).splitlines()[0]}')
        opened.abort()
        return
    try:
        try:
            opened.wait(timeout=3 * args.timeout)    # every session open: changes start together
        except threading.BrokenBarrierError:
            pass
        for c in range(args.changes):
            time.sleep(rng.uniform(0, args.think))
            sizes = [24 + 4 * ((k * 7 + c * args.burst + b) % 60) for b in range(args.burst)]
            last = sizes[-1]
            if box.value == last:
                last = sizes[-1] = last + 4
            t0 = time.perf_counter()
            for b, h in enumerate(sizes):
                box.value = h
                if b < len(sizes) - 1:     # send it, then type the next one
                    loop.run_sync(lambda: asyncio.sleep(0.05))
            times = {}
            try:
                until(lambda: f'window {last}x128' in _texts(doc, 'status-line'), args.timeout)
                times['preview'] = time.perf_counter() - t0
                until(lambda: f'{last}x128' in _texts(doc, 'stats-table'), args.timeout)
                times['stats'] = time.perf_counter() - t0
                until(lambda: all(f'window {last}x128' in t for t in _gallery_titles(doc)),
                      args.timeout)
                times['galleries'] = time.perf_counter() - t0
            except TimeoutError as ex:
                errors.append(f'session {k} change {c}: {ex} (shown: {sorted(times)})')
                continue
            results.append({'session': k, 'kind': 'change', 'burst': args.burst, **times})
    except Exception as ex:  # a session that failed: counted, the others go on
        errors.append(f'session {k}: {type(ex).__name__}: {str(ex).splitlines()[0]}')
    finally:
        session.close()
        loop.close(all_fds=True)


def run_clients(url: str, args) -> tuple[list, list]:
    """``--sessions`` Bokeh websocket clients at once, one thread each; bounded by
    ``--deadline`` (threads still running then are left to the process's exit)."""
    _register_panel_models()
    results: list = []
    errors: list = []
    opened = threading.Barrier(args.sessions)
    threads = [threading.Thread(target=client_session, daemon=True,
                                args=(url, k, args, results, errors, opened))
               for k in range(args.sessions)]
    end = time.perf_counter() + args.deadline
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, end - time.perf_counter()))
    late = sum(t.is_alive() for t in threads)
    if late:
        errors.append(f'{late} sessions still running at the deadline ({args.deadline:.0f} s)')
    return results, errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='many explorer sessions editing at once')
    parser.add_argument('--clients', choices=('chromium', 'bokeh'), default='chromium',
                        help='chromium pages (server and 20 browsers on one machine) or Bokeh '
                             'websocket clients (the server alone: nothing rendered)')
    parser.add_argument('--sessions', type=int, default=20)
    parser.add_argument('--changes', type=int, default=5, help='changes per session')
    parser.add_argument('--burst', type=int, default=1,
                        help='sizes typed in quick succession per change (only the last counts)')
    parser.add_argument('--think', type=float, default=1.0,
                        help='longest pause before a change, seconds (uniform, seeded)')
    parser.add_argument('--timeout', type=float, default=120.0, help='per change, seconds')
    parser.add_argument('--deadline', type=float, default=1200.0, help='whole run, seconds')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--dataset', default=None, help='dataset to serve (default: the demo)')
    parser.add_argument('--json', default=None, help='also write the raw figures here')
    args = parser.parse_args(argv)
    print_machine_info()
    import psutil
    with tempfile.TemporaryDirectory() as work:
        server_args = ([args.dataset] if args.dataset else []) + [
            '--workdir', os.path.join(work, 'cache')]
        proc, url = spawn_server(server_args, cwd=work)
        server = psutil.Process(proc.pid)
        try:
            cpu0 = sum(server.cpu_times()[:2])
            t0 = time.perf_counter()
            own0 = time.process_time()
            if args.clients == 'bokeh':
                results, errors = run_clients(url, args)
            else:
                results, errors = asyncio.run(run(url, args))
            wall = time.perf_counter() - t0
            own = time.process_time() - own0    # the clients' decoding (bokeh mode)
            cpu = sum(server.cpu_times()[:2]) - cpu0
            rss = server.memory_info().rss / 2**20
        finally:
            stop_server(proc)
    changes = [r for r in results if r['kind'] == 'change']
    opens = [r['s'] for r in results if r['kind'] == 'open']
    print(f'{args.clients} clients: '
          f'{args.sessions} sessions x {args.changes} changes (burst {args.burst}), '
          f'{os.cpu_count()} cores, {wall:.0f} s wall')
    print(f'  page open -> statistics and galleries: {summary(opens)}')
    for name in ('preview', 'stats', 'galleries'):
        print(f'  change -> {name:<9}: {summary([r[name] for r in changes])}')
    print(f'  server CPU: {cpu:.1f} s ({cpu / max(1, len(changes)):.2f} s per change, '
          f'page opens included); server RSS at the end: {rss:.0f} MiB')
    if args.clients == 'bokeh':
        print(f'  client CPU (decoding the server\'s messages, same machine): {own:.1f} s')
    print(f'  load average at the end: {" / ".join(f"{x:.1f}" for x in os.getloadavg())}')
    print(f'  page errors / changes that never showed: {len(errors)}')
    for line in errors[:10]:
        print(f'    {line}')
    if args.json:
        Path(args.json).write_text(json.dumps({'args': vars(args), 'results': results,
                                               'errors': errors, 'server_cpu_s': cpu,
                                               'loadavg_end': os.getloadavg(),
                                               'wall_s': wall, 'server_rss_mib': rss}, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
