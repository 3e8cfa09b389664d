"""`pairbench new PAIR`: the two files of a new pair, from a commented template that runs as written.

A pair is one module in targets/pairs/ and one scenario file (docs/architecture.md, "The pair
contract"); nothing else is edited to add one. By default the files go into the installed
package's own folders (an editable install: the checkout); `--into DIR` writes them to a folder
of your own, loaded through PAIRBENCH_PAIRS and PAIRBENCH_SCENARIOS.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from string import Template

import click

from pairbench.errors import UsageError
from pairbench.harness.scenario import SCENARIO_DIR

from .main import main
from .preflight import output_folder

NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")
TEMPLATES = "templates"


def _pairs_dir() -> Path:
    spec = find_spec("pairbench.targets.pairs")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _render(template: str, name: str) -> str:
    text = resources.files(__package__).joinpath(TEMPLATES, template).read_text(encoding="utf-8")
    title = name.replace("_", " ").capitalize()
    return Template(text).substitute(name=name, title=title)


def write_pair(name: str, into: Path | None) -> tuple[Path, Path]:
    """Write the module and the scenario of pair `name`; refuse to overwrite either."""
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise UsageError(
            f"pair name {name!r}: use 2-40 lowercase letters, digits and underscores,"
            " starting with a letter (it names a module, a table prefix and a URL path)"
        )
    pairs_dir, scenarios_dir = (
        (into / "pairs", into / "scenarios") if into else (_pairs_dir(), SCENARIO_DIR)
    )
    module, scenario = pairs_dir / f"{name}.py", scenarios_dir / f"{name}.toml"
    for folder in (pairs_dir, scenarios_dir):
        output_folder(folder, "--into" if into else "")
    for path in (module, scenario):
        if path.exists():
            raise UsageError(f"{path} already exists; choose another name or remove it")
    pairs_dir.mkdir(parents=True, exist_ok=True)
    scenarios_dir.mkdir(parents=True, exist_ok=True)
    module.write_text(_render("pair.py.txt", name), encoding="utf-8")
    scenario.write_text(_render("scenario.toml.txt", name), encoding="utf-8")
    return module, scenario


@main.command("new")
@click.argument("name")
@click.option(
    "--into",
    type=click.Path(path_type=Path, file_okay=False),
    help="write DIR/pairs/NAME.py and DIR/scenarios/NAME.toml instead of the package's folders",
)
def new(name: str, into: Path | None) -> None:
    """Write the two files of a new pair NAME (a bad and a good variant, a table, its workshop
    exercise, a scenario)."""
    module, scenario = write_pair(name, into)
    click.echo(f"wrote {module}")
    click.echo(f"wrote {scenario}")
    if into is not None:
        click.echo(
            f"export PAIRBENCH_PAIRS={module.parent.resolve()}"
            f" PAIRBENCH_SCENARIOS={scenario.parent.resolve()}"
        )
    click.echo(f"next: pairbench verify {name} && pairbench run {name}")
