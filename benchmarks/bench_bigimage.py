"""Speed of the explorer on one huge image: pan and zoom in a real browser.

The dataset (made once into ``--cache``, default ``~/.cache/sampler-explorer/bench-bigimage``):
one 20,000 x 20,000 px RGB image (a PNG, smooth colours with the objects painted in) holding
10,000 boxes of 10 categories, served with ``--backend npy`` (its frame cache is built once,
in the same folder).

Measured in chromium (Playwright), from inside the page: the overview is panned (mouse drag)
and zoomed (mouse wheel) ``--moves`` times; each latency runs from the input event to the
moment the overview's image is replaced by the server's re-read of the visible part (the
``src`` of the RGB glyph's canvas image changes: one Bokeh ``ColumnDataSource`` patch) and
the page has painted. Also: server start, first canvas, and the time the server took to
build the overview of the image the first time.

Usage:
    python benchmarks/bench_bigimage.py [--moves 40] [--cache DIR] [--prepare-only]

Nothing is timed in the tests; the figures go to the README.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / 'benchmarks'), str(ROOT)]

SIDE = 20_000
N_BOXES = 10_000
N_CATS = 10


def default_cache() -> Path:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'sampler-explorer' / 'bench-bigimage'


def make_bigimage_dataset(root: Path, side: int = SIDE, n_boxes: int = N_BOXES,
                          n_cats: int = N_CATS, seed: int = 0) -> Path:
    """One ``side`` x ``side`` PNG with ``n_boxes`` boxes (one per cell of a square grid);
    written once (the JSON is written last, so a complete folder has it)."""
    import cv2
    root.mkdir(parents=True, exist_ok=True)
    path = root / f'big{side}.kwcoco.json'
    if path.exists():
        return path
    rng = np.random.RandomState(seed)
    small = (rng.rand(side // 80, side // 80, 3) * 255).astype(np.uint8)
    img = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    per_row = int(np.ceil(np.sqrt(n_boxes)))
    cell = side / per_row
    anns = []
    for k in range(n_boxes):
        row, col = divmod(k, per_row)
        w, h = rng.uniform(0.2, 0.8, 2) * cell
        x = col * cell + rng.uniform(0, cell - w)
        y = row * cell + rng.uniform(0, cell - h)
        cid = int(rng.randint(1, n_cats + 1))
        shade = tuple(int(v) for v in rng.randint(0, 256, 3))
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), shade, -1)
        anns.append({'id': k + 1, 'image_id': 1, 'category_id': cid,
                     'bbox': [round(float(x), 1), round(float(y), 1), round(float(w), 1),
                              round(float(h), 1)], 'area': round(float(w * h), 1)})
    fname = f'big{side}.png'
    cv2.imwrite(str(root / fname), img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del img
    cats = [{'id': c, 'name': f'class{c}'} for c in range(1, n_cats + 1)]
    images = [{'id': 1, 'file_name': fname, 'width': side, 'height': side}]
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps({'categories': cats, 'images': images, 'annotations': anns}))
    os.replace(tmp, path)
    return path


def prepare_cache(path: Path, workdir: Path) -> float:
    """Build the image's npy frame cache (once); seconds taken."""
    from sampler_core import CocoSampler
    t0 = time.perf_counter()
    sampler = CocoSampler(str(path), backend='npy', workdir=str(workdir))
    sampler.frames.prepare()
    return time.perf_counter() - t0


TIMEOUT = 180_000

# window.__big: the overview's image and annotation sources; window.__wait(kind): resolves
# with the ms from the last input event of ``kind`` ('wheel' / 'pointerup') to the first
# painted frame after the image source changed (null after 15 s)
_HOOK_JS = r"""
() => {
  const doc = window.Bokeh.documents[0];
  const models = [...doc.all_models];
  const img = models.find(m => m.glyph && m.glyph.constructor.__name__ === 'ImageRGBA');
  const boxes = models.filter(m => m.glyph && m.data_source && m.data_source.data &&
                              'category' in m.data_source.data &&
                              !(m.tags || []).includes('halo'));
  const n = Math.max(0, ...boxes.map(r => r.data_source.data.aid.length));
  window.__big = {img, n};
  window.__last = {};
  for (const kind of ['wheel', 'pointerup']) {
    document.addEventListener(kind, (ev) => { window.__last[kind] = performance.now(); },
                              {capture: true});
  }
  window.__wait = (kind) => new Promise((resolve) => {
    const src = window.__big.img.data_source;
    const before = src.data.image ? src.data.image[0] : null;
    const start = performance.now();
    let frames = 0, worst = 0, prev = performance.now();
    const tick = () => {
      const now = performance.now();
      worst = Math.max(worst, now - prev); prev = now; frames += 1;
      const cur = src.data.image ? src.data.image[0] : null;
      if (cur !== before && window.__last[kind] !== undefined) {
        requestAnimationFrame(() => resolve({ms: performance.now() - window.__last[kind],
                                             worst_frame: worst}));
        return;
      }
      if (now - start > 15000) { resolve(null); return; }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  return n;
}
"""


