"""Time the loss-MIA's attack model and the per-step forgetting-score pass, old way against
new way, side by side in one run (docs/method.md §2.2 and §5 D3 "test-set selection").

1. ``attack``: the cross-validated logistic regression of :func:`dlfd.metrics.mia_from_losses`
   fitted by scikit-learn (``cross_val_score(LogisticRegression())``, what the project ran
   before) and by :func:`dlfd.logistic.cv_accuracy` (one batched Newton solve for every
   split), on the same splits. Sizes: DLFD's monitor on ORL (30 forget vs 40 validation
   photos, 3 splits), its default subsample (128 vs 128, 3 splits) and one evaluation on
   Fashion-MNIST (500 per side, 10 splits). It also counts the splits on which the two
   accuracies differ.
2. ``pass``: one forgetting-score estimate of a model on ORL's forget and test photos (the
   public code's selection step): through the data loaders (:func:`forget_vs_val`), from
   the tensors :class:`~dlfd.unlearn.monitor.ForgettingMonitor` keeps on the device, and
   from those tensors in channels-last layout (``channels_last=True``, what checkpoint
   selection uses on CPU), then in channels-last layout and cache-sized chunks
   (``chunk_pixels``, what checkpoint selection also uses on CPU), with the largest logit
   difference the layout and the chunks make. The second
   case has the size of a selection step on Fashion-MNIST (500 forget and 5,000 test
   images, 32 px), on random images. The models are the profile's architecture, untrained:
   the cost does not depend on the weights.

Usage::

    python benchmarks/attack_cost.py [--repeats 20] [--threads 1] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np
import torch


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (imports, first allocations)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def attack_rows(repeats: int) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    from dlfd.logistic import cv_accuracy

    rows = []
    rng = np.random.default_rng(0)
    for name, n, splits in (("monitor, ORL", 30, 3), ("monitor, default", 128, 3),
                            ("evaluation, Fashion-MNIST", 500, 10)):
        x = np.r_[rng.exponential(0.5, n), rng.exponential(1.0, n)]
        y = np.r_[np.ones(n), np.zeros(n)]
        cv = StratifiedShuffleSplit(n_splits=splits, test_size=0.3, random_state=0)
        folds = list(cv.split(x[:, None], y))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old = cross_val_score(LogisticRegression(), x[:, None], y, cv=folds)
            old_ms = _median_ms(lambda: cross_val_score(LogisticRegression(), x[:, None], y,
                                                        cv=folds), repeats)
        new = cv_accuracy(x, y, folds)
        new_ms = _median_ms(lambda: cv_accuracy(x, y, folds), repeats)
        rows.append(dict(case=name, per_side=n, splits=splits, sklearn_ms=old_ms,
                         dlfd_ms=new_ms, speedup=old_ms / new_ms,
                         differing_splits=int((old != new).sum())))
    return rows


def _pass_row(case: str, model, forget, nonmembers, repeats: int) -> dict:
    from dlfd.unlearn.base import CPU_CHUNK_PIXELS
    from dlfd.unlearn.monitor import ForgettingMonitor, forget_vs_val

    monitors = {name: ForgettingMonitor(forget, nonmembers, "cpu", seed=0, n_splits=3, **kw)
                for name, kw in (("default", {}), ("last", dict(channels_last=True)),
                                 ("chunked", dict(channels_last=True,
                                                  chunk_pixels=CPU_CHUNK_PIXELS)))}
    via_loaders = _median_ms(lambda: forget_vs_val(model, forget, nonmembers, "cpu", seed=0,
                                                   n_splits=3), repeats)
    cached, last, chunked = (_median_ms(lambda: monitors[name](model), repeats)
                             for name in monitors)
    logits = {name: m.logits(model)[0] for name, m in monitors.items()}
    return dict(case=case, loaders_ms=via_loaders, cached_ms=cached, speedup=via_loaders / cached,
                channels_last_ms=last, channels_last_speedup=cached / last,
                max_logit_diff=float((logits["default"] - logits["last"]).abs().max()),
                chunked_ms=chunked, chunk_images=monitors["chunked"].chunk,
                chunked_speedup=last / chunked,
                chunked_max_logit_diff=float((logits["last"] - logits["chunked"]).abs().max()))


def pass_rows(repeats: int) -> list[dict]:
    from torch.utils.data import DataLoader, TensorDataset

    from dlfd.data import load_split_data, make_loaders
    from dlfd.experiment import split_for
    from dlfd.models import build_model
    from dlfd.profiles import get_profile
    from dlfd.sources import get_source

    profile = get_profile("cpu", dataset="orl")
    source = get_source("orl")
    split = load_split_data(source, split_for(source, profile, 0), profile.image_size)
    loaders = make_loaders(split, profile.batch_size, 0)
    torch.manual_seed(0)
    model = build_model(profile.arch, split.num_classes).eval()
    n = len(loaders.forget_eval.dataset) + len(loaders.test.dataset)
    rows = [_pass_row(f"ORL forget + test ({n} photos, {profile.image_size} px)", model,
                      loaders.forget_eval, loaders.test, repeats)]
    fm = get_profile("cpu", dataset="fashion-mnist")
    model = build_model(fm.arch, 10).eval()
    forget, test = (DataLoader(TensorDataset(torch.randn(k, 3, fm.image_size, fm.image_size),
                                             torch.randint(0, 10, (k,))), batch_size=256)
                    for k in (500, 5000))
    rows.append(_pass_row(f"Fashion-MNIST size (5500 images, {fm.image_size} px)", model,
                          forget, test, max(3, repeats // 4)))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    result = dict(threads=a.threads, attack=attack_rows(a.repeats),
                  pass_=pass_rows(max(3, a.repeats // 4)))
    print("attack model: median ms per call")
    for r in result["attack"]:
        print(f"  {r['case']:28s} {r['per_side']:4d}/side {r['splits']:2d} splits  "
              f"sklearn {r['sklearn_ms']:7.2f}  dlfd {r['dlfd_ms']:6.2f}  "
              f"×{r['speedup']:.0f}  differing splits: {r['differing_splits']}")
    print("forgetting-score pass: median ms per call")
    for r in result["pass_"]:
        print(f"  {r['case']:44s} loaders {r['loaders_ms']:8.1f}  cached {r['cached_ms']:8.1f}"
              f"  ×{r['speedup']:.1f}  channels-last {r['channels_last_ms']:8.1f}"
              f"  ×{r['channels_last_speedup']:.1f}  max |Δ logit| {r['max_logit_diff']:.1e}")
        print(f"  {'':44s} chunks of {r['chunk_images']} images {r['chunked_ms']:8.1f}"
              f"  ×{r['chunked_speedup']:.1f} over channels-last  max |Δ logit| "
              f"{r['chunked_max_logit_diff']:.1e}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
