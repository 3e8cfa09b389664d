"""`pairbench pages`: a page per pair in docs/pairs/, generated from the pair's declarations and
a stored run; `--check` says which committed pages drift from the code (docs/architecture.md, A
page per pair).

The declarations are read here, where the command line may import the targets: the registry's
pairs (PAIRBENCH_PAIRS included), their handlers' source and their scenario files. The pages are
rendered by the reader (results/report/pages.py) from that plain data and the run.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import click

from pairbench.atomicfile import write_text_atomic
from pairbench.errors import EXIT_FAILED, PairbenchError, UsageError
from pairbench.harness import scenario
from pairbench.results.analysis.summary import analyse_run
from pairbench.results.io.runfile import RunFileError, load_run, run_file_path
from pairbench.results.report.pages import (
    IMAGE_FOLDER,
    INDEX_FILE,
    MARKER,
    Declaration,
    StoredRun,
    VariantSource,
    figures,
    index_page,
    page_name,
    pair_page,
)

from .main import main
from .preflight import output_folder

# The run the README's headline table comes from (docs/runs/, committed).
DEFAULT_RUN = Path("docs") / "runs" / "20261204-130447-29-pairs"
DEFAULT_OUT = Path("docs") / "pairs"


class PagesDrift(PairbenchError):
    """Committed pages differ from what the declarations and the run generate (exit 1)."""

    exit_code = EXIT_FAILED


@main.command("pages")
@click.argument("run", required=False, type=click.Path(path_type=Path), default=DEFAULT_RUN)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="folder of the pages (their figures go to its img/)",
)
@click.option(
    "--check",
    is_flag=True,
    help="write nothing: regenerate into a temporary folder and name every page that differs"
    " (exit 1)",
)
def pages_cmd(run: Path, out: Path, check: bool) -> None:
    """A page per pair from its declarations and the stored RUN (default: the README's run)."""
    if not check:
        output_folder(out, "--out")
    try:
        stored_run = load_run(run)
    except RunFileError as error:
        raise UsageError(str(error)) from error
    declarations = read_declarations()
    link = os.path.relpath(run_file_path(run).resolve(), out.resolve()).replace(os.sep, "/")
    stored = StoredRun(stored_run, analyse_run(stored_run), link)
    for d in declarations:
        if d.name not in stored_run["pairs"]:
            click.echo(
                f"{out / page_name(d.name)}: pair {d.name} has no stored run in"
                f" {stored_run['run_id']} yet (its page says so)"
            )
    if check:
        drifting = check_pages(declarations, stored, out)
        for line in drifting:
            click.echo(line)
        if drifting:
            raise PagesDrift(
                f"{len(drifting)} page(s) in {out} drift from the code: run `pairbench pages`"
                " and commit the result"
            )
        click.echo(f"{len(declarations) + 1} pages in {out} match the code and the run")
        return
    for path in write_pages(declarations, stored, out):
        click.echo(f"  {path}")


def generated(
    declarations: Sequence[Declaration], stored: StoredRun, out: Path | None
) -> dict[str, tuple[str, list[str]]]:
    """File name -> (its text, the images it references); figures drawn into `out` if given."""
    texts: dict[str, tuple[str, list[str]]] = {}
    for d in declarations:
        images = figures(d, stored, out)
        texts[page_name(d.name)] = (pair_page(d, stored, images), images)
    texts[INDEX_FILE] = (index_page(declarations, stored), [])
    return texts


def write_pages(declarations: Sequence[Declaration], stored: StoredRun, out: Path) -> list[Path]:
    """Write every page and its figures; remove generated pages and images no pair has now."""
    texts = generated(declarations, stored, out)
    written = [write_text_atomic(out / name, text) for name, (text, _) in texts.items()]
    referenced = {image for _, images in texts.values() for image in images}
    for path in sorted(out.glob("*.md")):
        if path.name not in texts and _is_generated(path):
            path.unlink()
            click.echo(f"removed {path}: no such pair now")
    images = out / IMAGE_FOLDER
    for path in sorted(images.glob("*.png")) if images.is_dir() else []:
        if f"{IMAGE_FOLDER}/{path.name}" not in referenced:
            path.unlink()
    return [*written, *(out / image for image in sorted(referenced))]


def check_pages(declarations: Sequence[Declaration], stored: StoredRun, out: Path) -> list[str]:
    """One line per page that differs from a fresh rendering, is missing or is stale, and per
    image a page references that does not exist (figures are not compared: their pixels
    depend on the fonts and the matplotlib build)."""
    texts = generated(declarations, stored, None)
    drifting = []
    with tempfile.TemporaryDirectory(prefix="pairbench-pages-") as folder:
        for name, (text, images) in texts.items():
            fresh = write_text_atomic(Path(folder) / name, text).read_text(encoding="utf-8")
            committed = out / name
            if not committed.is_file():
                drifting.append(f"{committed}: missing")
                continue
            lines = committed.read_text(encoding="utf-8").splitlines()
            if lines != fresh.splitlines():
                line = _first_difference(lines, fresh.splitlines())
                drifting.append(f"{committed}: differs from the generated page from line {line}")
            drifting += [
                f"{committed}: its image {image} does not exist"
                for image in images
                if not (out / image).is_file()
            ]
    for path in sorted(out.glob("*.md")) if out.is_dir() else []:
        if path.name not in texts and _is_generated(path):
            drifting.append(f"{path}: no pair of that name in the registry (a stale page)")
    return drifting


def _first_difference(old: list[str], new: list[str]) -> int:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, _, _, _ in matcher.get_opcodes():
        if tag != "equal":
            return i1 + 1
    return min(len(old), len(new)) + 1


def _is_generated(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as f:
        first: str = f.readline()
    return bool(first.rstrip("\n") == MARKER)


# -- the declarations --------------------------------------------------------------------


def read_declarations() -> list[Declaration]:
    """Every registered pair (PAIRBENCH_PAIRS included), with its scenario when there is one."""
    from pairbench.targets import registry

    try:
        pairs = registry.load_pairs()
        files = scenario.available()
        specs = registry.catalogue(pairs)
    except registry.PairError as error:
        raise UsageError(str(error)) from error
    found = []
    for pair in pairs.values():
        spec = scenario.load_scenario(files[pair.name]) if pair.name in files else None
        module = inspect.getmodule(pair.bad.handler)
        doc = inspect.cleandoc((module.__doc__ if module else None) or "")
        counters = [*pair.counters, *(spec.mechanism if spec else {})]
        found.append(
            Declaration(
                name=pair.name,
                title=pair.title,
                summary=pair.summary,
                why=doc.partition("\n\n")[2].strip(),  # after the first paragraph (the summary)
                module=_shown(Path(inspect.getsourcefile(pair.bad.handler) or pair.name)),
                knob={
                    "name": pair.knob.name,
                    "label": pair.knob.label,
                    "unit": pair.knob.unit,
                    "log_scale": pair.knob.log_scale,
                },
                variants=[
                    VariantSource(v.name, v.role, v.label, variant_code(v.handler))
                    for v in pair.variants.values()
                ],
                lesson=list(pair.counters),
                counters={n: specs[n].describe() for n in counters if n in specs},
                reference=pair.describe()["reference"],
                scenario=_shown(Path(spec.source)) if spec else None,
                knob_sets=spec.knob_sets if spec else "request",
                expectation=spec.expectation.model_dump() if spec and spec.expectation else None,
                mechanism={
                    counter: {v: (rule.base, rule.per_knob) for v, rule in rules.items()}
                    for counter, rules in (spec.mechanism if spec else {}).items()
                },
                knob_values={
                    p: load.knob_values for p, load in (spec.profiles if spec else {}).items()
                },
            )
        )
    return found


def variant_code(handler: object) -> str:
    """A handler's source from `def` on, without its docstring (the page shows it as the
    label); "" when the source cannot be read."""
    try:
        lines, _ = inspect.getsourcelines(handler)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return ""
    source = textwrap.dedent("".join(lines))
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return ""
    text = source.splitlines()
    skip: set[int] = set()
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        skip = set(range(first.lineno - 1, (first.end_lineno or first.lineno)))
    kept = [line for i, line in enumerate(text) if i >= node.lineno - 1 and i not in skip]
    return "\n".join(kept)


def _shown(path: Path) -> str:
    """A declaration's file for readers: relative to the checkout when inside it, else its name
    (a page never carries a machine's absolute path)."""
    from pairbench import targets

    root = Path(targets.__file__).resolve().parents[1]
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.name
