"""Speed of the explorer in a real browser (Playwright + Debian's chromium).

Measures:

1. demo: server start (``sampler-explorer serve --port 0``) to the URL printed,
   page open to the first canvas, and process start to the first canvas;
2. demo: a window-size change (typed into the window-height input, Enter) to
   the updated preview (the status line and the overview's windows are
   updated by the same server callback), and to the updated statistics, over
   ``--changes`` changes: p50 / p95 / max;
3. large: a synthetic dataset of 10,000 images and 100,000 annotations
   (images 1000x800; 10 distinct PNG files shared by all image entries): server
   start, first canvas, image selector search, next image (new overview),
   statistics after a window change, and the same with 2,000 positives.

Latencies are taken inside the page (``performance.now()`` at the key press and
in a MutationObserver), so Playwright's round trips are not counted.

Usage:
    python benchmarks/bench_app.py [--changes 50] [--skip-large]
    python benchmarks/bench_app.py --startup-only [--runs 5]   # quick: start-up only

Nothing is timed in the tests; the figures go to benchmarks/README-app.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / 'benchmarks'), str(ROOT)]
from _data import print_machine_info, silence_warnings  # noqa: E402

from app.browser import launch_chromium, spawn_server, stop_server  # noqa: E402

TIMEOUT = 120_000

# installs window.__p: resolves with the ms between the Enter key in ``inputSel`` and the
# first moment ``statusSel`` contains ``text`` (MutationObserver + animation-frame polling)
_MEASURE_JS = '''
([inputSel, statusSel, text]) => {
  // "A B": B inside A, across shadow roots
  const walk = (root, sel) => {
    const hit = root.querySelector(sel);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const h = walk(el.shadowRoot, sel); if (h) return h; }
    }
    return null;
  };
  const find = (sel) => {
    let node = document;
    for (const part of sel.split(' ')) {
      const root = node === document ? document : (node.shadowRoot || node);
      node = walk(root, part);
      if (!node) return null;
    }
    return node;
  };
  const input = find(inputSel);
  let t0 = null;
  window.__p = new Promise((resolve, reject) => {
    let done = false;
    const check = () => {
      if (done || t0 === null) return;
      const el = find(statusSel);
      const content = (el ? el.textContent + (el.shadowRoot ? el.shadowRoot.textContent : '')
                       : '').replace(/\s+/g, ' ');
      if (content.includes(text)) {
        done = true; resolve(performance.now() - t0);
      }
    };
    const obs = new MutationObserver(check);
    obs.observe(document, {subtree: true, childList: true, characterData: true});
    const root = find(statusSel);
    if (root) obs.observe(root.getRootNode(), {subtree: true, childList: true,
                                                characterData: true});
    const poll = () => { check(); if (!done) requestAnimationFrame(poll); };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && t0 === null) { t0 = performance.now(); requestAnimationFrame(poll); }
    }, {capture: true});
    setTimeout(() => { if (!done) reject(new Error('timeout waiting for ' + text)); }, 60000);
  });
}
'''


def start_server(args, cwd):
    """``(process, url, seconds until the URL was printed)``."""
    t0 = time.perf_counter()
    proc, url = spawn_server(args, cwd=cwd)
    return proc, url, time.perf_counter() - t0


def timed_change(page, widget: str, value, status_sel: str, expect_text: str) -> float:
    """ms from Enter in the widget's input to ``status_sel`` containing ``expect_text``."""
    box = page.locator(f'.w-{widget} input').first
    box.fill(str(value))
    page.evaluate(_MEASURE_JS, [f'.w-{widget} input', status_sel, expect_text])
    box.press('Enter')
    return float(page.evaluate('() => window.__p'))


def settle(page, h: int) -> None:
    """Wait until the statistics and both galleries show window ``h`` x 128."""
    page.locator('.stats-numbers tr', has_text='window (h x w)').filter(
        has_text=f'{h}x128').wait_for(timeout=TIMEOUT)
    for name in ('Positives', 'Negatives'):
        page.locator('.galleries p', has_text=name).filter(
            has_text=f'window {h}x128').first.wait_for(timeout=TIMEOUT)


def window_changes(page, heights, status_sel: str, text: str) -> list:
    """ms of each window height change in ``heights`` until ``status_sel`` shows
    ``text.format(h=h)``. Each waits for the statistics and galleries of its change (they
    follow on later ticks), so the next change starts from an idle page."""
    out = []
    for h in heights:
        out.append(timed_change(page, 'window_h', h, status_sel, text.format(h=h)))
        settle(page, h)
    return out


