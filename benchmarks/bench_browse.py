"""The image grid at scale in a real browser (Playwright + Debian's chromium).

Generates 100,000 image entries (sharing 16 small PNG files, 160x120) with 1,000,000
boxes over 20 categories of skewed frequency (the kwcoco dict is built with numpy, not
kwcoco's demo generator), serves it with ``sampler-explorer serve`` and measures:

* load: server start to the URL printed (the dataset is read and indexed before that);
* first canvas: page open to the overview's canvas (the served dataset is loaded), and
  page open to the grid's first page with every thumbnail drawn;
* peak server RSS (``VmHWM`` of the server process);
* grid page: "page ▶" to the next page with all its thumbnails;
* filter by category: one category added or removed, to the first page of the new
  result (its count checked against numpy on the generated arrays);
* open image: a thumbnail clicked, to the overview's status line naming that image;
* tune a window: window height typed + Enter, to the status line's new window
  (the same measure as ``bench_app.py``).

Latencies are taken inside the page (``performance.now()`` at the pointer / key event and
in a MutationObserver), so Playwright's round trips are not counted.

Usage:
    python benchmarks/bench_browse.py [--images 100000] [--annots 1000000] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / 'benchmarks'), str(ROOT)]
from _data import print_machine_info, silence_warnings  # noqa: E402
from bench_app import TIMEOUT, first_canvas, summary, window_changes  # noqa: E402

from app.browser import launch_chromium, spawn_server, stop_server  # noqa: E402

N_CATS = 20

# installs window.__p: resolves with the ms between the next pointerdown / Enter anywhere in
# the page and the first moment the element ``sel`` (searched across shadow roots) has all
# ``needles`` in its outerHTML + text
_MEASURE_JS = '''
([sel, needles]) => {
  const walk = (root) => {
    const hit = root.querySelector(sel);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const h = walk(el.shadowRoot); if (h) return h; }
    }
    return null;
  };
  let t0 = null;
  window.__p = new Promise((resolve, reject) => {
    let done = false;
    const check = () => {
      if (done || t0 === null) return;
      const el = walk(document);
      const content = el ? el.outerHTML.replace(/\\s+/g, ' ') : '';
      if (needles.every((n) => content.includes(n))) {
        done = true; resolve(performance.now() - t0);
      }
    };
    const poll = () => { check(); if (!done) requestAnimationFrame(poll); };
    const start = () => { if (t0 === null) { t0 = performance.now(); requestAnimationFrame(poll); } };
    window.addEventListener('pointerdown', start, {capture: true, once: true});
    window.addEventListener('keydown', (e) => { if (e.key === 'Enter') start(); },
                            {capture: true, once: true});
    setTimeout(() => { if (!done) reject(new Error('timeout waiting for ' + needles)); }, 120000);
  });
}
'''


def make_browse_dataset(root: Path, n_images: int = 100_000, n_annots: int = 1_000_000,
                        n_files: int = 16, width: int = 160, height: int = 120,
                        seed: int = 0) -> tuple[Path, dict]:
    """Write the dataset; return its path and the arrays the answers are computed from."""
    import cv2
    rng = np.random.RandomState(seed)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        img = (rng.rand(height // 8, width // 8, 3) * 255).astype(np.uint8)
        cv2.imwrite(str(root / 'images' / f'base_{f:02d}.png'),
                    cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC))
    gids = np.arange(1, n_images + 1)
    # skewed counts per image (some have none) and skewed category frequencies
    weights = rng.gamma(0.7, size=n_images)
    ann_gid = rng.choice(gids, size=n_annots, p=weights / weights.sum())
    cat_p = 1.0 / np.arange(1, N_CATS + 1)
    ann_cid = rng.choice(np.arange(1, N_CATS + 1), size=n_annots, p=cat_p / cat_p.sum())
    w = rng.uniform(4, 60, n_annots).round(1)
    h = rng.uniform(4, 50, n_annots).round(1)
    x = (rng.rand(n_annots) * (width - w)).round(1)
    y = (rng.rand(n_annots) * (height - h)).round(1)
    names = rng.randint(0, 10 ** 9, n_images)
    path = root / 'browse.kwcoco.json'
    with open(path, 'w') as fh:
        fh.write('{"categories": ')
        fh.write(json.dumps([{'id': c, 'name': f'cat{c:02d}'} for c in range(1, N_CATS + 1)]))
        fh.write(', "images": [')
        fh.write(', '.join(
            f'{{"id": {g}, "file_name": "images/base_{g % n_files:02d}.png", '
            f'"name": "{n:09d}.png", "width": {width}, "height": {height}}}'
            for g, n in zip(gids.tolist(), names.tolist())))
        fh.write('], "annotations": [')
        fh.write(', '.join(
            f'{{"id": {i}, "image_id": {g}, "category_id": {c}, "bbox": [{a}, {b}, {cw}, {ch}]}}'
            for i, g, c, a, b, cw, ch in zip(range(1, n_annots + 1), ann_gid.tolist(),
                                             ann_cid.tolist(), x.tolist(), y.tolist(),
                                             w.tolist(), h.tolist())))
        fh.write(']}')
    return path, {'ann_gid': ann_gid, 'ann_cid': ann_cid, 'n_images': n_images}


def images_with(arrays: dict, cats: set) -> int:
    """Images with an annotation of one of ``cats`` (all images for an empty set)."""
    if not cats:
        return arrays['n_images']
    return len(np.unique(arrays['ann_gid'][np.isin(arrays['ann_cid'], sorted(cats))]))


def timed(page, action, sel: str, needles) -> float:
    """ms from the pointer / key event of ``action()`` to ``sel`` holding ``needles``."""
    page.evaluate(_MEASURE_JS, [sel, list(needles)])
    action()
    return float(page.evaluate('() => window.__p'))


def ready_page(k: int) -> list:
    return [f'data-page="{k}" data-ready="1"']


def peak_rss_gb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024 ** 2
    return float('nan')


def bench(browser, root: Path, n_images: int, n_annots: int) -> dict:
    t0 = time.perf_counter()
    path, arrays = make_browse_dataset(root, n_images, n_annots)
    out = {'generate_s': time.perf_counter() - t0,
           'file_mb': path.stat().st_size / 1e6}
    print(f'  generated in {out["generate_s"]:.1f} s ({out["file_mb"]:.0f} MB)', flush=True)
    t0 = time.perf_counter()
    # loading a million annotations takes minutes on a busy machine: wait up to 15
    proc, url = spawn_server([str(path), '--workdir', str(root / 'cache')], cwd=root,
                             timeout=900)
    to_url = time.perf_counter() - t0
    try:
        out['load_s'] = to_url
        page = browser.new_page(viewport={'width': 1500, 'height': 1300})
        page.set_default_timeout(TIMEOUT)
        t1 = time.perf_counter()
        out['open_to_canvas_s'] = first_canvas(page, url)
        grid = page.locator('.image-grid .grid-page[data-ready="1"]')
        grid.wait_for(timeout=TIMEOUT)
        out['open_to_grid_s'] = time.perf_counter() - t1
        print(f"  load {to_url:.1f} s, canvas {out['open_to_canvas_s']:.1f} s, "
              f"grid {out['open_to_grid_s']:.1f} s", flush=True)
        # the views added after the page loaded are there: nothing moves the buttons any more
        page.locator('.stats-numbers').wait_for(timeout=TIMEOUT)
        page.locator('.thumb').first.wait_for(timeout=TIMEOUT)
        try:
            _interactions(page, out, arrays, n_images)
        except Exception as ex:   # keep the figures measured so far
            out['error'] = f'{type(ex).__name__}: {ex}'[:500]
        out['peak_rss_gb'] = peak_rss_gb(proc.pid)
        page.close()
    finally:
        stop_server(proc)
    return out


def _interactions(page, out: dict, arrays: dict, n_images: int) -> None:
    """The timed interactions of :func:`bench` (figures go into ``out`` as measured)."""
    nxt = page.locator('.w-grid_next button')
    out['page_ms'] = [timed(page, nxt.click, '.grid-page', ready_page(k))
                      for k in range(1, 13)]
    # filter by category: add one, then remove it, for 5 categories
    out['filter_ms'] = []
    for c in (1, 4, 9, 15, 20):
        name = f'cat{c:02d}'
        page.locator('.w-grid_categories .choices').first.click()
        item = page.locator('.w-grid_categories .choices__item--choice', has_text=name).first
        total = images_with(arrays, {c})
        out['filter_ms'].append(timed(page, item.click, '.grid-page',
                                      ready_page(0) + [f'of {total:,} ·']))
        remove = page.locator('.w-grid_categories .choices__button').first
        out['filter_ms'].append(timed(page, remove.click, '.grid-page',
                                      ready_page(0) + [f'of {n_images:,} ·']))
        page.keyboard.press('Escape')
    # open image: click thumbnails of the first page
    out['open_ms'] = []
    captions = page.locator('.image-grid .grid-caption[data-gid]')
    buttons = page.locator('.image-grid .grid-button button')
    for k in (3, 7, 11, 15, 19, 2, 6, 10, 14, 18):
        gid = captions.nth(k).get_attribute('data-gid')
        out['open_ms'].append(timed(page, buttons.nth(k).click, '.status',
                                    [f'data-gid="{gid}"']))
    # tune a window (as bench_app: Enter to the status line, then wait for the rest)
    out['window_ms'] = window_changes(page, [120 + 8 * k for k in range(10)], '.status',
                                      'window {h}x128')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='the image grid at scale, in a real browser')
    parser.add_argument('--images', type=int, default=100_000)
    parser.add_argument('--annots', type=int, default=1_000_000)
    parser.add_argument('--json', default=None, help='also write the raw figures here')
    args = parser.parse_args(argv)
    silence_warnings()
    print_machine_info()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = launch_chromium(p)
        print(f'grid ({args.images:,} images 160x120, {args.annots:,} annotations):', flush=True)
        out = bench(browser, Path(tmp), args.images, args.annots)
        browser.close()
    print(f"  server start -> URL (dataset loaded): {out['load_s']:.2f} s")
    print(f"  page open -> first canvas:  {out['open_to_canvas_s']:.2f} s (target < 5 s)")
    print(f"  page open -> grid page 1 with thumbnails: {out['open_to_grid_s']:.2f} s")
    print(f"  peak server RSS: {out['peak_rss_gb']:.2f} GB (target < 4 GB)")
    for key, what in (('page_ms', 'grid next page'), ('filter_ms', 'filter by category'), ('open_ms', 'open image'),
                      ('window_ms', 'tune a window')):
        if out.get(key):
            print(f'  {what + ":":22s}{summary(out[key])} (target p95 < 1 s)')
    if 'error' in out:
        print(f"  stopped early: {out['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
