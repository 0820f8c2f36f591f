"""``art-spatial evaluate`` and ``art-spatial leaderboard render`` (registered in :mod:`art_spatial.cli`).

``evaluate`` loads a model (``--model module:attr``, ``--state-dict FILE --arch NAME`` or
``--robustbench NAME --model-dir DIR``) and data (``mnist5k`` or ``cifar10 --data-dir``), runs a suite
(:func:`art_spatial.bench.evaluate`) and writes ``report.json``, ``model_info.json``, the resumable
``state.json`` and, for suites with profiles, ``profiles.png`` into ``--out``; it prints a summary table.
An existing ``<out>/state.json`` is continued with ``--resume`` or deleted with ``--overwrite``; without
either the command refuses to run (the state is never deleted silently). ``--model module:attr`` imports
``module`` from the working directory first.
Under ``torchrun --nproc_per_node=N -m art_spatial.cli evaluate ...`` the examples are sharded across
the processes (gloo on CPU, nccl on GPU) and rank 0 writes the merged results.

Example:
    $ art-spatial evaluate --state-dict runs/demo/smallcnn_natural.pt --arch smallcnn \\
          --data mnist5k --suite pareto-mnist --n-examples 200 --out runs/eval
    $ art-spatial leaderboard render leaderboard/ --format md
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pickle
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "add_evaluate_parser",
    "add_merge_parser",
    "add_leaderboard_parser",
    "load_model_from_args",
]


def add_evaluate_parser(subparsers, positive_int, add_verbosity) -> argparse.ArgumentParser:
    """Register ``art-spatial evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="score a model on a robustness suite (Pareto AT scores, CuSP profiles)",
        description=(
            "Run an evaluation suite (attacks at several strengths, category and universal scores, "
            "profiles) on a model and write report.json, model_info.json and state.json to --out."
        ),
    )
    _add_model_and_data_arguments(p)
    _add_run_arguments(p, positive_int)
    _add_output_arguments(p)
    add_verbosity(p)
    p.set_defaults(func=run_evaluate)
    return p


def _add_model_and_data_arguments(p: argparse.ArgumentParser) -> None:
    """``evaluate``'s model source (``--model`` / ``--state-dict --arch`` / ``--robustbench``) and
    test data."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--model", help="python object 'module:attr' (an nn.Module or a factory returning one)"
    )
    src.add_argument(
        "--state-dict", type=Path, help="state_dict file (.pt, loaded with weights_only=True)"
    )
    src.add_argument(
        "--robustbench", metavar="NAME", help="RobustBench model-zoo name (needs --model-dir)"
    )
    p.add_argument("--arch", help="architecture of --state-dict (smallcnn, preactresnet18)")
    p.add_argument(
        "--model-dir",
        type=Path,
        help="RobustBench model folder (<dir>/<dataset>/<threat>/<NAME>.pt)",
    )
    p.add_argument(
        "--threat-model",
        default="Linf",
        help="RobustBench threat model of --robustbench (default Linf)",
    )
    p.add_argument(
        "--data",
        choices=("mnist5k", "cifar10"),
        default="mnist5k",
        help="test data (default mnist5k)",
    )
    p.add_argument(
        "--data-dir", type=Path, help="folder containing cifar-10-batches-py (for --data cifar10)"
    )


def _add_run_arguments(p: argparse.ArgumentParser, positive_int) -> None:
    """``evaluate``'s suite, reference, scoring and attack settings."""
    p.add_argument(
        "--suite",
        default="pareto-mnist",
        help="registered suite name or a JSON file (spatial-aa-mnist / spatial-aa-cifar10: the "
        "parameter-free ensemble, docs/spatial_aa.md)",
    )
    p.add_argument(
        "--reliable-suite",
        default=None,
        metavar="SUITE",
        help="also run this spatial-aa suite (e.g. spatial-aa-mnist) on the same points; its scores go "
        "into model_info.json beside the --suite ones (report_aa.json, state_aa.json)",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="what the universal score subtracts: a natural model's report.json evaluated on the same "
        "points, a scores JSON (category -> %%), or 'paper' for the paper's natural-model numbers (a "
        "different model). Default: none, so no universal score",
    )
    p.add_argument(
        "--score-convention",
        choices=("correct-only", "all-points"),
        default=None,
        help="accuracy on the points classified correctly without attack (the Pareto AT paper's "
        "score) or on all points (RobustBench); default: the suite's (pareto-mnist / pareto-cifar10: "
        "correct-only). Both are reported",
    )
    p.add_argument(
        "--n-examples", type=positive_int, default=None, help="evaluate the first N test points"
    )
    p.add_argument("--batch-size", type=positive_int, default=128, help="attack batch size")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks and random transforms")
    p.add_argument(
        "--mode",
        choices=("final", "worst"),
        default=None,
        help="final-iterate accuracy (papers) or the any-iterate worst case (default: the suite's)",
    )
    p.add_argument(
        "--attack-misclassified",
        action="store_true",
        help="also attack points misclassified without attack (default: count them non-robust)",
    )


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``evaluate``'s output folder, resuming, precision, sharding and model_info fields."""
    p.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="output folder")
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="resume from <out>/state.json if present"
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an existing <out>/state.json and start over (without --resume or --overwrite an "
        "existing state.json is an error: it is never deleted silently)",
    )
    from ..amp import add_amp_option

    add_amp_option(
        p,
        "run the model under torch.autocast in this dtype (attack parameters, steps and "
        "projections stay float32; see art_spatial.amp)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="evaluate only shard I of N (examples I, I+N, ...) without a process group, e.g. one "
        "task of a job array; writes <out>/partial.json, which 'art-spatial merge' combines",
    )
    p.add_argument("--name", default=None, help="model name in the report and model_info.json")
    p.add_argument("--authors", default="", help="model_info authors")
    p.add_argument("--venue", default="", help="model_info venue")
    p.add_argument("--link", default="", help="model_info link")