def first_canvas(page, url) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    page.locator('.overview canvas').first.wait_for(state='visible', timeout=TIMEOUT)
    return time.perf_counter() - t0


def pct(values, q):
    return float(np.percentile(np.asarray(values), q))


def bench_demo(browser, n_changes: int, runs: int = 3, startup_only: bool = False) -> dict:
    out = {'start_to_url': [], 'open_to_canvas': [], 'start_to_canvas': []}
    with tempfile.TemporaryDirectory() as work:
        for run in range(runs):
            t0 = time.perf_counter()
            proc, url, to_url = start_server(['--workdir', os.path.join(work, 'cache')], work)
            try:
                page = browser.new_page(viewport={'width': 1500, 'height': 1300})
                page.set_default_timeout(TIMEOUT)
                to_canvas = first_canvas(page, url)
                out['start_to_url'].append(to_url)
                out['open_to_canvas'].append(to_canvas)
                out['start_to_canvas'].append(time.perf_counter() - t0)
                if run == runs - 1 and not startup_only:
                    page.locator('.stats-numbers').wait_for(timeout=TIMEOUT)
                    out['preview_ms'] = window_changes(
                        page, [64 + 8 * (k % 20) + (0 if k % 40 < 20 else 4)
                               for k in range(n_changes)], '.status', 'window {h}x128')
                    # statistics latency measured on its own, same way
                    out['stats_ms'] = window_changes(
                        page, [300 + 4 * k for k in range(min(20, n_changes))],
                        '.stats-numbers', '{h}x128')
                page.close()
            finally:
                stop_server(proc)
    return out


def make_large_dataset(root: Path, n_images=10_000, n_annots=100_000, width=1000, height=800,
                       n_files=10, seed=0) -> Path:
    """10,000 image entries (sharing ``n_files`` PNGs) with 100,000 boxes."""
    import cv2
    path = root / 'large.kwcoco.json'
    if path.exists():
        return path
    rng = np.random.RandomState(seed)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        img = (rng.rand(height // 20, width // 20, 3) * 255).astype(np.uint8)
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / 'images' / f'base_{f:02d}.png'), img)
    images = [{'id': g, 'file_name': f'images/base_{(g - 1) % n_files:02d}.png',
               'name': f'img_{g:05d}', 'width': width, 'height': height}
              for g in range(1, n_images + 1)]
    cats = [{'id': c, 'name': f'cat{c}'} for c in range(1, 11)]
    gids = rng.randint(1, n_images + 1, n_annots)
    w = rng.uniform(8, 150, n_annots).round(1)
    h = rng.uniform(8, 150, n_annots).round(1)
    x = (rng.rand(n_annots) * (width - w)).round(1)
    y = (rng.rand(n_annots) * (height - h)).round(1)
    cids = rng.randint(1, 11, n_annots)
    anns = [{'id': i + 1, 'image_id': int(g), 'category_id': int(c),
             'bbox': [float(a), float(b), float(cw), float(ch)], 'area': float(cw * ch)}
            for i, (g, c, a, b, cw, ch) in enumerate(zip(gids, cids, x, y, w, h))]
    path.write_text(json.dumps({'categories': cats, 'images': images, 'annotations': anns}))
    return path


