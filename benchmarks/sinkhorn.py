"""Time dlfd.ot.sinkhorn against POT's torch backend (docs/method.md §2.3).

Both solvers run log-domain Sinkhorn with ε = 0.01 for exactly the same number of
iterations (early stopping is off on both sides: ``tol=0`` here, ``stopThr=0`` there) on
n×n cosine costs between random features of two kinds:

* ``embedding``: standard-normal 128-d vectors, the size of the penultimate embedding (the
  costs concentrate near 1, so C/ε spans a narrow band);
* ``logits``: 8-d vectors scaled by 5, like a classifier's logits (the costs span [0, 2], so
  C/ε reaches 200, which is where float32 ``exp`` leaves its fast path; POT's
  ``torch.logsumexp`` pays for that, ``dlfd.ot`` clamps those negligible terms).

Two timings per size: the plan alone (forward), and forward + backward of Σ T∘C with
respect to the features, which is what the synthesizer pays per step.

Usage::

    python benchmarks/sinkhorn.py [--sizes 32 128 512] [--iters 50] [--repeats 9]
                                  [--features embedding logits] [--threads 1]
                                  [--dtype float32] [--out results.json]

Threads default to 1: on a small shared CPU, torch's intra-op thread pool spends most of
its time waiting for busy cores and the timings become meaningless.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import ot as pot
import torch

from dlfd.ot import cosine_cost, sinkhorn


FEATURES = {"embedding": (128, 1.0), "logits": (8, 5.0)}  # (dimension, scale)


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


def _solvers(x: torch.Tensor, y: torch.Tensor, eps: float, iters: int) -> dict:
    """The four timed calls: each solver's plan, and forward + backward of Σ T∘C."""
    n = len(x)
    C = cosine_cost(x, y)
    w = torch.full((n,), 1.0 / n, dtype=x.dtype)

    def ours():
        return sinkhorn(C, eps, iters, tol=0.0)

    def theirs():
        return pot.sinkhorn(w, w, C, eps, method="sinkhorn_log", numItermax=iters,
                            stopThr=0.0, warn=False)

    def ours_grad():
        xr = x.clone().requires_grad_(True)
        Cg = cosine_cost(xr, y)
        (sinkhorn(Cg, eps, iters, tol=0.0) * Cg).sum().backward()

    def theirs_grad():
        xr = x.clone().requires_grad_(True)
        Cg = cosine_cost(xr, y)
        (pot.sinkhorn(w, w, Cg, eps, method="sinkhorn_log", numItermax=iters, stopThr=0.0,
                      warn=False) * Cg).sum().backward()

    return {"ours": ours, "pot": theirs, "ours_grad": ours_grad, "pot_grad": theirs_grad}


def _timings(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per call, after one warm-up call each."""
    for f in fns.values():
        f()
    # Interleave the solvers' repeats so that load from other processes hits all of them
    # alike; the ratio uses the minimum, the least contaminated by that load.
    res = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            res[k].append(_once(f))
    return res


def run(sizes=(32, 128, 512), iters=50, repeats=9, features="embedding", eps=0.01,
        dtype="float32", seed=0) -> list[dict]:
    dt = getattr(torch, dtype)
    dim, scale = FEATURES[features]
    rows = []
    for n in sizes:
        g = torch.Generator().manual_seed(seed + n)
        x = scale * torch.randn(n, dim, generator=g, dtype=dt)
        y = scale * torch.randn(n, dim, generator=g, dtype=dt)
        fns = _solvers(x, y, eps, iters)
        gap = float((fns["ours"]() - fns["pot"]()).abs().max())
        row = {"features": features, "dim": dim, "n": n, "iters": iters, "dtype": dtype,
               "max_abs_plan_gap": gap}
        for k, v in _timings(fns, repeats).items():
            row[f"{k}_min_ms"] = min(v)
            row[f"{k}_median_ms"] = statistics.median(v)
        row["ratio"] = row["ours_min_ms"] / row["pot_min_ms"]
        row["ratio_grad"] = row["ours_grad_min_ms"] / row["pot_grad_min_ms"]
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: min (median) milliseconds per call, and the ratio of the minima."""
    out = ["| features | n | iters | ours fwd ms | POT fwd ms | ours/POT | ours fwd+bwd ms | "
           "POT fwd+bwd ms | ours/POT | max abs plan gap |",
           "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(r, k):
        return f"{r[k + '_min_ms']:.2f} ({r[k + '_median_ms']:.2f})"

    for r in rows:
        out.append(f"| {r['features']} ({r['dim']}-d) | {r['n']} | {r['iters']} | "
                   f"{cell(r, 'ours')} | {cell(r, 'pot')} | "
                   f"{r['ratio']:.2f} | {cell(r, 'ours_grad')} | {cell(r, 'pot_grad')} | "
                   f"{r['ratio_grad']:.2f} | {r['max_abs_plan_gap']:.1e} |")
    return "\n".join(out) + "\n\nTimes are min (median) over the repeats; ratios use the minima."


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--features", nargs="+", default=["embedding", "logits"],
                   choices=sorted(FEATURES))
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [r for f in args.features
            for r in run(args.sizes, args.iters, args.repeats, features=f, dtype=args.dtype)]
    print(table(rows))
    if args.out:
        meta = {"torch": torch.__version__, "pot": pot.__version__, "threads": args.threads,
                "machine": platform.machine(), "processor": platform.processor(),
                "repeats": args.repeats, "eps": 0.01}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
