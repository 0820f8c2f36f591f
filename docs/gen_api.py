"""Generate ``docs/api.md``: the package's public API, from ``__all__`` and docstrings.

The public API is curated: the top-level package, the four subpackages (``attacks``, ``trainers``,
``bench``, ``analysis``) through what their ``__init__`` exports, and the top-level modules a user
imports directly (:data:`PUBLIC_MODULES`). Modules inside a subpackage (``attacks.engine``,
``bench.suites``, ``trainers.checkpoint`` ...) are the package's own plumbing: what of them a user needs
is re-exported by the subpackage and documented there. Each name gets a heading, its signature and its
docstring (reST roles rendered as Markdown code); classes also list their public methods (those defined
by the class itself, not inherited from ART or torch). An object exported by two listed modules is
documented under the first and linked from the second.

Usage (from the repository root)::

    .venv/bin/python docs/gen_api.py            # writes docs/api.md
    .venv/bin/python docs/gen_api.py --check    # exit 1 if docs/api.md is out of date

A module whose optional dependency is missing (e.g. the AdverTorch façades) is listed with the
import error instead of failing the whole run. ``tests/test_docs.py`` checks that api.md is up to date.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "api.md"
PACKAGE = "art_spatial"


#: the documented modules, in the order of the reference
PUBLIC_MODULES = (
    PACKAGE,
    f"{PACKAGE}.attacks",
    f"{PACKAGE}.attacks.advertorch",
    f"{PACKAGE}.trainers",
    f"{PACKAGE}.bench",
    f"{PACKAGE}.bench.distributed",
    f"{PACKAGE}.analysis",
    f"{PACKAGE}.warp",
    f"{PACKAGE}.threats",
    f"{PACKAGE}.models",
    f"{PACKAGE}.data",
    f"{PACKAGE}.augment",
    f"{PACKAGE}.amp",
    f"{PACKAGE}.recipes",
    f"{PACKAGE}.demo",
    f"{PACKAGE}.theory",
)


def public_modules() -> list[str]:
    """The documented modules (:data:`PUBLIC_MODULES`), importable from this checkout."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return list(PUBLIC_MODULES)


def _anchor(qualname: str) -> str:
    return qualname.lower().replace(".", "").replace("_", "-")


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj|ref):`(~?)([^`<]*?)(?:\s*<[^>]*>)?`")


def _target(tilde: str, name: str) -> str:
    return name.rsplit(".", 1)[-1] if tilde else name


def markdown(text: str) -> str:
    """Docstring text (reStructuredText habits) as Markdown: ``:func:`x``` and ````x```` become `` `x` ``."""
    text = _ROLE.sub(lambda m: f"`{_target(m.group(1), m.group(2).strip())}`", text)
    return text.replace("``", "`")


def _doc(obj) -> str:
    doc = inspect.getdoc(obj)
    return markdown(doc.strip()) if doc else "*(no docstring)*"


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n", 1)[0].replace("\n", " ")
    return markdown(first) if first else "*(no docstring)*"


def _class_methods(cls) -> list[tuple[str, object]]:
    out = []
    for name, member in cls.__dict__.items():
        if name.startswith("_"):
            continue
        func = member
        if isinstance(member, (staticmethod, classmethod)):
            func = member.__func__
        if isinstance(member, property):
            out.append((name, member))
        elif inspect.isfunction(func):
            out.append((name, func))
    return out


def _render_object(modname: str, name: str, obj, lines: list[str]) -> None:
    qual = f"{modname}.{name}"
    if inspect.isclass(obj):
        bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
        lines.append(f"### class `{qual}`")
        lines.append("")
        lines.append("```python")
        lines.append(f"class {name}{_signature(obj)}" + (f"  # bases: {bases}" if bases else ""))
        lines.append("```")
        lines.append("")
        lines.append(_doc(obj))
        lines.append("")
        methods = _class_methods(obj)
        if methods:
            lines.append("Methods and properties:")
            lines.append("")
            for mname, member in methods:
                if isinstance(member, property):
                    lines.append(f"- `{mname}` (property) — {_summary(member)}")
                else:
                    lines.append(f"- `{mname}{_signature(member)}` — {_summary(member)}")
            lines.append("")
    elif callable(obj):
        lines.append(f"### `{qual}{_signature(obj)}`")
        lines.append("")
        lines.append(_doc(obj))
        lines.append("")
    else:
        lines.append(f"### `{qual}`")
        lines.append("")
        # no memory addresses, no absolute paths of this checkout: the file must not depend on where or
        # when it is generated
        text = re.sub(r" at 0x[0-9a-f]+", "", repr(obj)).replace(str(ROOT) + "/", "")
        if len(text) > 300:
            text = text[:300] + " ..."
        lines.append(f"Constant: `{text}`")
        lines.append("")


def generate() -> str:
    """Return the Markdown text of the API reference."""
    modules = public_modules()
    lines = [
        "# API reference",
        "",
        "Generated by `docs/gen_api.py` from the public modules' `__all__` and docstrings — do not",
        "edit by hand; rerun `.venv/bin/python docs/gen_api.py` after changing a public API.",
        "Conventions (coordinates, units, budgets): [conventions.md](conventions.md).",
        "",
        "## Modules",
        "",
    ]
    body: list[str] = []
    seen: dict[
        int, str
    ] = {}  # id of a documented class / function -> the module it is documented under
    for modname in modules:
        lines.append(f"- [`{modname}`](#{_anchor(modname)})")
        body.append(f"## `{modname}`")
        body.append("")
        try:
            mod = importlib.import_module(modname)
        except Exception as exc:  # an optional extra missing: say so, keep going
            body.append(f"*Not importable here: `{type(exc).__name__}: {exc}`*")
            body.append("")
            continue
        summary = _summary(mod)
        body.append(summary)
        body.append("")
        names = getattr(mod, "__all__", None)
        if names is None:
            body.append("*(no `__all__`: no public names declared)*")
            body.append("")
            continue
        reexported = []
        for name in names:
            if name == "__version__":
                body.append(f"- `__version__` = `{mod.__version__}`")
                body.append("")
                continue
            try:
                obj = getattr(mod, name)
            except ImportError as exc:  # a lazily imported subpackage not written / not importable
                body.append(f"- `{name}`: not importable here (`{type(exc).__name__}: {exc}`)")
                continue
            except AttributeError:
                body.append(f"- `{name}`: listed in `__all__` but missing")
                continue
            if inspect.ismodule(obj):
                reexported.append(f"- [`{obj.__name__}`](#{_anchor(obj.__name__)}) (subpackage)")
                continue
            if id(obj) in seen and (inspect.isclass(obj) or inspect.isfunction(obj)):
                where = seen[id(obj)]
                reexported.append(
                    f"- `{name}` — {_summary(obj)} (see [`{where}`](#{_anchor(where)}))"
                )
                continue
            seen[id(obj)] = modname
            _render_object(modname, name, obj, body)
        if reexported:
            body.append("Re-exported here:")
            body.append("")
            body.extend(reexported)
            body.append("")
    lines.append("")
    return "\n".join(lines + body).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