def bench_large(browser, root: Path) -> dict:
    path = make_large_dataset(root)
    out = {}
    t0 = time.perf_counter()
    proc, url, to_url = start_server([str(path), '--workdir', str(root / 'cache')], root)
    try:
        out['start_to_url'] = to_url
        page = browser.new_page(viewport={'width': 1500, 'height': 1300})
        page.set_default_timeout(TIMEOUT)
        out['open_to_canvas'] = first_canvas(page, url)
        out['start_to_canvas'] = time.perf_counter() - t0
        page.locator('.stats-numbers').wait_for(timeout=TIMEOUT)
        # selector: search narrows the list of 10,000 images
        search = []
        for k, text in enumerate(['img_0999', 'img_05', 'img_1234', 'img_0', 'img_09876']):
            n = sum(1 for g in range(1, 10_001) if text in f'img_{g:05d}')
            box = page.locator('.w-search input').first
            box.fill(text)
            page.evaluate(_MEASURE_JS, ['.w-search input', '.image-count',
                                        f'{n} of 10000 images match'])
            box.press('Enter')
            search.append(float(page.evaluate('() => window.__p')))
        out['search_ms'] = search
        page.locator('.w-search input').first.fill('')
        page.locator('.w-search input').first.press('Enter')
        page.locator('.image-count').filter(has_text='10000 of 10000').wait_for(timeout=TIMEOUT)
        # overview: next image (the plot is reused: the status line, updated in the same
        # server callback as the overview's image, names the new image)
        nexts = []
        for k in range(10):
            gid = int(page.locator('.status').get_attribute('data-gid'))
            page.evaluate(_MEASURE_JS, ['.w-next_button button', '.status', f'image {gid + 1} '])
            page.locator('.w-next_button button').press('Enter')
            nexts.append(float(page.evaluate('() => window.__p')))
        out['next_image_ms'] = nexts
        # statistics after a window change (16 positives, 16 negatives)
        out['stats_ms'] = window_changes(page, [100 + 8 * k for k in range(5)],
                                         '.stats-numbers', '{h}x128')
        out['preview_ms'] = window_changes(page, [200 + 8 * k for k in range(10)],
                                           '.status', 'window {h}x128')
        # a bigger pool: 2,000 positives
        big = []
        box = page.locator('.w-n_pos input').first
        for k, n in enumerate([2000, 2001, 2002]):
            box.fill(str(n))
            page.evaluate(_MEASURE_JS, ['.w-n_pos input', '.stats-numbers', f'positives {n}'])
            box.press('Enter')
            big.append(float(page.evaluate('() => window.__p')))
        out['stats_2000_ms'] = big
        page.close()
    finally:
        stop_server(proc)
    return out


def summary(values) -> str:
    return (f'p50 {statistics.median(values):.0f} ms, p95 {pct(values, 95):.0f} ms, '
            f'max {max(values):.0f} ms (n={len(values)})')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='explorer speed in a real browser')
    parser.add_argument('--changes', type=int, default=50)
    parser.add_argument('--skip-large', action='store_true')
    parser.add_argument('--json', default=None, help='also write the raw figures here')
    parser.add_argument('--startup-only', action='store_true',
                        help='quick mode: only the demo start-up figures (no changes, no large)')
    parser.add_argument('--runs', type=int, default=3, help='demo server starts (default: 3)')
    args = parser.parse_args(argv)
    silence_warnings()
    print_machine_info()
    from playwright.sync_api import sync_playwright
    results = {}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        demo = bench_demo(browser, args.changes, runs=args.runs, startup_only=args.startup_only)
        results['demo'] = demo
        print('demo (shapes8, 8 images 600x600):')
        print(f"  server start -> URL printed: "
              f"{', '.join(f'{v:.2f}' for v in demo['start_to_url'])} s")
        print(f"  page open -> first canvas:   "
              f"{', '.join(f'{v:.2f}' for v in demo['open_to_canvas'])} s")
        print(f"  server start -> first canvas: "
              f"{', '.join(f'{v:.2f}' for v in demo['start_to_canvas'])} s (target < 3 s)")
        if not args.startup_only:
            print(f"  window change -> preview:    {summary(demo['preview_ms'])} "
                  f"(target p95 < 150 ms)")
            print(f"  window change -> statistics: {summary(demo['stats_ms'])}")
        if not args.skip_large and not args.startup_only:
            with tempfile.TemporaryDirectory() as tmp:
                large = bench_large(browser, Path(tmp))
            results['large'] = large
            print('large (10,000 images 1000x800, 100,000 annotations):')
            print(f"  server start -> URL printed: {large['start_to_url']:.2f} s")
            print(f"  page open -> first canvas:   {large['open_to_canvas']:.2f} s")
            print(f"  server start -> first canvas: {large['start_to_canvas']:.2f} s")
            print(f"  selector search -> list:     {summary(large['search_ms'])} (target < 1 s)")
            print(f"  next image -> overview:      {summary(large['next_image_ms'])} "
                  f"(target < 1 s)")
            print(f"  window change -> preview:    {summary(large['preview_ms'])}")
            print(f"  window change -> statistics: {summary(large['stats_ms'])} (target < 1 s)")
            print(f"  n_pos=2000 -> statistics:    {summary(large['stats_2000_ms'])}")
        browser.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
