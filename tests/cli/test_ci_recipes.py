"""The CI recipes stay true (docs/architecture.md, CI recipes).

Every `pairbench` command line in the GitHub workflow (each step's `run:` script) and in
docs/ci.md's fenced code blocks (shell, and the scripts of YAML ones) is parsed by the real click
group, so an option or subcommand the command line does not have fails here, not in a user's
pipeline. No subprocess runs: the subcommand is resolved and its context built, which is where
click raises UsageError. The extractor and the checker are tested on lines of their own, with a
negative control, so a broken extractor cannot pass by finding nothing.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from pairbench.cli import main

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "pairbench-gate.yml"
CI_DOC = ROOT / "docs" / "ci.md"

# At least this many `pairbench` lines per file: fewer means the extractor lost some.
MIN_COMMANDS = {WORKFLOW: 2, CI_DOC: 11}

PLACEHOLDER = "PLACEHOLDER"  # stands for a variable's value, $(...) or ${{ ... }}
SHELL_LANGUAGES = {"sh", "shell", "bash"}
YAML_LANGUAGES = {"yaml", "yml"}
OTHER_LANGUAGES = {"text", "toml", "json", "python"}  # blocks that hold no command lines
SCRIPT_KEYS = {"run", "script", "before_script", "after_script"}
# Words that may stand before a command in a simple command.
PREFIX_WORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "exec", "{"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
OPERATOR_CHARS = set("();<>|&")
FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class CommandLine:
    """One `pairbench` invocation found in a recipe: where, and its arguments after `pairbench`."""

    where: str
    argv: tuple[str, ...]


# Extraction


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket closing the one opened just before `start` (nesting counted)."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == opening:
            depth += 1
        elif text[i] == closing:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unclosed {opening!r}")


def _substitute(line: str) -> tuple[str, list[str]]:
    """`line` with every expansion replaced by PLACEHOLDER, and the inner command texts found.

    Expansions: `${{ ... }}` (GitHub), `$((...))`, `$(...)` and backquotes (their text is
    searched for commands too), `${...}`, `$NAME` and special parameters (`$?`, `$1`).
    """
    out: list[str] = []
    inner: list[str] = []
    i = 0
    while i < len(line):
        if line.startswith("${{", i):
            end = line.find("}}", i + 3)
            if end < 0:
                raise ValueError("unclosed '${{'")
            out.append(PLACEHOLDER)
            i = end + 2
        elif line.startswith("$((", i):  # arithmetic: no command inside
            i = _closing(line, i + 2, "(", ")") + 1
            out.append(PLACEHOLDER)
        elif line.startswith("$(", i):
            end = _closing(line, i + 2, "(", ")")
            inner.append(line[i + 2 : end])
            out.append(PLACEHOLDER)
            i = end + 1
        elif line[i] == "`":
            end = line.find("`", i + 1)
            if end < 0:
                raise ValueError("unclosed '`'")
            inner.append(line[i + 1 : end])
            out.append(PLACEHOLDER)
            i = end + 1
        elif line.startswith("${", i):
            i = _closing(line, i + 2, "{", "}") + 1
            out.append(PLACEHOLDER)
        elif line[i] == "$" and (
            m := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*|[0-9?#@*$!-])", line[i:])
        ):
            out.append(PLACEHOLDER)
            i += m.end()
        else:
            out.append(line[i])
            i += 1
    return "".join(out), inner


def _logical_lines(script: str) -> Iterator[tuple[int, str]]:
    """(first physical line, text) of each line, `\\` continuations joined."""
    pending: list[str] = []
    start = 0
    for number, line in enumerate(script.splitlines(), 1):
        if not pending:
            start = number
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def _simple_commands(text: str) -> Iterator[list[str]]:
    """The words of each simple command on a line: split at ; && || | & ( ), redirections dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    tokens = list(lexer)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token and set(token) <= OPERATOR_CHARS:
            if "<" in token or ">" in token:  # a redirection: drop it, its target, a fd before it
                if words and words[-1].isdigit():
                    words.pop()
                i += 2
                continue
            if words:
                yield words
            words = []
        else:
            words.append(token)
        i += 1
    if words:
        yield words


