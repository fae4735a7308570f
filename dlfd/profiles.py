"""Run profiles: one name fixes the model, image size, split protocol and budgets.

``smoke`` is for CI (seconds per notebook), ``cpu`` is the tutorial default on a laptop and
``full`` is the paper's network for a GPU. How the split protocol was chosen is in README.md
("The default protocol") and NOTES.md: few training images per person so the original
model memorises, and a forget set large enough that the MIA is not pure noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Profile:
    name: str
    arch: str
    image_size: int
    epochs: int            # training epochs for the original and the retrained model
    lr: float
    batch_size: int        # training batch size
    n_train: int           # training images per identity (class)
    n_val: int             # validation images per identity
    forget_frac: float     # random-forgetting fraction of the training images
    unlearn_batch_size: int  # one epoch of unlearning should be tens of steps (NOTES.md, 3)
    seeds: int             # seeds that notebooks 02/04 average over
    augment: bool = False  # flip augmentation weakens memorisation (chosen on val; README)
    n_test: int | None = None  # None: the rest of each identity's images
    methods: tuple[str, ...] = ("finetune", "neggrad", "neggrad_plus", "cf_k", "eu_k",
                                "random_labels", "unsir", "bad_teacher", "scrub", "salun")
    # method name -> config overrides, chosen on validation by benchmarks/tune.py
    method_configs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


_SPLIT = dict(n_train=3, n_val=1, forget_frac=0.25)

# Chosen for the cpu profile by `python benchmarks/tune.py --profile cpu --seeds 3` on the
# validation split (best mean validation NoMUS over seeds 0-2; grid and scores in
# benchmarks/results/tune_cpu.json). Each method's other knobs keep its paper's defaults.
CPU_TUNED = {
    "finetune": {"lr": 3e-3}, "neggrad": {"lr": 3e-3}, "neggrad_plus": {"lr": 3e-3},
    "cf_k": {"lr": 1e-2}, "eu_k": {"lr": 3e-3}, "random_labels": {"lr": 1e-4},
    "unsir": {"lr": 3e-4}, "bad_teacher": {"lr": 3e-4}, "scrub": {"lr": 3e-4},
    "salun": {"lr": 1e-4},
    "dlfd": {"lr": 3e-4, "steps": 10, "step_size": 4 / 255, "tau": 0.1},
}

# Per-class counts for the larger datasets: the profiles' 3/1/rest suits ORL's 10 photos per
# person, not 7,000 images per class. 200 training images per class keep the original model
# memorising (NOTES.md, Fashion-MNIST table); 500 test images per class give a low-noise MIA.
DATASET_SPLITS = {
    "fashion-mnist": dict(n_train=200, n_val=100, n_test=500),
    "cifar10": dict(n_train=200, n_val=100, n_test=500),
}

PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "small_cnn", 32, epochs=20, lr=0.05, batch_size=32,
                     unlearn_batch_size=8, seeds=1, **_SPLIT,
                     method_configs={**CPU_TUNED, "dlfd": {**CPU_TUNED["dlfd"], "steps": 2}}),
    "cpu": Profile("cpu", "small_cnn", 64, epochs=40, lr=0.05, batch_size=32,
                   unlearn_batch_size=8, seeds=3, **_SPLIT, method_configs=CPU_TUNED),
    "full": Profile("full", "resnet18_mlp", 128, epochs=80, lr=0.05, batch_size=32,
                    unlearn_batch_size=8, seeds=5, **_SPLIT,
                    # not tuned for ResNet-18 yet: run benchmarks/tune.py --profile full on a GPU
                    method_configs=CPU_TUNED),
}


def get_profile(name: str, **overrides) -> Profile:
    """A profile by name, optionally with fields replaced (``get_profile("cpu", seeds=5)``)."""
    if name not in PROFILES:
        raise ValueError(f"profile={name!r}; expected one of {sorted(PROFILES)}.")
    return replace(PROFILES[name], **overrides) if overrides else PROFILES[name]