def load_model_from_args(args):
    """``(module, label, architecture)`` from ``--model`` / ``--state-dict --arch`` / ``--robustbench``.

    Raises:
        ValueError: naming the flag: an unknown ``--arch``, an unreadable or mismatching
            ``--state-dict``, a ``--model`` module that cannot be found, a bad RobustBench name or
            threat model.
    """
    if args.model:
        obj = _import_model(args.model)
        return obj, args.model, type(obj).__name__
    if args.state_dict:
        if not args.arch:
            raise ValueError("--state-dict needs --arch (e.g. smallcnn, preactresnet18)")
        from .._compat import torch_load_untrusted
        from ..models import MODEL_REGISTRY, build_model

        try:
            model = build_model(args.arch)
        except ValueError:
            raise ValueError(
                f"--arch {args.arch!r} is not a known architecture; choose one of "
                f"{sorted(MODEL_REGISTRY)} (or give your own model with --model module:fn)"
            ) from None
        try:
            state = torch_load_untrusted(args.state_dict)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            # torch's UnpicklingError text suggests weights_only=False: not for a file we cannot read
            why = "" if isinstance(exc, pickle.UnpicklingError) else f": {_short(exc)}"
            raise ValueError(
                f"cannot read --state-dict {str(args.state_dict)!r} with torch.load(weights_only="
                f"True) ({type(exc).__name__}{why}); it must be a state_dict saved with "
                "torch.save(model.state_dict(), path) (a whole pickled model is refused)"
            ) from None
        if not isinstance(state, dict):
            raise ValueError(
                f"--state-dict {str(args.state_dict)!r} holds a {type(state).__name__}, not a "
                "state_dict; save it with torch.save(model.state_dict(), path)"
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(
                f"--state-dict {str(args.state_dict)!r} does not fit --arch {args.arch!r} "
                f"({_short(exc)}); check --arch"
            ) from None
        return model.eval(), f"{args.arch}:{args.state_dict.name}", args.arch
    if not args.model_dir:
        raise ValueError("--robustbench needs --model-dir")
    from .robustbench import load_robustbench_model

    dataset = "cifar10" if args.data == "cifar10" else args.data
    try:
        model = load_robustbench_model(
            args.robustbench, args.model_dir, dataset=dataset, threat_model=args.threat_model
        )
    except ValueError as exc:
        raise ValueError(
            f"--robustbench {args.robustbench!r} (--data {args.data}, --threat-model "
            f"{args.threat_model}): {exc}"
        ) from None
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"--robustbench {args.robustbench!r}: cannot read its checkpoint in --model-dir ({exc})"
        ) from None
    return model, args.robustbench, type(model).__name__