def _pairbench_argv(words: Sequence[str]) -> tuple[str, ...] | None:
    """The arguments after `pairbench` when the simple command runs it, else None."""
    i = 0
    while i < len(words) and (words[i] in PREFIX_WORDS or ASSIGNMENT.match(words[i])):
        i += 1
    rest = words[i:]
    if rest and (rest[0] == "pairbench" or rest[0].endswith("/pairbench")):
        return tuple(rest[1:])
    python = bool(rest) and re.fullmatch(r"python[0-9.]*", Path(rest[0]).name) is not None
    if python and rest[1:3] == ["-m", "pairbench"]:
        return tuple(rest[3:])
    return None


def commands_in_script(script: str, path: Path, first_line: int) -> list[CommandLine]:
    """Every `pairbench` invocation in a shell script whose first line is `first_line` of `path`."""
    found: list[CommandLine] = []
    for number, line in _logical_lines(script):
        location = f"{_shown(path)}:{first_line + number - 1}"
        try:
            texts = [line]
            while texts:
                text, inner = _substitute(texts.pop(0))
                texts.extend(inner)
                for words in _simple_commands(text):
                    argv = _pairbench_argv(words)
                    if argv is not None:
                        found.append(CommandLine(location, argv))
        except ValueError as error:  # an unclosed quote or bracket: the recipe is broken
            raise AssertionError(f"{location}: cannot read {line!r}: {error}") from error
    return found


def _scripts(node: yaml.Node, key: str | None = None) -> Iterator[tuple[int, str]]:
    """(0-based line where its text starts, text) of every script (run, script, ...) in a node."""
    if isinstance(node, yaml.MappingNode):
        for k, value in node.value:
            yield from _scripts(value, k.value if isinstance(k, yaml.ScalarNode) else None)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scripts(item, key)
    elif isinstance(node, yaml.ScalarNode) and key in SCRIPT_KEYS:
        block = node.style in ("|", ">")  # the text starts on the line after the indicator
        yield node.start_mark.line + int(block), node.value


def commands_in_yaml(text: str, path: Path, first_line: int) -> list[CommandLine]:
    """The `pairbench` lines of every script in a YAML text starting at `first_line` of `path`.

    Scripts are the strings under `run` (a GitHub step), `script`, `before_script` and
    `after_script` (a GitLab job), in a mapping or a list.
    """
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return []
    return [
        command
        for line, script in _scripts(node)
        for command in commands_in_script(script, path, first_line + line)
    ]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def commands_in_workflow(path: Path) -> list[CommandLine]:
    """The `pairbench` lines of a GitHub workflow's `run:` steps."""
    return commands_in_yaml(path.read_text(encoding="utf-8"), path, 1)


def fenced_blocks(path: Path) -> list[tuple[int, str, str]]:
    """(line of the opening fence, language, text) of every fenced code block in a markdown file."""
    text = path.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(1).lower(), m.group(2))
        for m in FENCE.finditer(text)
    ]


def commands_in_markdown(path: Path) -> list[CommandLine]:
    """The `pairbench` lines of every shell block, and of every YAML block's scripts."""
    found: list[CommandLine] = []
    for fence, language, body in fenced_blocks(path):
        if language in SHELL_LANGUAGES:
            found.extend(commands_in_script(body, path, fence + 1))
        elif language in YAML_LANGUAGES:
            found.extend(commands_in_yaml(body, path, fence + 1))
    return found


# Checking


