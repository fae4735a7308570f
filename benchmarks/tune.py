"""Choose each method's unlearning settings for a profile on the VALIDATION split.

    python benchmarks/tune.py --profile cpu --seeds 3 --out benchmarks/results

For every method it runs a small grid on every seed, scores each config by the validation
NoMUS (dlfd/tuning.py: validation accuracy and the forget-vs-validation MIA; the test split
is never used) and prints the winners in the form of ``Profile.method_configs``. The chosen
values are copied into dlfd/profiles.py by hand, with this script's output committed beside
them, so that every default can be traced to a validation run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dlfd import experiment
from dlfd.profiles import get_profile
from dlfd.tuning import tune

LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
SPACES = {
    "finetune": {"lr": LRS},
    "neggrad": {"lr": LRS},
    "neggrad_plus": {"lr": LRS},
    "cf_k": {"lr": LRS},
    "eu_k": {"lr": LRS},
    "random_labels": {"lr": LRS},
    "unsir": {"lr": LRS},
    "bad_teacher": {"lr": LRS},
    "scrub": {"lr": LRS},
    "salun": {"lr": LRS},
    "dlfd": {"lr": [3e-4, 1e-3], "steps": [5, 10], "step_size": [1 / 255, 4 / 255],
             "tau": [0.05, 0.1]},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="*", default=list(SPACES))
    p.add_argument("--runs", default="runs/tune", help="where the reference models are cached")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    unknown = sorted(set(a.methods) - set(SPACES))
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {sorted(SPACES)}")
    profile = get_profile(a.profile)
    preps = [experiment.prepare(profile, seed, f"{a.runs}_{profile.name}", device=a.device)
             for seed in range(a.seeds)]
    chosen, tables, t0 = {}, {}, time.perf_counter()
    for method in a.methods:
        chosen[method], tables[method] = tune(preps, method, SPACES[method])
        best = max(tables[method], key=lambda r: r["val_nomus"])
        print(f"{method:14s} {chosen[method]}  val_nomus={best['val_nomus']:.3f} "
              f"val_acc={best['val_acc']:.3f} mia_val={best['mia_val']:.3f}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"tune_{profile.name}.json"
    path.write_text(json.dumps(dict(profile=profile.name, seeds=a.seeds, chosen=chosen,
                                    grid=tables, seconds=time.perf_counter() - t0), indent=2))
    print(f"method_configs = {chosen!r}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