def _short(exc: BaseException, limit: int = 240) -> str:
    """``exc``'s message on one line, cut at ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _import_model(spec: str):
    """The ``nn.Module`` named by ``--model module:attr`` (a factory is called), importing ``module``
    from the working directory first (as ``python -m`` would), then from the Python path."""
    import torch

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--model must be 'module:attr', e.g. 'mymodels:build', got {spec!r}")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            top = module_name.split(".")[0]
            if exc.name is None or not (
                module_name == exc.name or module_name.startswith(exc.name + ".")
            ):
                raise  # a module that the user's module imports is missing
            raise ValueError(
                f"--model {spec!r}: no module named {exc.name!r} in the working directory {cwd!r} "
                f"or on the Python path; run from the folder that holds {top}.py (or the package "
                f"{top}/), or add that folder to PYTHONPATH"
            ) from None
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise ValueError(
                    f"--model {spec!r}: {module_name!r} has no attribute {attr!r}"
                ) from None
        if not isinstance(obj, torch.nn.Module) and callable(obj):
            obj = obj()
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    if not isinstance(obj, torch.nn.Module):
        raise ValueError(f"--model {spec!r} is not an nn.Module (nor a factory returning one)")
    return obj


def _load_data(args):
    if args.data == "mnist5k":
        from ..data import load_mnist5k

        return load_mnist5k("test", seed=0)
    if args.data_dir is None:
        raise ValueError(
            "--data cifar10 needs --data-dir (the folder containing cifar-10-batches-py)"
        )
    from .robustbench import load_cifar10_robustbench

    return load_cifar10_robustbench(args.data_dir, n_examples=args.n_examples)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation; rank 0 prints the summary and writes the outputs (with ``--shard``: this
    shard's ``partial.json``)."""
    from . import distributed as D

    shard = D.parse_shard(args.shard) if getattr(args, "shard", None) else None
    if shard is not None:
        with D.local_shard(*shard):
            return _run_evaluate(args, shard)
    return _run_evaluate(args, None)


def _run_evaluate(args: argparse.Namespace, shard) -> int:
    import torch

    from . import distributed as D
    from .evaluate import evaluate

    if shard is None:
        D.init_from_env()
    rank, world = D.dist_info()
    if shard is not None:
        rank = 0  # this process alone writes its shard's files
    out = Path(args.out)
    suite, reliable_suite = _checked_suites_and_states(args, out, shard)
    model, label, arch = load_model_from_args(args)
    if getattr(args, "amp", None):
        from ..amp import AutocastModule

        model = AutocastModule(model, args.amp).eval()
    x, y = _load_data(args)
    if rank == 0:
        _clear_states(args, out, reliable_suite)
    D.barrier()
    name = args.name or label
    if rank == 0:
        n_ex = len(x) if args.n_examples is None else min(args.n_examples, len(x))
        convention = args.score_convention or suite.score_convention
        where = f"shard {shard[0]}/{shard[1]}" if shard else f"{world} process(es)"
        print(
            f"art-spatial evaluate: {name} on {args.data} ({n_ex} examples), suite {suite.name}, "
            f"scores {convention}, {where}, torch threads {torch.get_num_threads()}"
        )
    common = _evaluate_settings(args, rank, name)
    report = evaluate(
        model,
        x,
        y,
        suite,
        reference=args.reference,
        state_path=out / "state.json",
        mode=args.mode,
        score_convention=args.score_convention,
        **common,
    )
    if getattr(args, "amp", None):
        report.meta["amp"] = args.amp  # the model ran under torch.autocast in this dtype
    info = _model_info_fields(args, name, arch)
    if shard is not None:
        return _write_partial(out, shard, report, info)
    aa_report = None
    if reliable_suite is not None:
        aa_report = evaluate(
            model,
            x,
            y,
            reliable_suite,
            state_path=out / "state_aa.json",
            score_convention=report.score_convention,
            **common,
        )
    if rank == 0:
        _write_outputs(out, report, aa_report, info, suite.name)
    D.barrier()
    if world > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


