"""Attack performance benchmark: runs every section in ``benchmarks/perf_sections`` and writes
``benchmarks/results/perf_attacks.json`` with machine metadata (commit, versions, threads, CPU).

Sections (``SECTIONS``): ``spatial`` (per-iteration cost of the spatial and pixel attacks, FlowAttack vs
AdverTorch stAdv, RT attack vs ART's grid search) and ``joint`` (joint spatial+pixel attacks). A section
is a module exposing ``run(quick: bool) -> dict``; a section whose module file does not exist is
skipped (and the skip is logged and recorded in the JSON).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf_attacks.py            # full run
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf_attacks.py --quick    # smoke run, tiny sizes
    ... --sections spatial --output /tmp/perf.json --threads 1
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from _meta import machine_metadata, write_json  # noqa: E402

SECTIONS = ["spatial", "joint"]
DEFAULT_OUTPUT = HERE / "results" / "perf_attacks.json"

logger = logging.getLogger("perf_attacks")


def spatial_table(section: dict) -> str:
    """Markdown tables of the ``spatial`` section (pasted into docs/results.md)."""
    lines = [
        "| model @ size (batch) | fwd+bwd | Flow | Affine | RT | Integrated | Pixel | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, e in section["per_iteration_cost"].items():
        cells = []
        for k in ("flow", "affine", "rt", "integrated", "pixel"):
            mark = "" if e["target_met"][k] else " (miss)"
            cells.append(f"{e[k]['ratio']:.2f}{mark}")
        lines.append(
            f"| {key} ({e['batch']}) | {1000 * e['forward_backward_s']:.0f} ms | "
            + " | ".join(cells)
            + f" | <= {e['target']} |"
        )
    st = section["flow_vs_stadv"]
    gr = section["rt_vs_art_grid"]
    lines += [
        "",
        "| comparison (n digits, clean acc) | ours: robust acc / time "
        "| baseline: robust acc / time | time ratio | target met |",
        "|---|---|---|---|---|",
        f"| FlowAttack vs stAdv (n={st['n']}, {st['clean_accuracy']:.2f}) | "
        f"{st['flow']['robust_accuracy']:.2f} / {st['flow']['time_s']:.1f} s | "
        f"{st['stadv']['robust_accuracy']:.2f} / {st['stadv']['time_s']:.1f} s "
        f"({st['stadv']['all_zero_outputs']} all-zero outputs) | "
        f"{st['time_ratio_flow_over_stadv']:.3f} | {st['target_met']} |",
        f"| RT AffineAttack vs ART SpatialTransformation (n={gr['n']}, {gr['clean_accuracy']:.2f}) | "
        f"{gr['rt']['robust_accuracy']:.2f} / {gr['rt']['time_s']:.1f} s | "
        f"{gr['art_grid']['robust_accuracy']:.2f} / {gr['art_grid']['time_s']:.1f} s | "
        f"{gr['time_ratio_rt_over_grid']:.3f} | {gr['target_met']} |",
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--sections", nargs="*", default=SECTIONS, help=f"subset of {SECTIONS}")
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        help="print the markdown tables of an existing JSON and exit",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"JSON path (default {DEFAULT_OUTPUT.relative_to(HERE.parent)}; "
        "--quick defaults to results/perf_attacks_quick.json)",
    )
    args = parser.parse_args(argv)
    if args.table is not None:
        payload = json.loads(args.table.read_text())
        if "spatial" in payload["sections"]:
            print(spatial_table(payload["sections"]["spatial"]))
        return payload
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {SECTIONS}")
    if args.threads < 1:
        parser.error("--threads must be >= 1")

    import torch

    torch.set_num_threads(args.threads)
    output = args.output or (
        HERE / "results" / ("perf_attacks_quick.json" if args.quick else "perf_attacks.json")
    )
    payload = {
        "benchmark": "perf_attacks",
        "quick": args.quick,
        "meta": machine_metadata(),
        "sections": {},
        "skipped": {},
    }
    for name in args.sections:
        path = HERE / "perf_sections" / f"{name}.py"
        if not path.exists():
            logger.warning("section %r skipped: %s does not exist", name, path)
            payload["skipped"][name] = f"{path.relative_to(HERE.parent)} does not exist"
            continue
        module = importlib.import_module(f"perf_sections.{name}")
        t0 = time.perf_counter()
        logger.info("section %r ...", name)
        try:
            result = module.run(quick=args.quick)
        except Exception as exc:  # one broken section must not lose the others' results
            logger.exception("section %r failed", name)
            payload["skipped"][name] = f"failed: {exc!r}"
            write_json(output, payload)
            continue
        result["section_wall_s"] = time.perf_counter() - t0
        payload["sections"][name] = result
        logger.info("section %r done in %.1f s", name, result["section_wall_s"])
        write_json(output, payload)  # after every section: a long later section cannot lose results
    payload["meta"]["threads"] = torch.get_num_threads()
    write_json(output, payload)
    print(json.dumps(payload["sections"], indent=1, default=str)[:4000])
    print(f"wrote {output}")
    return payload


if __name__ == "__main__":
    main()
