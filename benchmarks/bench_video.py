#!/usr/bin/env python
"""Video sampling throughput: sampler_core vs ndsampler 0.8.1, side by side.

Dataset: kwcoco's ``vidshapes1`` demo with ``--frames`` frames of ``--size`` x ``--size``
RGB PNGs (default 10 frames of 2000 x 2000; generated once into kwcoco's demo cache).

Cases (identical, seeded target lists for every library; windows inside the frames):

  video_3x256          {'vidid', 'time_slice': 3 frames, 'space_slice': 256 x 256}
  video_3x256_scale0.5 the same windows with 'scale': 0.5 (128 x 128 output,
                       linear + antialias, delayed_image's defaults)

Libraries:

  ours npy    sampler_core.CocoSampler(backend='npy'): delayed_image reads the
              memory-mapped .npy cache of each frame (cache prepared up front)
  ours none   sampler_core.CocoSampler(backend=None): every frame decoded from PNG
  nd none     ndsampler.CocoSampler(backend=None) -- ndsampler's only working video
              configuration here: with backend='npy' it hands .npy paths to
              delayed_image, which cannot read them without GDAL (checked and
              reported at start-up)
  floor       np.array(mm[y0:y1, x0:x1]) on the 3 frames' .npy memmaps: the cost of
              touching the pixels at all (no annotations, no scaling)

Every load includes annotations (``with_annots=True``, the default). Protocol: one
timed first pass (also the warm-up), then ``--repeats`` passes with the libraries
interleaved, best kept (time.perf_counter). After timing, pixels and annotation
ids of ours and ndsampler are compared on every target of the first ``--check``.

Usage:
    python benchmarks/bench_video.py            # full run (about a minute)
    python benchmarks/bench_video.py --quick    # a few seconds
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))
import _data  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.fspath(HERE.parent))


def silence_warnings() -> None:
    warnings.filterwarnings('ignore', category=FutureWarning)
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    warnings.filterwarnings('ignore', category=UserWarning)


silence_warnings()

CASES = {
    'video_3x256': None,
    'video_3x256_scale0.5': 0.5,
}
N_TIME, WINDOW = 3, 256


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=10, help='frames in the video')
    parser.add_argument('--size', type=int, default=2000, help='frame width = height (pixels)')
    parser.add_argument('--n', type=int, default=40, help='targets per case')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes per case')
    parser.add_argument('--check', type=int, default=10, help='targets compared ours vs nd')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workdir', default=None, help='npy cache folder (default: temp)')
    parser.add_argument('--quick', action='store_true', help='--n 8 --repeats 1 --check 4')
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.check = 8, 1, 4
    return args


def build(args):
    import kwcoco
    import tempfile
    import sampler_core
    t0 = time.perf_counter()
    dset = kwcoco.CocoDataset.demo('vidshapes1', num_frames=args.frames,
                                   image_size=(args.size, args.size))
    print(f'dataset: {dset} ({args.frames} frames of {args.size}x{args.size}) in '
          f'{time.perf_counter() - t0:.1f} s: {dset.fpath}')
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix='bench_video_'))
    ours_npy = sampler_core.CocoSampler(dset, backend='npy', workdir=workdir)
    t0 = time.perf_counter()
    ours_npy.frames.prepare(verbose=0)
    print(f'sampler_core: frames.prepare {time.perf_counter() - t0:.2f} s -> '
          f'{ours_npy.frames.cache_dpath}')
    ours_none = sampler_core.CocoSampler(dset, backend=None)
    import ndsampler
    nd_none = ndsampler.CocoSampler(dset, backend=None)
    print(f'ndsampler {ndsampler.__version__}: backend=None')
    import contextlib
    import io
    try:  # does ndsampler's npy backend work for videos here?
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            nd_npy = ndsampler.CocoSampler(dset, backend='npy', workdir=workdir / 'nd')
            nd_npy.frames.prepare()
            nd_npy.load_sample({'vidid': 1, 'time_slice': slice(0, 1),
                                'space_slice': (slice(0, 8), slice(0, 8))})
        print('ndsampler backend=npy works for video targets (not timed)')
    except Exception as ex:
        print(f'ndsampler backend=npy cannot load video targets: {type(ex).__name__}: '
              f'{str(ex).splitlines()[0][:110]}')
    return dset, ours_npy, ours_none, nd_none


def make_targets(dset, args, scale):
    rng = np.random.RandomState(args.seed)
    vidid = sorted(dset.index.videos)[0]
    n_frames = len(dset.index.vidid_to_gids[vidid])
    video = dset.index.videos[vidid]
    targets = []
    for _ in range(args.n):
        t0 = int(rng.randint(0, n_frames - N_TIME + 1))
        y0 = int(rng.randint(0, video['height'] - WINDOW + 1))
        x0 = int(rng.randint(0, video['width'] - WINDOW + 1))
        tr = {'vidid': vidid, 'time_slice': slice(t0, t0 + N_TIME), 'channels': 'r|g|b',
              'space_slice': (slice(y0, y0 + WINDOW), slice(x0, x0 + WINDOW))}
        if scale is not None:
            tr['scale'] = scale
        targets.append(tr)
    return targets


def make_loaders(dset, ours_npy, ours_none, nd_none):
    vid_gids = {v: list(dset.index.vidid_to_gids[v]) for v in dset.index.videos}
    mms = {g: ours_npy.frames._data(g) for gids in vid_gids.values() for g in gids}

    def floor(tr):
        ys, xs = tr['space_slice']
        gids = vid_gids[tr['vidid']][tr['time_slice']]
        return np.stack([np.array(mms[g][ys, xs]) for g in gids])

    return {
        'ours npy': lambda tr: ours_npy.load_sample(copy.deepcopy(tr))['im'],
        'ours none': lambda tr: ours_none.load_sample(copy.deepcopy(tr))['im'],
        'nd none': lambda tr: nd_none.load_sample(copy.deepcopy(tr))['im'],
        'floor': floor,
    }


def time_pass(fn, targets):
    t0 = time.perf_counter()
    for tr in targets:
        fn(tr)
    return time.perf_counter() - t0


def check(dset, ours_npy, nd_none, targets, n):
    same_px = same_aids = 0
    for tr in targets[:n]:
        a = ours_npy.load_sample(copy.deepcopy(tr))
        b = nd_none.load_sample(copy.deepcopy(tr))
        same_px += bool(np.array_equal(np.asarray(a['im']), np.asarray(b['im'])))
        same_aids += all(set(x.data['aids'].tolist()) <= set(y.data['aids'].tolist())
                         for x, y in zip(a['annots']['frame_dets'], b['annots']['frame_dets']))
    return same_px, same_aids


def main(argv=None):
    args = parse_args(argv)
    _data.print_machine_info()
    dset, ours_npy, ours_none, nd_none = build(args)
    loaders = make_loaders(dset, ours_npy, ours_none, nd_none)
    results = {}
    for case, scale in CASES.items():
        targets = make_targets(dset, args, scale)
        first, best = {}, {lib: float('inf') for lib in loaders}
        for lib, fn in loaders.items():
            if lib == 'floor' and scale is not None:
                continue
            try:
                first[lib] = time_pass(fn, targets)
            except Exception:
                print(f'!! {lib} failed on {case}:\n{traceback.format_exc()}')
                first[lib] = float('nan')
        for _ in range(args.repeats):
            for lib, fn in loaders.items():
                if lib not in first or not np.isfinite(first[lib]):
                    continue
                best[lib] = min(best[lib], time_pass(fn, targets))
        px, aids = check(dset, ours_npy, nd_none, targets, min(args.check, len(targets)))
        results[case] = (first, best, px, aids, min(args.check, len(targets)))

    n = args.n
    print()
    print(f'Best of {args.repeats} passes, {n} targets per case, ms per sample (wall time; '
          f'lower is better); each sample is {N_TIME} frames of {WINDOW}x{WINDOW}:')
    print()
    print('| case | ours npy | ours none | ndsampler 0.8.1 (none) | floor (memmap) '
          '| nd / ours npy | nd / ours none | identical pixels | ours aids in nd |')
    print('|' + '---|' * 9)
    for case, (first, best, px, aids, n_check) in results.items():
        ms = {lib: 1000 * t / n for lib, t in best.items() if np.isfinite(t)}
        cell = {lib: f'{ms[lib]:.2f}' if lib in ms else 'n/a' for lib in loaders}
        r1 = ms['nd none'] / ms['ours npy'] if 'nd none' in ms and 'ours npy' in ms else float('nan')
        r2 = ms['nd none'] / ms['ours none'] if 'nd none' in ms and 'ours none' in ms else float('nan')
        print(f"| {case} | {cell['ours npy']} | {cell['ours none']} | {cell['nd none']} | "
              f"{cell['floor']} | {r1:.1f}x | {r2:.1f}x | {px}/{n_check} | {aids}/{n_check} |")
    print()
    print('First pass (warm-up included), ms per sample:')
    print()
    print('| case | ours npy | ours none | ndsampler 0.8.1 (none) | floor (memmap) |')
    print('|---|---|---|---|---|')
    for case, (first, *_rest) in results.items():
        row = [f'{1000 * first[lib] / n:.2f}' if lib in first and np.isfinite(first[lib])
               else 'n/a' for lib in loaders]
        print(f'| {case} | ' + ' | '.join(row) + ' |')
    print()
    target = 3.0
    for case, (first, best, *_rest) in results.items():
        if np.isfinite(best['nd none']) and np.isfinite(best['ours npy']):
            ratio = best['nd none'] / best['ours npy']
            verdict = 'meets' if ratio >= target else 'MISSES'
            print(f'{case}: sampler_core (npy) is {ratio:.1f}x ndsampler -> {verdict} the '
                  f'>= {target:.0f}x target')


if __name__ == '__main__':
    main()