def pct(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float('nan')


def measure(path, workdir: Path, moves: int) -> int:
    """Serve the dataset, open it in chromium, pan and zoom ``moves`` times."""
    from playwright.sync_api import sync_playwright

    from app.browser import launch_chromium, spawn_server, stop_server
    t0 = time.perf_counter()
    folder = Path(path).parent if Path(path).exists() else Path.cwd()
    proc, url = spawn_server([path, '--backend', 'npy', '--workdir', workdir,
                              '--allow-root', folder], cwd=folder, timeout=600)
    print(f'server start to URL: {time.perf_counter() - t0:.1f} s', flush=True)
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={'width': 1500, 'height': 1100})
            page.set_default_timeout(TIMEOUT)
            t1 = time.perf_counter()
            page.goto(url)
            canvas = page.locator('.overview canvas').first
            canvas.wait_for(state='visible')
            print(f'page open to first canvas: {time.perf_counter() - t1:.1f} s', flush=True)
            page.wait_for_function('() => window.Bokeh && [...window.Bokeh.documents[0].'
                                   'all_models].some(m => m.glyph && m.glyph.constructor.'
                                   '__name__ === "ImageRGBA")')
            print(f'page open to the image drawn: {time.perf_counter() - t1:.1f} s', flush=True)
            page.evaluate('() => new Promise(r => requestAnimationFrame(() => r()))')
            shots = ROOT / 'test-artifacts'
            shots.mkdir(exist_ok=True)
            page.locator('.overview').first.screenshot(path=str(shots / 'bench-bigimage.png'))
            n = page.evaluate(_HOOK_JS)
            print(f'boxes drawn as glyphs at the start: {n} (the others are drawn into the '
                  f'image)', flush=True)
            box = canvas.bounding_box()
            cx, cy = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
            rng = np.random.RandomState(0)
            out = {'zoom': [], 'pan': []}
            worst, missed = [], 0
            for k in range(moves):
                kind = ('zoom in', 'pan', 'pan', 'zoom out')[k % 4]
                x = cx + rng.uniform(-0.25, 0.25) * box['width']
                y = cy + rng.uniform(-0.25, 0.25) * box['height']
                page.mouse.move(x, y)
                event = 'wheel' if kind.startswith('zoom') else 'pointerup'
                page.evaluate('(k) => { window.__p = window.__wait(k); }', event)
                if kind.startswith('zoom'):
                    page.mouse.wheel(0, -300 if kind == 'zoom in' else 300)
                else:
                    page.mouse.down()
                    for step in range(1, 6):
                        page.mouse.move(x + 30 * step, y + 20 * step)
                    page.mouse.up()
                got = page.evaluate('() => window.__p')
                if got is None:
                    missed += 1
                    continue
                out['zoom' if kind.startswith('zoom') else 'pan'].append(got['ms'])
                worst.append(got['worst_frame'])
            browser.close()
    finally:
        stop_server(proc)
    both = out['zoom'] + out['pan']
    print(f'pan: n={len(out["pan"])} p50 {pct(out["pan"], 50):.0f} ms, '
          f'p95 {pct(out["pan"], 95):.0f} ms, max {max(out["pan"] or [0]):.0f} ms')
    print(f'zoom: n={len(out["zoom"])} p50 {pct(out["zoom"], 50):.0f} ms, '
          f'p95 {pct(out["zoom"], 95):.0f} ms, max {max(out["zoom"] or [0]):.0f} ms')
    print(f'pan + zoom: p95 {pct(both, 95):.0f} ms (goal < 1000 ms); longest frame during '
          f'the waits: p95 {pct(worst, 95):.0f} ms; no image update within 15 s: {missed}')
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--moves', type=int, default=40)
    parser.add_argument('--cache', type=Path, default=default_cache())
    parser.add_argument('--prepare-only', action='store_true')
    parser.add_argument('--dataset', default=None, help=(
        'measure this dataset instead (e.g. shapes8: the same gestures on the demo, to '
        'separate the machine and harness from the big image)'))
    args = parser.parse_args(argv)
    if args.dataset:
        return measure(args.dataset, args.cache / 'work', args.moves)
    t0 = time.perf_counter()
    path = make_bigimage_dataset(args.cache)
    print(f'dataset {path} ({time.perf_counter() - t0:.1f} s)', flush=True)
    print(f'npy cache built in {prepare_cache(path, args.cache / "work"):.1f} s', flush=True)
    if args.prepare_only:
        return 0
    return measure(path, args.cache / 'work', args.moves)


if __name__ == '__main__':
    sys.exit(main())