def _checked_suites_and_states(args: argparse.Namespace, out: Path, shard) -> tuple:
    """``(suite, reliable_suite or None)``, after refusing to run over an earlier evaluation's state
    without ``--resume`` / ``--overwrite`` (checked before the model is loaded: never deleted
    silently)."""
    from .suites import get_suite, suite_evaluation

    state = out / "state.json"
    overwrite = getattr(args, "overwrite", False)
    if state.exists() and not args.resume:
        if not overwrite:
            raise ValueError(
                f"{str(state)!r} exists (an earlier evaluation in --out): pass --resume to continue "
                "it or --overwrite to start over (it is deleted), or choose another --out"
            )
        if not state.is_file():
            raise ValueError(
                f"{str(state)!r} is a directory, not an evaluation state file: remove or rename it, "
                "or choose another --out"
            )
    suite = get_suite(args.suite)
    if not getattr(args, "reliable_suite", None):
        return suite, None
    if shard is not None:
        raise ValueError(
            "--reliable-suite cannot be combined with --shard: shard the spatial-aa suite as its own "
            "evaluation (--suite spatial-aa-mnist --shard i/n, then art-spatial merge)"
        )
    reliable_suite = get_suite(args.reliable_suite)
    if suite_evaluation(reliable_suite) != "spatial-aa":
        raise ValueError(
            f"--reliable-suite must be a spatial-aa suite (spatial-aa-mnist, spatial-aa-cifar10 or a "
            f"JSON suite of 'spatial-aa' attacks), got {args.reliable_suite!r}"
        )
    state_aa = out / "state_aa.json"
    if state_aa.exists() and not args.resume and not overwrite:
        raise ValueError(
            f"{str(state_aa)!r} exists: pass --resume to continue it or --overwrite to start over"
        )
    return suite, reliable_suite


def _clear_states(args: argparse.Namespace, out: Path, reliable_suite) -> None:
    """Create ``--out``; with ``--overwrite``, delete the earlier evaluation's states."""
    out.mkdir(parents=True, exist_ok=True)
    if not getattr(args, "overwrite", False):
        return
    state = out / "state.json"
    if state.is_file():
        state.unlink()
        logger.info("--overwrite: deleted %s", state)
    if reliable_suite is not None and (out / "state_aa.json").is_file():
        (out / "state_aa.json").unlink()


def _evaluate_settings(args: argparse.Namespace, rank: int, name: str) -> dict:
    """The keyword arguments of :func:`art_spatial.bench.evaluate` that every suite run shares."""
    return {
        "n_examples": args.n_examples,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "attack_misclassified": args.attack_misclassified,
        "verbose": not args.quiet and rank == 0,
        "model_name": name,
    }


def _model_info_fields(args: argparse.Namespace, name: str, arch: str) -> dict:
    """The descriptive keyword arguments of :func:`art_spatial.bench.leaderboard.to_model_info`."""
    return {
        "name": name,
        "authors": args.authors,
        "venue": args.venue,
        "architecture": arch,
        "link": args.link,
        "dataset": args.data if args.data != "mnist5k" else "mnist",
    }


