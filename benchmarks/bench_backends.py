#!/usr/bin/env python
"""Pixel backends side by side: cache size, prepare time and samples/s.

On the sampling benchmark's data (``_data.ensure_image_dataset``: 6 PNG images of
5000 x 4000 RGB, 200 annotations each), one process:

* ``npy``: sampler_core's memory-mapped ``.npy`` cache;
* ``cog``: sampler_core's tiled, compressed TIFF cache (deflate, 256 x 256 tiles);
* ``png``: ``backend=None`` on the source PNGs (each image decoded whole once, then
  kept in memory within ``DECODED_CACHE_BYTES``);
* ``nd-cog``: ndsampler 0.8.1's ``cog`` backend, when its GDAL import works.

Per backend: the cache's bytes on disk and the time to prepare it (from an empty
folder, in this thread), then samples/s of positives at 256 x 256 and 1024 x 1024
(``{'gid', 'cx', 'cy', 'window_dims'}``, the targets of ``bench_sampling.py``),
pixels only (``with_annots=False``) and with annotations. Each measurement gets a fresh
sampler, as a new training process would (the OS page cache is not dropped):
``first`` is its first pass (npy: each 1 MiB block's CRC is checked on first
touch; cog: no decoded tile cached; png: each image decoded once in it), ``best``
the best of ``--repeats`` later passes with the same sampler (cog: tiles already
decoded are reused from its per-process tile cache of ``TILE_CACHE_BYTES``, 256 MiB).
Every backend's pixels are checked against the npy backend's on the first 20
targets (with another sampler).

Usage:
    python benchmarks/bench_backends.py            # 500 samples a pass, 3 repeats
    python benchmarks/bench_backends.py --quick    # 100 samples a pass, 1 repeat
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.fspath(HERE))
sys.path.insert(0, os.fspath(HERE.parent))

import _data  # noqa: E402
import bench_sampling  # noqa: E402

_data.silence_warnings()

SIZES = {'pos256': (256, 256), 'pos1024': (1024, 1024)}

#: the issue's goals: (what, limit)
GOALS = ('cog cache <= 40 % of the npy cache', 'cog pos256 >= 50 % of npy samples/s')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workdir', default='/tmp/sampler-bench',
                        help='dataset + cache folder (default: %(default)s)')
    parser.add_argument('--quick', action='store_true', help='100 samples a pass, 1 repeat')
    parser.add_argument('-n', '--num', type=int, default=None,
                        help='samples per timed pass (default 500, 100 with --quick)')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed passes after the first, best kept (default 3, 1 --quick)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-ndsampler', action='store_true', help="skip ndsampler's cog")
    return parser.parse_args(argv)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob('*') if p.is_file())


def new_sampler(name: str, dset, root: Path):
    """A fresh sampler of backend ``name`` (its cache, if any, already on disk)."""
    import sampler_core
    backend = {'npy': 'npy', 'cog': 'cog', 'png': None}[name]
    if name == 'cog':  # a fresh process has no decoded tile
        from sampler_core import cog
        with cog._TILES.lock:
            cog._TILES.items.clear()
            cog._TILES.nbytes = 0
    return sampler_core.CocoSampler(dset, workdir=os.fspath(root / name), backend=backend)


def build(name: str, fpath: Path, root: Path) -> dict:
    """Backend ``name``'s cache prepared from scratch: sampler, seconds, bytes, dataset."""
    import kwcoco
    workdir = root / name
    if workdir.exists():
        shutil.rmtree(workdir)
    dset = kwcoco.CocoDataset(os.fspath(fpath))
    if name == 'nd-cog':
        import ndsampler
        with bench_sampling.quiet():
            sampler = ndsampler.CocoSampler(dset, workdir=os.fspath(workdir), backend='cog')
            t0 = time.perf_counter()
            sampler.frames.prepare()
        seconds = time.perf_counter() - t0
        return {'sampler': sampler, 'seconds': seconds, 'bytes': dir_bytes(workdir)}
    sampler = new_sampler(name, dset, root)
    t0 = time.perf_counter()
    sampler.frames.prepare(verbose=0)
    seconds = time.perf_counter() - t0
    if name == 'png':
        return {'sampler': sampler, 'seconds': None, 'bytes': dir_bytes(fpath.parent / 'images'),
                'dset': dset}
    return {'sampler': sampler, 'seconds': seconds, 'bytes': dir_bytes(workdir), 'dset': dset}