def check(argv: Sequence[str]) -> None:
    """Parse `pairbench ARGV` with the real command group; click's UsageError if it would not."""
    ctx = click.Context(main, info_name="pairbench")
    group: click.Group = main
    args = list(argv)
    try:
        while True:
            if not args:
                raise click.UsageError("missing a command", ctx=ctx)
            name, sub, args = group.resolve_command(ctx, args)  # UsageError when unknown
            assert name is not None and sub is not None
            if not isinstance(sub, click.Group):
                with sub.make_context(name, args, parent=ctx):  # UsageError on a bad option
                    return
            ctx, group = click.Context(sub, info_name=name, parent=ctx), sub
    except click.exceptions.Exit:  # --help or --version: parsed, then asked to stop
        return


def _usage_error(argv: Sequence[str]) -> click.UsageError | None:
    try:
        check(argv)
    except click.UsageError as error:
        return error
    return None


# The extractor and the checker, on lines of their own


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("pairbench run demo_pair --profile quick", [("run", "demo_pair", "--profile", "quick")]),
        (
            'pairbench gate \\\n  --baseline "$BASE" \\\n  --out gate-out',
            [("gate", "--baseline", PLACEHOLDER, "--out", "gate-out")],
        ),
        (
            "pairbench gate --baseline ${{ steps.base.outputs.sha }} --out $(pwd)/out-${RUN}",
            [("gate", "--baseline", PLACEHOLDER, "--out", f"{PLACEHOLDER}/out-{PLACEHOLDER}")],
        ),
        ("test -f x || pairbench list --json", [("list", "--json")]),
        ("pip install -e . && pairbench list", [("list",)]),
        ("if pairbench verify demo_pair; then echo ok; fi", [("verify", "demo_pair")]),
        ("FOO=1 BAR=$X pairbench report runs/a", [("report", "runs/a")]),
        ('echo "$(pairbench list --json)" > out.json', [("list", "--json")]),
        ("python -m pairbench list 2>&1 | tee log.txt", [("list",)]),
        ("code=$?; .venv/bin/pairbench list # pairbench run --bogus", [("list",)]),
        ('echo "pairbench run --not-a-command"; pip install pairbench', []),
        ("if [ ! -f x ]; then pairbench verify && touch x; fi", [("verify",)]),
        ('case "$c" in 3) pairbench list;; *) exit $((c + 1));; esac', [("list",)]),
        ("pairbench run `cat pairs.txt`; X=`pairbench list`", [("run", PLACEHOLDER), ("list",)]),
    ],
)
def test_extractor_finds_pairbench_at_any_position(
    script: str, expected: list[tuple[str, ...]]
) -> None:
    assert [c.argv for c in commands_in_script(script, Path("test"), 1)] == expected


def test_extractor_reads_yaml_scripts_and_shell_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# t\n\n```yaml\njob:\n  script:\n    - pairbench list\n    - |\n      pairbench run \\\n"
        "        --seed 3\n  variables:\n    X: pairbench list --nothing\n```\n\n"
        "```sh\npairbench verify\n```\n\n```text\npairbench is not a command here\n```\n"
    )
    found = commands_in_markdown(doc)
    assert [c.argv for c in found] == [("list",), ("run", "--seed", "3"), ("verify",)]
    assert [c.where for c in found] == [f"{doc}:6", f"{doc}:8", f"{doc}:15"]


@pytest.mark.parametrize(
    "line",
    [
        "pairbench run demo_pair --profile quick --seed 7 --out results-out",
        "pairbench gate --baseline runs/base runs/new --out gate-out --min-effect 0.15",
        "pairbench services up",
        "pairbench --help",
    ],
)
def test_checker_accepts_commands_that_exist(line: str) -> None:
    [command] = commands_in_script(line, Path("test"), 1)
    assert _usage_error(command.argv) is None


