#!/usr/bin/env python
"""DataLoader throughput: sampler_core vs ndsampler 0.8.1 in the same torch Dataset.

Both samplers are wrapped in :class:`sampler_core.torch.SampleDataset` (same
item construction: CHW image (float32 scaled to [0, 1], or uint8), clipped ltrb boxes,
labels, aids, target tensors; same :func:`sampler_core.torch.collate`) and read
through ``torch.utils.data.DataLoader`` with 0 and 2 worker processes (fork),
in one run, on the benchmark dataset of ``bench_sampling.py`` (6 PNGs of
5000 x 4000 pixels, 200 annotations each, decoded once into each library's
``.npy`` cache).

Pools: each sampler preselects the same counts (``--n-pos`` positives and
``--n-neg`` negatives, ``--window`` pixels, seed 0) with its own random draws;
the dataset order is shuffled (epoch 0). Timing: a pass over ``--num`` items
(``batch_size=--batch``); the clock starts when the first batch arrives (so
worker start-up is excluded and reported separately); best of ``--repeats``
passes. Throughput is samples per second.

Training options (``sampler_core`` only, one more table): the same pools read through
a :class:`~sampler_core.config.SamplingConfig` as fixed ``--window`` windows, with
``window_size_range: [W/2, W]`` + ``output_dims: [3W/4, 3W/4]``, and with
``scale_range: [0.75, 1.25]``, timed the same way in the same run, each with its ratio
to the fixed windows (goal: >= 0.8).

Usage:
    python benchmarks/bench_dataloader.py             # ~1-2 minutes once the data exists
    python benchmarks/bench_dataloader.py --quick
    python benchmarks/bench_dataloader.py --only-options --no-ndsampler
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.fspath(HERE))
sys.path.insert(0, os.fspath(HERE.parent))

import _data  # noqa: E402

_data.silence_warnings()


@contextlib.contextmanager
def quiet():
    """Swallow stdout / stderr (ndsampler's progress bars)."""
    with open(os.devnull, 'w') as devnull, contextlib.redirect_stdout(devnull), \
            contextlib.redirect_stderr(devnull):
        yield


def build(fpath, workdir: Path, window, n_pos: int, n_neg: int, with_nd: bool):
    import kwcoco
    import sampler_core
    samplers = {}
    ours = sampler_core.CocoSampler(kwcoco.CocoDataset(os.fspath(fpath)), backend='npy',
                                    workdir=os.fspath(workdir / 'cache_sampler_core'))
    ours.frames.prepare(verbose=0)
    ours.regions.preselect(n_pos=n_pos, n_neg=n_neg, window_dims=window, rng=0)
    samplers['sampler_core'] = ours
    if with_nd:
        import ndsampler
        with quiet():
            nd = ndsampler.CocoSampler(kwcoco.CocoDataset(os.fspath(fpath)), backend='npy',
                                       workdir=os.fspath(workdir / 'cache_ndsampler'))
            nd.frames.prepare()
            nd.regions.preselect(n_pos=n_pos, n_neg=n_neg, window_dims=window, rng=0)
        samplers[f'ndsampler {ndsampler.__version__}'] = nd
    return samplers


def one_pass(dataset, workers: int, num: int, batch: int):
    """(startup seconds, samples/s after the first batch, samples seen)."""
    import torch
    from sampler_core.torch import collate
    subset = torch.utils.data.Subset(dataset, range(min(num, len(dataset))))
    kw = dict(multiprocessing_context='fork') if workers else {}
    loader = torch.utils.data.DataLoader(subset, batch_size=batch, num_workers=workers,
                                         collate_fn=collate, **kw)
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t1 = time.perf_counter()
    n = 0
    for b in it:
        n += len(b['boxes'])
    t2 = time.perf_counter()
    del first
    return t1 - t0, n / max(t2 - t1, 1e-9), n + batch


def bench_max_nodata(fpath, workdir: Path, args) -> None:
    """Print the ``max_nodata_fraction`` case: the same pools drawn plain and with the
    threshold (``--pad`` context, so windows near the border hold padding), their draw time,
    what the threshold moved / dropped, and ``SampleDataset`` samples/s of each (float32,
    each timed pass alternating between the two, best of ``--repeats``)."""
    import kwcoco
    import sampler_core
    from sampler_core.torch import SampleDataset
    window, pad = tuple(args.window), (args.pad, args.pad)
    base = sampler_core.CocoSampler(kwcoco.CocoDataset(os.fspath(fpath)), backend='npy',
                                    workdir=os.fspath(workdir / 'cache_sampler_core'))
    cases = {}
    for label, frac in (('plain fixed window', None),
                        (f'max_nodata_fraction {args.max_nodata_fraction}',
                         args.max_nodata_fraction)):
        sampler = base.fork()
        t0 = time.perf_counter()
        sampler.regions.preselect(n_pos=args.n_pos, n_neg=args.n_neg, window_dims=window,
                                  rng=0, pad=pad, max_nodata_fraction=frac)
        draw = time.perf_counter() - t0
        dataset = SampleDataset(sampler, mode='train', shuffle=True, seed=0,
                                target={'window_dims': window, 'pad': pad})
        with quiet():
            dataset[0]
        cases[label] = (dataset, draw, sampler.regions.nodata_stats, {})
    for _ in range(args.repeats):
        for workers in args.workers:
            for dataset, _, _, best in cases.values():
                with quiet():
                    rate = one_pass(dataset, workers, args.num, args.batch)[1]
                best[workers] = max(best.get(workers, 0.0), rate)
    print()
    print(f'max_nodata_fraction (pad {pad}; moved / dropped: positives, negatives):')
    print('| case | pools | draw (s) | moved / dropped | workers | samples/s | vs plain |')
    print('|---|---:|---:|---|---:|---:|---:|')
    plain = next(iter(cases.values()))[3]
    for label, (dataset, draw, st, best) in cases.items():
        moved = (f"{st['positives_redrawn']} / {st['positives_dropped']}, "
                 f"{st['negatives_redrawn']} / {st['negatives_dropped']}")
        for workers, rate in best.items():
            print(f'| {label} | {dataset.sampler.n_samples} | {draw:.3f} | {moved} | {workers} | '
                  f'{rate:,.0f} | {rate / plain[workers]:.0%} |')


#: the training-option variants timed against fixed windows (``window`` = (H, W))
def option_variants(window) -> dict:
    """``{name: config fields}``: fixed windows, random sizes resampled, scale jitter."""
    side = min(window)
    out = 3 * side // 4
    return {
        'fixed': {},
        f'window_size_range [{side // 2}, {side}] + output_dims [{out}, {out}]': {
            'window_size_range': [side // 2, side], 'output_dims': [out, out]},
        'scale_range [0.75, 1.25]': {'scale_range': [0.75, 1.25]},
    }


def option_rows(fpath, workdir: Path, args) -> list:
    """``[(image dtype, variant, workers, samples/s, first batch s, CPU ms / item)]`` for
    each variant; the CPU time (this process, all its threads; 0 workers only) is what
    a shared machine's load disturbs least."""
    from sampler_core import SamplingConfig
    from sampler_core.torch import SampleDataset
    rows = []
    for dtype in args.image_dtypes:
        datasets = {}
        for name, fields in option_variants(tuple(args.window)).items():
            cfg = SamplingConfig(dataset=os.fspath(fpath), backend='npy',
                                 workdir=os.fspath(workdir / 'cache_sampler_core'),
                                 window_dims=tuple(args.window), n_pos=args.n_pos,
                                 n_neg=args.n_neg, seed=0, **fields)
            datasets[name] = SampleDataset(cfg, mode='train', shuffle=True, seed=0,
                                           image_dtype=dtype)
            with quiet():
                datasets[name][0]
        for workers in args.workers:
            best = {name: (0.0, None, float('inf')) for name in datasets}
            for _ in range(args.repeats):   # interleaved: the machine's load hits all alike
                for name, dataset in datasets.items():
                    cpu0 = time.process_time()
                    with quiet():
                        start, rate, n = one_pass(dataset, workers, args.num, args.batch)
                    cpu = (time.process_time() - cpu0) / n * 1e3 if workers == 0 else float('nan')
                    rate0, start0, cpu_best = best[name]
                    best[name] = (max(rate0, rate), start if start0 is None else min(start0, start),
                                  min(cpu_best, cpu) if workers == 0 else cpu)
            rows.extend((dtype, name, workers, *best[name]) for name in datasets)
    return rows


def print_option_rows(rows) -> None:
    print()
    print('| image | windows | workers | samples/s | / fixed | CPU ms / item | fixed / this '
          '(CPU) | first batch (s) |')
    print('|---|---|---:|---:|---:|---:|---:|---:|')
    fixed = {(d, w): (r, c) for d, n, w, r, _, c in rows if n == 'fixed'}
    for dtype, name, workers, rate, startup, cpu in rows:
        rate0, cpu0 = fixed.get((dtype, workers), (float('nan'), float('nan')))
        cpu_text = f'{cpu:.2f} | {cpu0 / cpu:.2f}' if workers == 0 else '- | -'
        print(f'| {dtype} | {name} | {workers} | {rate:,.0f} | {rate / rate0:.2f} | {cpu_text} | '
              f'{startup:.2f} |')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--workdir', default='/tmp/sampler-bench',
                        help='dataset and cache folder (shared with bench_sampling.py)')
    parser.add_argument('--window', type=int, nargs=2, default=(256, 256), metavar=('H', 'W'))
    parser.add_argument('--n-pos', type=int, default=1000, help='positives in the pool')
    parser.add_argument('--n-neg', type=int, default=1000, help='negatives in the pool')
    parser.add_argument('--num', type=int, default=1024, help='items per timed pass')
    parser.add_argument('--batch', type=int, default=16, help='batch size')
    parser.add_argument('--workers', type=int, nargs='*', default=[0, 2])
    parser.add_argument('--image-dtypes', nargs='*', default=['float32', 'uint8'],
                        choices=['float32', 'uint8'], help='SampleDataset image_dtype values')
    parser.add_argument('--repeats', type=int, default=2, help='timed passes, best kept')
    parser.add_argument('--quick', action='store_true', help='--num 256 --repeats 1')
    parser.add_argument('--no-ndsampler', action='store_true', help='skip ndsampler')
    parser.add_argument('--max-nodata-fraction', type=float, default=0.0,
                        help='threshold of the max_nodata_fraction case (negative: skip it)')
    parser.add_argument('--pad', type=int, default=32, help='pad of the max_nodata_fraction case')
    parser.add_argument('--no-options', action='store_true',
                        help='skip the training-option table (window_size_range, scale_range)')
    parser.add_argument('--only-options', action='store_true',
                        help='only the training-option table')
    args = parser.parse_args(argv)
    if args.quick:
        args.num, args.repeats = 256, 1
    import torch
    from sampler_core.torch import SampleDataset
    torch.set_num_threads(1)
    _data.print_machine_info()
    print(f'torch {torch.__version__}; window {tuple(args.window)}, pools {args.n_pos} pos + '
          f'{args.n_neg} neg, {args.num} items per pass, batch {args.batch}, best of '
          f'{args.repeats}')
    workdir = Path(args.workdir)
    fpath = _data.ensure_image_dataset(workdir)
    if args.only_options:
        print_option_rows(option_rows(fpath, workdir, args))
        return 0
    samplers = build(fpath, workdir, tuple(args.window), args.n_pos, args.n_neg,
                     not args.no_ndsampler)
    rows = []
    for dtype in args.image_dtypes:
        for name, sampler in samplers.items():
            dataset = SampleDataset(sampler, mode='train', shuffle=True, seed=0,
                                    image_dtype=dtype, target={'window_dims': tuple(args.window)})
            with quiet():
                dataset[0]  # warm the memmaps / annotation caches of the main process
            for workers in args.workers:
                best, startup = 0.0, None
                for _ in range(args.repeats):
                    with quiet():
                        start, rate, n = one_pass(dataset, workers, args.num, args.batch)
                    best = max(best, rate)
                    startup = start if startup is None else min(startup, start)
                rows.append((dtype, name, workers, best, startup))
    print()
    print('| image | sampler | workers | samples/s | first batch (s) |')
    print('|---|---|---:|---:|---:|')
    for dtype, name, workers, rate, startup in rows:
        print(f'| {dtype} | {name} | {workers} | {rate:,.0f} | {startup:.2f} |')
    base = {(d, w): r for d, n, w, r, _ in rows if n == 'sampler_core'}
    for dtype, name, workers, rate, _ in rows:
        if name != 'sampler_core' and (dtype, workers) in base:
            print(f'{dtype}, {workers} workers: sampler_core / {name} = '
                  f'{base[dtype, workers] / rate:.2f}x')
    if args.max_nodata_fraction >= 0:
        bench_max_nodata(fpath, workdir, args)
    if not args.no_options:
        print_option_rows(option_rows(fpath, workdir, args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