def _write_partial(out: Path, shard: tuple, report, info: dict) -> int:
    """Write this shard's ``partial.json`` (its state and report) for ``art-spatial merge``."""
    import json

    from .._io import write_json_atomic
    from .shards import partial_payload

    state_data = json.loads((out / "state.json").read_text(encoding="utf-8"))
    write_json_atomic(out / "partial.json", partial_payload(*shard, state_data, report, info))
    print(
        f"shard {shard[0]}/{shard[1]}: partial report written to {out / 'partial.json'}; "
        "combine all shards with 'art-spatial merge'"
    )
    return 0


def _write_outputs(out: Path, report, aa_report, info: dict, suite_name: str) -> None:
    """Write ``report.json`` (and ``report_aa.json``), ``model_info.json``, the profiles plot; print
    the summary."""
    from .leaderboard import to_model_info

    report.save(out / "report.json")
    if aa_report is not None:
        aa_report.save(out / "report_aa.json")
    to_model_info(report, **info, path=out / "model_info.json", reliable=aa_report)
    if report.profiles:
        from .plots import plot_profiles

        name = info["name"]
        plot_profiles({name: report}, out / "profiles.png", title=f"{suite_name}: {name}")
    print(report.summary_table())
    print(
        f"attack passes: {report.n_forward} forward, {report.n_backward} backward; "
        f"wall time {report.wall_time_s:.1f} s"
    )
    written = [out / "report.json", out / "model_info.json"]
    if aa_report is not None:
        print(aa_report.summary_table())
        written.insert(1, out / "report_aa.json")
    print("written: " + ", ".join(str(p) for p in written))


def add_merge_parser(subparsers, add_verbosity) -> argparse.ArgumentParser:
    """Register ``art-spatial merge PARTIAL... --out DIR``."""
    p = subparsers.add_parser(
        "merge",
        help="combine the partial reports of 'evaluate --shard i/n' into one report",
        description=(
            "Sum the counts of the partial.json files of every shard of a sharded evaluation "
            "(art-spatial evaluate --shard i/n) and write the merged report.json (equal to the "
            "unsharded evaluation's) and model_info.json to --out."
        ),
    )
    p.add_argument("partials", nargs="+", type=Path, help="partial.json files (or their folders)")
    p.add_argument("--out", type=Path, default=Path("runs/merged"), help="output folder")
    add_verbosity(p)
    p.set_defaults(func=run_merge)
    return p


def run_merge(args: argparse.Namespace) -> int:
    """Merge the partial reports and write ``report.json`` and ``model_info.json``."""
    from .leaderboard import to_model_info
    from .shards import load_partial, merge_partials

    paths = [p / "partial.json" if p.is_dir() else p for p in args.partials]
    partials = [load_partial(p) for p in paths]
    report = merge_partials(partials)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.save(out / "report.json")
    info = next((p["model_info"] for p in partials if p["shard"][0] == 0), {})
    if info:
        to_model_info(report, **info, path=out / "model_info.json")
    print(report.summary_table())
    print(f"merged {len(paths)} shards; written: {out / 'report.json'}, {out / 'model_info.json'}")
    return 0


def add_leaderboard_parser(subparsers, add_verbosity) -> argparse.ArgumentParser:
    """Register ``art-spatial leaderboard render DIR``."""
    p = subparsers.add_parser(
        "leaderboard", help="leaderboard tools (render a folder of model_info entries)"
    )
    sub = p.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)
    r = sub.add_parser(
        "render",
        help="render the model_info JSON entries of DIR as a ranked table",
        description=(
            "Rank entries by universal score and print (or write) Markdown, HTML or CSV. The score "
            "headers name the score convention (correct-only or all-points); entries of different "
            "conventions are ranked separately."
        ),
    )
    r.add_argument("dir", type=Path, help="folder of model_info *.json entries")
    r.add_argument(
        "--format", choices=("md", "html", "csv"), default="md", help="output format (default md)"
    )
    r.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")
    add_verbosity(r)
    r.set_defaults(func=run_leaderboard_render)
    return p


def run_leaderboard_render(args: argparse.Namespace) -> int:
    from .leaderboard import render_leaderboard

    text = render_leaderboard(args.dir, fmt=args.format)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"leaderboard written to {args.output}")
    else:
        print(text, end="")
    return 0
