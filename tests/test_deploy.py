"""Deploy recipes say what the README promises (no Docker engine runs here, so they are checked as files)."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_is_small_non_root_and_health_checked() -> None:
    """The image builds from a slim base, runs as an unprivileged user, checks /healthz and runs the bot."""
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] != "USER root"
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert text.rstrip().endswith('CMD ["lexi-bot", "run"]')


def test_the_image_runs_the_bot_on_jemalloc() -> None:
    """The runtime stage installs Debian's jemalloc and preloads it from one path on any platform (README → Memory)."""
    runtime = (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]
    assert "apt-get install -y --no-install-recommends libjemalloc2" in runtime
    assert "ln -s /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2" in runtime
    assert "ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2" in runtime.splitlines()
    assert runtime.index("libjemalloc2") < runtime.index("USER lexi")  # installed as root, before the switch


def test_compose_runs_migrations_before_the_bot_on_postgresql() -> None:
    """compose.yaml starts PostgreSQL, migrates once, then runs the bot against it."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert services["migrate"]["command"] == ["lexi-bot", "migrate"]
    assert services["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["bot"]["environment"]["DATABASE_URL"].startswith("postgresql://")


def test_heroku_app_json_asks_for_every_required_setting() -> None:
    """app.json adds PostgreSQL and asks for the settings the bot cannot start without."""
    app = json.loads((ROOT / "app.json").read_text())
    assert any(addon["plan"].startswith("heroku-postgresql") for addon in app["addons"])
    required = {name for name, spec in app["env"].items() if spec.get("required")}
    assert required == {"LEXI_API_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_CHANNEL"}
    assert (ROOT / "requirements.txt").read_text().splitlines()[-1] == "."


# Dependencies: bounds in pyproject.toml, exact versions with hashes in the locks (README → Dependencies).

RUNTIME_LOCK, TEST_LOCK, BUILD_LOCK = "requirements.lock", "requirements-test.lock", "requirements-build.lock"
_PINNED_BASE = re.compile(r"python:3\.11-slim[\w.-]*@sha256:[0-9a-f]{64}")


def _pyproject() -> dict:
    """pyproject.toml, parsed."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lock(name: str) -> dict[str, tuple[Requirement, list[str]]]:
    """A lock file as {normalised name: (its requirement, its hashes)}, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        current += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    assert not current, f"{name} ends inside a continued line"
    entries: dict[str, tuple[Requirement, list[str]]] = {}
    for entry in logical:
        requirement, *options = entry.split(" --")
        hashes = [option.removeprefix("hash=") for option in options if option.startswith("hash=")]
        parsed = Requirement(requirement)
        assert canonicalize_name(parsed.name) not in entries, f"{parsed.name} is locked twice in {name}"
        entries[canonicalize_name(parsed.name)] = (parsed, hashes)
    return entries


def _locked_version(requirement: Requirement) -> str:
    """The one version a locked requirement pins (it must be exactly one `==`)."""
    (spec,) = requirement.specifier
    assert spec.operator == "==", f"{requirement} is not pinned to one version"
    return spec.version


def _closure(requirements: list[str]) -> dict[str, set[str]]:
    """Every distribution `requirements` need on this platform, transitively, from the installed packages' metadata."""
    needed: dict[str, set[str]] = {}
    queue = [(Requirement(text), "") for text in requirements]
    while queue:
        requirement, extra = queue.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        new_extras = {""} | requirement.extras if name not in needed else requirement.extras - needed[name]
        if not new_extras:
            continue
        needed.setdefault(name, set()).update(new_extras)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{requirement.name} is not installed: install from {TEST_LOCK} (README → Dependencies)")
        queue.extend((Requirement(text), wanted) for text in requires for wanted in new_extras)
    return needed


def test_dockerfile_base_image_is_pinned_by_digest() -> None:
    """Every stage starts from python:3.11-slim pinned by an image digest, the same one in each stage."""
    froms = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")]
    assert len(froms) >= 2
    for image in froms:
        assert _PINNED_BASE.fullmatch(image), f"{image} is not python:3.11-slim pinned by digest"
    assert len(set(froms)) == 1


