"""Record an ``art-spatial demo`` run in ``benchmarks/results/<name>.json`` (summary + machine metadata).

``runs/`` is git-ignored; this keeps the numbers quoted in docs/results.md, with the recipe, the Table-1
rows, per-model wall / CPU seconds and the machine they came from. Usage::

    OMP_NUM_THREADS=1 .venv/bin/art-spatial demo --quick --out runs/demo-quick
    .venv/bin/python benchmarks/demo_summary.py runs/demo-quick demo_quick \\
        --command "OMP_NUM_THREADS=1 .venv/bin/art-spatial demo --quick --out runs/demo-quick"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._meta import machine_metadata, write_json  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the demo's --out folder (holds summary.json)")
    p.add_argument("name", help="output name: benchmarks/results/<name>.json")
    p.add_argument("--command", required=True, help="the command that produced the run")
    args = p.parse_args(argv)
    summary = json.loads((args.run / "summary.json").read_text())
    reports = {m: json.loads((args.run / rel).read_text()) for m, rel in summary["reports"].items()}
    payload = {
        "benchmark": "art-spatial demo",
        "command": args.command,
        "machine": machine_metadata(),
        **summary,
        "per_attack": {
            m: {
                a["name"]: {s["label"]: s["accuracy"] for s in a["strengths"]} for a in r["attacks"]
            }
            for m, r in reports.items()
        },
        "n_examples": {m: r["n_examples"] for m, r in reports.items()},
    }
    out = write_json(Path(__file__).resolve().parent / "results" / f"{args.name}.json", payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