def rate(fn, targets) -> float:
    trs = [dict(tr) for tr in targets]
    t0 = time.perf_counter()
    for tr in trs:
        fn(tr)
    return len(trs) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    args = parse_args(argv)
    num = args.num or (100 if args.quick else 500)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    _data.print_machine_info()
    print(_data.sampler_core_state())
    workdir = Path(args.workdir)
    fpath = _data.ensure_image_dataset(workdir)
    root = workdir / 'bench_backends'
    names = ['npy', 'cog', 'png'] + ([] if args.no_ndsampler else ['nd-cog'])
    built, errors = {}, {}
    for name in names:
        try:
            built[name] = build(name, fpath, root)
            print(f'{name}: prepared in {built[name]["seconds"] or 0:.1f} s, '
                  f'{built[name]["bytes"] / 2 ** 20:,.1f} MiB on disk')
        except Exception as ex:
            errors[name] = f'{type(ex).__name__}: {" ".join(str(ex).split())[:200]}'
            print(f'{name}: not available ({errors[name]})')
            if not isinstance(ex, (ImportError, ModuleNotFoundError)):
                traceback.print_exc()
    ref = built['npy']['sampler']
    targets = bench_sampling.make_targets(ref, num, args.seed)
    results = {}
    for case, dims in SIZES.items():
        trs = [dict(tr, window_dims=dims) for tr in targets['pos256_annots']] \
            if case == 'pos256' else targets['pos1024_annots']
        for with_annots in (False, True):
            key = (case, with_annots)
            for name, info in built.items():
                check = info['sampler']
                try:
                    for tr in trs[:20]:
                        want = np.asarray(ref.load_sample(dict(tr), with_annots=False)['im'])
                        got = np.asarray(check.load_sample(dict(tr), with_annots=False)['im'])
                        if not np.array_equal(got, want):
                            raise AssertionError(f'{name}: pixels differ from npy for {tr}')
                    if name == 'nd-cog':
                        sampler = check
                    else:
                        sampler = new_sampler(name, info['dset'], root)

                    def fn(tr, sampler=sampler):
                        sample = sampler.load_sample(tr, with_annots=with_annots)
                        return np.asarray(sample['im'])
                    first = rate(fn, trs)
                    best = max(rate(fn, trs) for _ in range(repeats)) if repeats else None
                    results[key + (name,)] = (first, best)
                except Exception as ex:
                    results[key + (name,)] = None
                    errors[f'{name} {case}'] = f'{type(ex).__name__}: {str(ex)[:200]}'
    # ---------------------------------------------------------------- report
    print()
    print(f'Samples/s, {num} positives a pass, first pass / best of {repeats} '
          f'(wall time, higher is better):')
    print()
    head = '| case | annots | ' + ' | '.join(built) + ' | cog / npy (best) |'
    print(head)
    print('|' + '---|' * (len(built) + 3))
    for case in SIZES:
        for with_annots in (False, True):
            cells = []
            for name in built:
                res = results.get((case, with_annots, name))
                cells.append('FAILED' if res is None else
                             f'{res[0]:,.0f} / {res[1]:,.0f}' if res[1] else f'{res[0]:,.0f}')
            npy = results.get((case, with_annots, 'npy'))
            cg = results.get((case, with_annots, 'cog'))
            ratio = f'{cg[1] / npy[1]:.0%}' if npy and cg and npy[1] and cg[1] else '-'
            print(f'| {case} | {"yes" if with_annots else "no"} | ' + ' | '.join(cells) +
                  f' | {ratio} |')
    print()
    print('| backend | cache on disk | of npy | prepare (s) |')
    print('|---|---|---|---|')
    npy_bytes = built['npy']['bytes']
    for name, info in built.items():
        what = 'source PNGs' if name == 'png' else 'cache'
        seconds = '-' if info['seconds'] is None else f'{info["seconds"]:.1f}'
        print(f'| {name} | {info["bytes"] / 2 ** 20:,.1f} MiB ({what}) | '
              f'{info["bytes"] / npy_bytes:.0%} | {seconds} |')
    for name, why in errors.items():
        print(f'| {name} | not measured: {why} | | |')
    print()
    cog_ok = 'cog' in built
    size_ratio = built['cog']['bytes'] / npy_bytes if cog_ok else None
    speed = [results.get(('pos256', a, n)) for a in (False, True) for n in ('cog', 'npy')]
    print('| goal | measured | met? |')
    print('|---|---|---|')
    if size_ratio is not None:
        print(f'| {GOALS[0]} | {size_ratio:.1%} | {"yes" if size_ratio <= 0.4 else "NO"} |')
    for with_annots, (cg, npy) in zip((False, True), (speed[:2], speed[2:])):
        if cg and npy and cg[1] and npy[1]:
            r = cg[1] / npy[1]
            print(f'| {GOALS[1]} (annots: {"yes" if with_annots else "no"}, best) | {r:.0%} | '
                  f'{"yes" if r >= 0.5 else "NO"} |')
            r = cg[0] / npy[0]
            print(f'| {GOALS[1]} (annots: {"yes" if with_annots else "no"}, first pass) | '
                  f'{r:.0%} | {"yes" if r >= 0.5 else "NO"} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