def test_dockerfile_installs_only_hashed_locked_dependencies() -> None:
    """The build stage builds with the locked backend, the image installs the runtime lock and then the bot alone."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    runs = [line for line in lines if line.startswith("RUN ") and "pip " in line]
    installs = [line for line in runs if "pip install" in line]
    assert any(f"--require-hashes -r {BUILD_LOCK}" in line for line in installs)
    assert any(f"--require-hashes -r /tmp/{RUNTIME_LOCK}" in line for line in installs)
    for line in installs:
        assert "--require-hashes" in line or "--no-deps" in line, f"an install that resolves on its own: {line}"
    (wheel,) = [line for line in runs if "pip wheel" in line]
    assert "--no-deps" in wheel and "--no-build-isolation" in wheel


def test_ci_installs_from_the_hashed_lock_then_runs_the_readme_test_command() -> None:
    """.ci/run installs the hashed lock and the bot without resolving, checks format, lint, types and imports, tests."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert f".venv/bin/pip install -q --require-hashes -r {TEST_LOCK}" in commands
    assert ".venv/bin/pip install -q --no-deps --no-build-isolation -e ." in commands
    assert not any("pip install" in line and "-e '.[test]'" in line for line in commands)
    checks = [
        ".venv/bin/ruff format --check bot tests bench migrations",
        ".venv/bin/ruff check bot tests bench migrations",
        ".venv/bin/mypy",
        ".venv/bin/lint-imports --no-cache --no-logo",
    ]
    start = commands.index(checks[0])
    assert commands[start : start + 4] == checks
    # Then the whole suite as two sessions whose -k expressions are complements (every test runs once), both of
    # whose exit statuses decide CI's.
    tests = [line for line in commands[start + 4 :] if ".venv/bin/pytest" in line]
    assert [line.split(">")[0].strip() for line in tests] == [
        '.venv/bin/pytest -k "postgresql"',
        '.venv/bin/pytest -k "not postgresql" || status=$?',
    ]
    assert 'wait "$postgres_half" || status=$?' in commands
    assert commands[-1] == 'exit "$status"'


def test_every_locked_requirement_is_pinned_and_carries_a_hash() -> None:
    """Each lock pins every package to one version with at least one sha256 hash."""
    for name in (RUNTIME_LOCK, TEST_LOCK, BUILD_LOCK):
        entries = _lock(name)
        assert entries, f"{name} is empty"
        for requirement, hashes in entries.values():
            _locked_version(requirement)
            assert hashes, f"{requirement} in {name} has no hash"
            assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", value) for value in hashes), (name, hashes)


def test_locks_cover_every_dependency_in_pyproject_at_an_allowed_version() -> None:
    """The runtime lock covers the dependencies, the test lock also the test extras and the build backend."""
    project = _pyproject()
    runtime = project["project"]["dependencies"]
    test = project["project"]["optional-dependencies"]["test"]
    build = project["build-system"]["requires"]
    for lock_name, wanted in ((RUNTIME_LOCK, runtime), (TEST_LOCK, runtime + test + build), (BUILD_LOCK, build)):
        locked = _lock(lock_name)
        for text in wanted:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{requirement.name} is missing from {lock_name}"
            version = _locked_version(locked[name][0])
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock_name} has {name}=={version}, outside pyproject.toml's {requirement}: run `bash .ci/lock`"
            )


def test_locks_cover_every_transitive_dependency() -> None:
    """Whatever the installed packages say they need (extras included, e.g. psycopg[binary]) is locked too."""
    project = _pyproject()["project"]
    runtime_needs = _closure(project["dependencies"])
    assert "psycopg-binary" in runtime_needs
    assert set(runtime_needs) <= set(_lock(RUNTIME_LOCK)), set(runtime_needs) - set(_lock(RUNTIME_LOCK))
    test_needs = _closure(project["dependencies"] + project["optional-dependencies"]["test"])
    assert set(test_needs) <= set(_lock(TEST_LOCK)), set(test_needs) - set(_lock(TEST_LOCK))


def test_locks_agree_and_heroku_installs_the_runtime_versions() -> None:
    """A package in several locks has one version and one set of hashes; requirements.txt pins the runtime lock."""
    test = _lock(TEST_LOCK)
    for lock_name in (RUNTIME_LOCK, BUILD_LOCK):
        for name, (requirement, hashes) in _lock(lock_name).items():
            assert name in test, f"{name} is in {lock_name} but not in {TEST_LOCK}"
            assert str(requirement) == str(test[name][0]) and sorted(hashes) == sorted(test[name][1]), name
    heroku = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    assert heroku[-1] == "."
    runtime = {name: _locked_version(requirement) for name, (requirement, _) in _lock(RUNTIME_LOCK).items()}
    pins = {canonicalize_name(Requirement(line).name): _locked_version(Requirement(line)) for line in heroku[:-1]}
    assert pins == runtime


#: Data published by date (tzdata 2026.6 is the IANA database 2026f): no API, so no major to be unready for.
CALENDAR_VERSIONED = {"tzdata"}


def test_dependencies_have_upper_bounds_at_the_next_major() -> None:
    """Every runtime and test dependency says which next major it is not ready for."""
    project = _pyproject()["project"]
    for text in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        if requirement.name in CALENDAR_VERSIONED:
            assert [spec.operator for spec in requirement.specifier] == [">="], text
            continue
        lower = [spec for spec in requirement.specifier if spec.operator == ">="]
        upper = [spec for spec in requirement.specifier if spec.operator == "<"]
        assert lower and upper, f"{text} needs a lower and an upper bound"
        assert Version(upper[0].version) > Version(lower[0].version)


def test_the_version_is_written_once_in_the_package() -> None:
    """pyproject.toml reads the version from bot/__init__.py, so the installed package and `--version` agree."""
    import bot

    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["hatch"]["version"]["path"] == "bot/__init__.py"
    assert metadata.version("lexi-bot") == bot.__version__
