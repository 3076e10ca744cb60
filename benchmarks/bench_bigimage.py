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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--moves', type=int, default=40)
    parser.add_argument('--cache', type=Path, default=default_cache())
    parser.add_argument('--prepare-only', action='store_true')
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    path = make_bigimage_dataset(args.cache)
    print(f'dataset {path} ({time.perf_counter() - t0:.1f} s)', flush=True)
    print(f'npy cache built in {prepare_cache(path, args.cache / "work"):.1f} s', flush=True)
    if args.prepare_only:
        return 0
    return measure(path, args.cache / 'work', args.moves)


if __name__ == '__main__':
    sys.exit(main())
