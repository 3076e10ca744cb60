#!/usr/bin/env python
"""Sampling throughput: sampler_core vs ndsampler 0.8.1 vs a raw numpy-memmap crop.

One process, side by side, identical target lists:

  (a) ours     sampler_core.CocoSampler(backend='npy').load_sample(target, with_annots=...)
  (b) nd       ndsampler.CocoSampler(backend='npy').load_sample(target, with_annots=...)
  (c) memmap   np.array(mm[y0:y1, x0:x1]) on np.load(<sampler_core .npy cache>, mmap_mode='r')
               (memmaps opened once up front) -- the physical floor of any npy sampler.

Cases: positives 256x256 with annotations, given by gid + centre
(``{'gid', 'cx', 'cy', 'window_dims'}``, integer centres) and by annotation
(``{'aid', 'window_dims': (256, 256)}``: the positive's own window widened to
256, centred on its box in float64), positives 1024x1024 with and without
annotations, negatives 256x256 (with annotations, i.e. the empty annotation
lookup). Windows lie fully inside the image (so the memmap floor needs no
padding); targets are shuffled across images, as a training loader would see them.

Protocol: build the dataset once (cached in --workdir), prepare the .npy caches
of both libraries, then per case:

* warm-up (untimed): a few targets of every case through a throwaway sampler of
  each library, so that one-time process set-up (lazy imports, first calls
  into kwimage / shapely) falls on no case's first pass, whatever their order.
* first pass: each library gets its own freshly read ``kwcoco.CocoDataset``
  (read outside the timer: the same work for both). Timed together, for each
  library: constructing its sampler on that dataset (``CocoSampler(dset,
  backend='npy')``: whatever either library builds in its constructor is
  counted) and loading the case's targets once (caches on disk prepared; no
  annotation geometry parsed, no spatial index, no delayed tree, no open
  memmap, no checksum verified). The memmap floor opens its memmaps inside the
  same timer. The OS page cache is not dropped. Reported in its own table,
  with the ratio to ndsampler.
* later passes: --repeats passes with the same samplers (libraries
  interleaved), best kept.

Every pass is timed with time.perf_counter (wall) and time.process_time (CPU
of the process). Pixel equality with the memmap crop and annotation counts are
checked after the timing.

Usage:
    python benchmarks/bench_sampling.py                # full run (~ a few minutes)
    python benchmarks/bench_sampling.py --quick        # smaller run
    python benchmarks/bench_sampling.py --profile      # also cProfile sampler_core
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.fspath(HERE))
sys.path.insert(0, os.fspath(HERE.parent))

import _data  # noqa: E402

_data.silence_warnings()

#: case name -> (window_dims (h, w), kind, with_annots, target ratio spec)
CASES = {
    'pos256_annots': ((256, 256), 'pos', True),
    'pos256_annots_aid': ((256, 256), 'aid', True),
    'pos1024_annots': ((1024, 1024), 'pos', True),
    'pos1024_noannots': ((1024, 1024), 'pos', False),
    'neg256_annots': ((256, 256), 'neg', True),
}

#: the issue's targets: (case, 'nd' | 'floor', minimum ratio of ours to it)
GOALS = [
    ('pos256_annots', 'nd', 5.0),
    ('pos256_annots_aid', 'nd', 5.0),
    ('pos1024_noannots', 'floor', 0.85),
    ('pos1024_annots', 'floor', 0.85),
    ('neg256_annots', 'nd', 3.0),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workdir', default='/tmp/sampler-bench',
                        help='dataset + cache folder (default: %(default)s)')
    parser.add_argument('--quick', action='store_true',
                        help='smaller run: fewer samples per pass (dataset is the same)')
    parser.add_argument('-n', '--num', type=int, default=None,
                        help='samples per timed pass (default 500, 100 with --quick)')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes, best kept')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cases', nargs='*', default=list(CASES), choices=list(CASES))
    parser.add_argument('--no-ndsampler', action='store_true', help='skip ndsampler')
    parser.add_argument('--lazy-nd', action='store_true',
                        help="time ndsampler without copying its lazy memmap 'im' view "
                             "(by default every library's 'im' is materialised)")
    parser.add_argument('--profile', action='store_true',
                        help='after the table, cProfile sampler_core on pos256_annots and '
                             'pos1024_annots / pos1024_noannots and print the hot spots')
    parser.add_argument('--profile-top', type=int, default=25)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------
@contextlib.contextmanager
def quiet():
    """Swallow stdout / stderr (ndsampler's progress bars)."""
    with open(os.devnull, 'w') as devnull, contextlib.redirect_stdout(devnull), \
            contextlib.redirect_stderr(devnull):
        yield


def new_sampler(lib, dset, workdir):
    """A ``lib`` (``'ours'`` or ``'nd'``) sampler on ``dset`` with its ``.npy`` cache folder."""
    if lib == 'ours':
        import sampler_core
        return sampler_core.CocoSampler(
            dset, workdir=os.fspath(workdir / 'cache_sampler_core'), backend='npy')
    import ndsampler
    with quiet():
        return ndsampler.CocoSampler(dset, workdir=os.fspath(workdir / 'cache_ndsampler'),
                                     backend='npy')


def build_samplers(fpath, workdir, with_nd=True, verbose=True):
    """``{'ours': CocoSampler, 'nd': ndsampler.CocoSampler}`` on a freshly read dataset,
    their ``.npy`` caches built (once; later calls find them on disk)."""
    import kwcoco
    out = {}
    t0 = time.perf_counter()
    dset = kwcoco.CocoDataset(os.fspath(fpath))
    ours = new_sampler('ours', dset, workdir)
    t1 = time.perf_counter()
    ours.frames.prepare(verbose=0)
    t2 = time.perf_counter()
    out['ours'] = ours
    if verbose:
        print(f'sampler_core: init {t1 - t0:.2f} s, frames.prepare {t2 - t1:.2f} s '
              f'(cache {ours.frames.cache_dpath})')
    if with_nd:
        import ndsampler
        t0 = time.perf_counter()
        dset2 = kwcoco.CocoDataset(os.fspath(fpath))
        nd = new_sampler('nd', dset2, workdir)
        t1 = time.perf_counter()
        with quiet():
            nd.frames.prepare()
        t2 = time.perf_counter()
        out['nd'] = nd
        if verbose:
            print(f'ndsampler {ndsampler.__version__}: init {t1 - t0:.2f} s, frames.prepare '
                  f'{t2 - t1:.2f} s (cache {nd.frames.cache_dpath})')
    return out


def open_floor_memmaps(paths):
    """``{gid: np.load(path, mmap_mode='r')}`` of ``{gid: <sampler_core npy cache>}``."""
    return {gid: np.load(os.fspath(path), mmap_mode='r') for gid, path in paths.items()}


def make_targets(ours, num, seed):
    """Identical target lists for every case, chosen from sampler_core's regions."""
    rng = np.random.RandomState(seed)
    table = ours.regions.targets
    gids = np.asarray(table['gid'])
    cx = np.round(np.asarray(table['cx'])).astype(int)
    cy = np.round(np.asarray(table['cy'])).astype(int)
    img_w = np.asarray(table['img_width'])
    img_h = np.asarray(table['img_height'])
    aids = np.asarray(table['aid'])
    fcx, fcy = np.asarray(table['cx']), np.asarray(table['cy'])
    bw, bh = np.asarray(table['width']), np.asarray(table['height'])
    targets = {}
    for name, (dims, kind, _) in CASES.items():
        h, w = dims
        if kind == 'aid':  # the positive's own window (box <= 256) widened to 256
            x0, y0 = np.floor(fcx - w / 2), np.floor(fcy - h / 2)
            inside = ((x0 >= 0) & (x0 + w <= img_w) & (y0 >= 0) & (y0 + h <= img_h) &
                      (bw <= w) & (bh <= h) & (aids >= 0))
            rows = np.flatnonzero(inside)
            rows = rng.choice(rows, size=num, replace=num > len(rows))
            targets[name] = [{'aid': int(aids[r]), 'window_dims': dims} for r in rows.tolist()]
        elif kind == 'pos':
            inside = ((cx - w // 2 >= 0) & (cx + w // 2 <= img_w) &
                      (cy - h // 2 >= 0) & (cy + h // 2 <= img_h))
            rows = np.flatnonzero(inside)
            rows = rng.choice(rows, size=num, replace=num > len(rows))
            targets[name] = [
                {'gid': int(gids[r]), 'cx': int(cx[r]), 'cy': int(cy[r]), 'window_dims': dims}
                for r in rows.tolist()]
        else:
            ours.regions.preselect(n_pos=0, n_neg=num, window_dims=dims, rng=seed)
            negs = [ours.regions.get_negative(i) for i in range(ours.regions.n_negatives)]
            if len(negs) < num:
                print(f'warning: only {len(negs)} negatives found for {name}')
            out = []
            for tr in negs:
                # negative windows have integer corners; centre = corner + size / 2
                out.append({'gid': int(tr['gid']), 'cx': int(round(tr['cx'])),
                            'cy': int(round(tr['cy'])), 'window_dims': dims})
            rng.shuffle(out)
            targets[name] = out
    return targets


def window_of(tr, dset=None):
    """``(y0, y1, x0, x1)`` of a target's window, computed here (not by either library)."""
    h, w = tr['window_dims']
    if 'aid' in tr:  # centred on the annotation's box, in float64
        x, y, bw, bh = (float(v) for v in dset.anns[tr['aid']]['bbox'])
        cx, cy = x + bw / 2, y + bh / 2
    else:
        cx, cy = tr['cx'], tr['cy']
    y0 = int(np.floor(cy - h / 2))
    x0 = int(np.floor(cx - w / 2))
    return y0, y0 + h, x0, x0 + w


def materialize(sample):
    """Make ``sample['im']`` an in-memory array.

    ndsampler 0.8.1 (npy backend) returns ``im`` as a lazy ``np.memmap`` view:
    no pixel is read until the consumer touches it. A training loader copies
    it anyway (collate / torch.from_numpy of a read-only map), so the
    benchmark forces that copy here; arrays that already own their memory
    (sampler_core, the memmap floor) are left as they are (no extra copy).
    """
    im = sample['im']
    if isinstance(im, np.memmap) or not im.flags['OWNDATA']:
        sample['im'] = np.array(im)
    return sample


def make_builders(fpath, workdir, floor_paths, with_annots, with_nd=True, lazy_nd=False,
                  dset=None):
    """``{lib: build}``: ``build()`` makes a fresh loader ``fn(target) -> sample``.

    The datasets are read here (not timed); ``build`` constructs the sampler on
    its dataset (or opens the floor's memmaps), so timing ``build()`` plus the
    first pass counts construction for every library.
    """
    import kwcoco
    builders = {}
    libs = ['ours', 'nd'] if with_nd else ['ours']
    for lib in libs:
        lib_dset = kwcoco.CocoDataset(os.fspath(fpath))

        def build(lib=lib, lib_dset=lib_dset):
            sampler = new_sampler(lib, lib_dset, workdir)
            if lib == 'nd' and lazy_nd:
                return lambda tr: sampler.load_sample(tr, with_annots=with_annots)
            return lambda tr: materialize(sampler.load_sample(tr, with_annots=with_annots))
        builders[lib] = build

    def build_floor():
        mms = open_floor_memmaps(floor_paths)

        def floor(tr):
            y0, y1, x0, x1 = window_of(tr, dset)
            gid = dset.anns[tr['aid']]['image_id'] if 'aid' in tr else tr['gid']
            return {'im': np.array(mms[gid][y0:y1, x0:x1])}
        return floor
    builders['floor'] = build_floor
    return builders


# --------------------------------------------------------------------------
# checks and timing
# --------------------------------------------------------------------------
def check_case(name, targets, loaders, with_annots, n_check=20):
    """Same pixels from all three on the first targets; mean annotation counts."""
    notes = []
    ref = None
    for tr in targets[:n_check]:
        ims = {}
        for lib, fn in loaders.items():
            sample = fn(dict(tr))
            ims[lib] = np.asarray(sample['im'])
        ref = ims['floor']
        for lib, im in ims.items():
            if im.shape != ref.shape or not np.array_equal(im, ref):
                notes.append(f'{name}: {lib} pixels differ from the memmap crop for {tr} '
                             f'(shape {im.shape} vs {ref.shape})')
                break
    counts = {}
    if with_annots:
        for lib in ('ours', 'nd'):
            if lib not in loaders:
                continue
            n = [len(loaders[lib](dict(tr))['annots']['aids']) for tr in targets[:100]]
            counts[lib] = float(np.mean(n))
    return notes, counts


def warm_up(fpath, workdir, floor_paths, targets, with_nd=True, dset=None, n=5):
    """Untimed: ``n`` targets of every case through a throwaway sampler of each library.

    Loads the modules and one-time state both libraries set up on their first
    sample (lazy imports, kwimage / shapely / delayed_image first calls), so that
    the first pass of every case measures a fresh sampler in a warm process,
    whatever the order of the cases. Nothing of these samplers is reused.
    """
    for name, (_, _, with_annots) in CASES.items():
        builders = make_builders(fpath, workdir, floor_paths, with_annots, with_nd=with_nd,
                                 dset=dset)
        for build in builders.values():
            fn = build()
            for tr in targets[name][:n]:
                fn(dict(tr))


def time_pass(fn, targets, build=None):
    """``(wall, cpu, fn)`` of one pass; with ``build`` the loader is ``build()``, timed too."""
    # copy the dicts outside the timed region: both libraries copy the target anyway,
    # but neither must see a dict mutated by the other.
    trs = [dict(tr) for tr in targets]
    c0 = time.process_time()
    t0 = time.perf_counter()
    if build is not None:
        fn = build()
    for tr in trs:
        fn(tr)
    t1 = time.perf_counter()
    c1 = time.process_time()
    return t1 - t0, c1 - c0, fn


def bench_case(name, targets, builders, repeats):
    """``({lib: {'first', 'first_cpu', 'best', 'best_cpu': samples/s, 'error': str | None}},
    {lib: loader})``.

    The first pass of each library times ``builders[lib]()`` (a fresh sampler)
    and the pass; the later passes reuse the loaders it built.

    ``best`` uses wall time (time.perf_counter), ``best_cpu`` the process CPU
    time (time.process_time) of the same passes: CPU time does not count the
    time the process waited for a core, so it is less disturbed by other work
    on a shared machine.
    """
    res = {lib: {'first': None, 'first_cpu': None, 'best': None, 'best_cpu': None,
                 'error': None} for lib in builders}
    loaders = {}
    n = len(targets)
    # first pass (cold, construction included): for the side table and as the warm-up
    for lib, build in builders.items():
        try:
            wall, cpu, loaders[lib] = time_pass(None, targets, build)
            res[lib]['first'], res[lib]['first_cpu'] = n / wall, n / max(cpu, 1e-9)
        except Exception:
            res[lib]['error'] = traceback.format_exc()
            print(f'!! {lib} failed on {name}:\n{res[lib]["error"]}')
    for _ in range(repeats):
        for lib, fn in loaders.items():  # interleaved so drift hits everyone alike
            if res[lib]['error']:
                continue
            wall, cpu, _ = time_pass(fn, targets)
            rate = n / wall
            if res[lib]['best'] is None or rate > res[lib]['best']:
                res[lib]['best'] = rate
            rate = n / max(cpu, 1e-9)
            if res[lib]['best_cpu'] is None or rate > res[lib]['best_cpu']:
                res[lib]['best_cpu'] = rate
    return res, loaders


def fmt_rate(v):
    return 'FAILED' if v is None else f'{v:,.0f}'


def fmt_ratio(a, b, pct=False):
    if a is None or b is None:
        return 'n/a'
    return f'{100 * a / b:.0f}%' if pct else f'{a / b:.2f}x'


def print_main_table(results, counts, n_by_case, key):
    print('| case | n | sampler_core | ndsampler 0.8.1 | memmap floor | ours/ndsampler '
          '| ours/floor | mean annots ours / nd |')
    print('|' + '---|' * 8)
    for name, res in results.items():
        o = res.get('ours', {}).get(key)
        d = res.get('nd', {}).get(key)
        f = res.get('floor', {}).get(key)
        c = counts.get(name, {})
        ann = (f"{c['ours']:.1f} / {c['nd']:.1f}" if 'ours' in c and 'nd' in c
               else (f"{c['ours']:.1f} / -" if 'ours' in c else '-'))
        print(f'| {name} | {n_by_case[name]} | {fmt_rate(o)} | '
              f'{fmt_rate(d) if "nd" in res else "-"} | {fmt_rate(f)} | '
              f'{fmt_ratio(o, d) if "nd" in res else "-"} | {fmt_ratio(o, f, pct=True)} | {ann} |')


def print_tables(results, counts, n_by_case):
    print()
    print('Best of repeats, samples/s by wall time (time.perf_counter; higher is better):')
    print()
    print_main_table(results, counts, n_by_case, 'best')
    print()
    print('Same passes, samples/s by process CPU time (time.process_time; not disturbed by '
          'waiting for a core when the machine is busy):')
    print()
    print_main_table(results, counts, n_by_case, 'best_cpu')
    print()
    print('First pass: sampler construction + one pass of fresh samplers (nothing parsed, '
          'indexed, opened or verified; OS page cache warm), samples/s by wall time (CPU time '
          'in brackets):')
    print()
    print('| case | sampler_core | ndsampler 0.8.1 | memmap floor | ours/ndsampler | ours/floor |')
    print('|---|---|---|---|---|---|')
    for name, res in results.items():
        row = [f"{fmt_rate(res[lib]['first'])} ({fmt_rate(res[lib]['first_cpu'])})"
               if lib in res else '-' for lib in ('ours', 'nd', 'floor')]
        o, d, f = (res.get(lib, {}) for lib in ('ours', 'nd', 'floor'))
        ratios = [f"{fmt_ratio(o.get(k), d.get(k))}" for k in ('first', 'first_cpu')] \
            if d else ['-', '-']
        pct = [fmt_ratio(o.get(k), f.get(k), pct=True) for k in ('first', 'first_cpu')]
        print(f'| {name} | ' + ' | '.join(row) +
              f' | {ratios[0]} ({ratios[1]}) | {pct[0]} ({pct[1]}) |')
    print()
    print('Targets from the issue, later passes and first pass (wall time; CPU time in '
          'brackets):')
    print()
    print('| goal | pass | measured | met? |')
    print('|---|---|---|---|')
    for (name, ref, want), (key, key_cpu) in [
            (goal, keys) for goal in GOALS
            for keys in (('best', 'best_cpu'), ('first', 'first_cpu'))]:
        if name not in results or ref not in results[name]:
            continue
        label = 'ndsampler' if ref == 'nd' else 'memmap floor'
        goal = (f'{name}: ours >= {want:g}x {label}' if ref == 'nd'
                else f'{name}: ours >= {100 * want:.0f}% of {label}')
        got = {}
        for k in (key, key_cpu):
            o = results[name].get('ours', {}).get(k)
            r = results[name][ref].get(k)
            got[k] = None if (o is None or r is None) else o / r
        label_pass = 'later' if key == 'best' else 'first'
        if got[key] is None:
            print(f'| {goal} | {label_pass} | n/a | FAILED |')
            continue
        show = (lambda v: f'{v:.2f}x') if ref == 'nd' else (lambda v: f'{100 * v:.0f}%')
        met = 'yes' if got[key] >= want else 'NO'
        met_cpu = 'yes' if (got[key_cpu] or 0) >= want else 'NO'
        print(f"| {goal} | {label_pass} | {show(got[key])} ({show(got[key_cpu])}) | "
              f"{met} ({met_cpu}) |")


# --------------------------------------------------------------------------
# profiling
# --------------------------------------------------------------------------
def profile_case(name, fn, targets, workdir, top, warm=True):
    """cProfile (CPU time) of one pass of ``fn``; ``warm``: after 50 untimed loads."""
    trs = [dict(tr) for tr in targets]
    if warm:
        for tr in trs[:50]:
            fn(dict(tr))
    prof = cProfile.Profile(time.process_time)
    t0 = time.perf_counter()
    prof.enable()
    for tr in trs:
        fn(tr)
    prof.disable()
    dt = time.perf_counter() - t0
    out = Path(workdir) / f'profile_{name}.prof'
    prof.dump_stats(os.fspath(out))
    print()
    print(f'===== cProfile sampler_core {name} ({"warm" if warm else "first pass"}, CPU time): '
          f'{len(trs)} samples, {1000 * dt / len(trs):.3f} ms/sample under the profiler -> {out}')
    for key in ('tottime', 'cumulative'):
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        text = buf.getvalue()
        start = text.find('   ncalls')
        print(f'--- top {top} by {key}')
        print(text[start:].rstrip())


def main(argv=None):
    args = parse_args(argv)
    num = args.num or (100 if args.quick else 500)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _data.print_machine_info()
    import sampler_core
    print(f'sampler_core {sampler_core.__version__} from {Path(sampler_core.__file__).parent}')
    fpath = _data.ensure_image_dataset(workdir)
    samplers = build_samplers(fpath, workdir, with_nd=not args.no_ndsampler)
    ours = samplers['ours']
    floor_paths = {gid: ours.frames._cache_fpath(gid) for gid in ours.image_ids}
    targets = make_targets(ours, num, args.seed)
    print(f'{num} samples per pass, {args.repeats} timed passes (best kept) after one '
          f'first pass (sampler construction included); targets shuffled across '
          f'{len(floor_paths)} images')
    if args.lazy_nd:
        print("--lazy-nd: ndsampler's 'im' (a lazy np.memmap view) is NOT copied: its pixel "
              "reads are not timed")
    else:
        print("every library's 'im' is materialised in the timed loop (ndsampler returns a "
              "lazy np.memmap view; it is copied with np.array, as a training loader would)")

    warm_up(fpath, workdir, floor_paths, targets, with_nd=not args.no_ndsampler,
            dset=ours.dset)
    results, counts, notes, n_by_case = {}, {}, [], {}
    for name in args.cases:
        dims, kind, with_annots = CASES[name]
        # fresh samplers per case, built inside the first pass's timer
        builders = make_builders(fpath, workdir, floor_paths, with_annots,
                                 with_nd=not args.no_ndsampler, lazy_nd=args.lazy_nd,
                                 dset=ours.dset)
        trs = targets[name]
        n_by_case[name] = len(trs)
        t0 = time.perf_counter()
        results[name], loaders = bench_case(name, trs, builders, args.repeats)
        # checked after timing, so the first pass really is the first touch
        try:
            case_notes, case_counts = check_case(name, trs, loaders, with_annots)
        except Exception:
            case_notes, case_counts = [f'{name}: check failed:\n{traceback.format_exc()}'], {}
        notes.extend(case_notes)
        counts[name] = case_counts
        print(f'  {name}: done in {time.perf_counter() - t0:.1f} s')

    _data.print_load('load average after timing')
    print_tables(results, counts, n_by_case)
    if notes:
        print()
        print('Checks:')
        for note in notes:
            print(' -', note)
    else:
        print()
        print('Checks: every library returned the same pixels as the memmap crop on the '
              'first 20 targets of each case.')
    failures = [(name, lib, r['error']) for name, res in results.items()
                for lib, r in res.items() if r['error']]
    for name, lib, err in failures:
        print(f'\nFAILED: {lib} on {name}:\n{err}')

    if args.profile:
        import kwcoco
        fresh = new_sampler('ours', kwcoco.CocoDataset(os.fspath(fpath)), workdir)
        profile_case('pos256_annots_first', lambda tr: fresh.load_sample(tr, with_annots=True),
                     targets['pos256_annots'], workdir, args.profile_top, warm=False)
        for name in ('pos256_annots', 'pos1024_annots', 'pos1024_noannots'):
            wa = CASES[name][2]
            profile_case(name, lambda tr, wa=wa: ours.load_sample(tr, with_annots=wa),
                         targets[name], workdir, args.profile_top)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