@pytest.mark.parametrize(
    ("line", "error_type", "fragment"),
    [
        ("pairbench gate --baseline-reff X", click.NoSuchOption, "--baseline-reff"),
        ("pairbench no-such-command", click.UsageError, "no-such-command"),
        ("pairbench run --seed PLACEHOLDER", click.BadParameter, "--seed"),
        ("pairbench", click.UsageError, "missing a command"),
    ],
)
def test_checker_rejects_bad_lines(
    line: str, error_type: type[click.UsageError], fragment: str
) -> None:
    [command] = commands_in_script(line, Path("test"), 1)
    error = _usage_error(command.argv)
    assert isinstance(error, error_type), error
    assert fragment in error.format_message()


# The recipes themselves


def _recipe_commands(path: Path) -> list[CommandLine]:
    return commands_in_workflow(path) if path == WORKFLOW else commands_in_markdown(path)


@pytest.mark.parametrize("path", [WORKFLOW, CI_DOC], ids=["workflow", "ci.md"])
def test_recipes_hold_enough_command_lines(path: Path) -> None:
    found = _recipe_commands(path)
    assert len(found) >= MIN_COMMANDS[path], [c.argv for c in found]
    lines = path.read_text(encoding="utf-8").splitlines()
    for command in found:  # each location points at the line that runs it
        number = int(command.where.rsplit(":", 1)[1])
        assert "pairbench" in lines[number - 1], (command, lines[number - 1])


@pytest.mark.parametrize("path", [WORKFLOW, CI_DOC], ids=["workflow", "ci.md"])
def test_every_recipe_command_line_parses(path: Path) -> None:
    failures = [
        f"{c.where}: pairbench {shlex.join(c.argv)}: {error.format_message()}"
        for c in _recipe_commands(path)
        if (error := _usage_error(c.argv)) is not None
    ]
    assert not failures, "\n".join(failures)


def test_ci_doc_blocks_are_labelled() -> None:
    """An unlabelled block would be skipped silently: every block names a known language."""
    blocks = fenced_blocks(CI_DOC)
    assert blocks
    known = SHELL_LANGUAGES | YAML_LANGUAGES | OTHER_LANGUAGES
    assert [(line, lang) for line, lang, _ in blocks if lang not in known] == []
    assert {lang for _, lang, _ in blocks} >= {"sh", "yaml"}


def test_gitlab_example_reports_junit_and_keeps_artifacts() -> None:
    jobs = [
        job
        for _, lang, body in fenced_blocks(CI_DOC)
        if lang in YAML_LANGUAGES
        if isinstance(document := yaml.safe_load(body), dict)
        for job in document.values()
        if isinstance(job, dict) and "artifacts" in job
    ]
    assert jobs, "docs/ci.md: no GitLab job with artifacts"
    artifacts = jobs[0]["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["reports"]["junit"] == "gate-out/junit.xml"
    assert {"runs/", "gate-out/"} <= set(artifacts["paths"])


def _workflow() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return document


def _steps() -> list[dict[str, Any]]:
    return [step for job in _workflow()["jobs"].values() for step in job["steps"]]


def test_workflow_triggers_on_pull_requests_and_by_hand() -> None:
    workflow = _workflow()
    triggers = workflow["on"] if "on" in workflow else workflow[True]  # YAML 1.1: `on` is true
    assert "pull_request" in triggers
    assert "baseline_ref" in triggers["workflow_dispatch"]["inputs"]


def test_workflow_checks_out_full_history() -> None:
    [checkout] = [s for s in _steps() if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0


def test_workflow_writes_the_step_summary_always() -> None:
    summary = [s for s in _steps() if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary, "no step writes to $GITHUB_STEP_SUMMARY"
    assert all(s.get("if") == "always()" for s in summary)
    assert any("gate-out/gate.md" in s["run"] for s in summary)


def test_workflow_uploads_junit_and_runs_always() -> None:
    uploads = [s for s in _steps() if s.get("uses") == "actions/upload-artifact@v4"]
    paths = "\n".join(str(s["with"]["path"]) for s in uploads)
    assert "gate-out/junit.xml" in paths
    assert "runs/" in paths
    assert all(s.get("if") == "always()" for s in uploads)
