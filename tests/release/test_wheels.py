"""What a user gets from the package index: the wheels, their metadata and the LICENSE."""

from __future__ import annotations

import email
import email.message
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pixl_ipc
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"pixl-ipc": REPO / "python", "pixl-ipc-conformance": REPO / "conformance"}
# A link target that resolves wherever the text is shown: an absolute URL.
_ABSOLUTE = re.compile(r"^(https?://|mailto:)")
# Markdown links and images, reference definitions, and HTML href/src.
_LINKS = re.compile(
    r"\]\(\s*<?([^)\s>]+)"
    r"|^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)"
    r"|\b(?:href|src)\s*=\s*[\"']([^\"']+)",
    re.MULTILINE,
)


def link_targets(markdown: str) -> list[str]:
    """Every link target in a Markdown text, outside fenced code blocks."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return [next(g for g in m.groups() if g) for m in _LINKS.finditer(prose)]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Both wheels, built as pip builds them, from a copy of the sources."""
    root = tmp_path_factory.mktemp("kit")
    shutil.copy(REPO / "LICENSE", root / "LICENSE")
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    # spec/ beside conformance/: the suite's package carries its schemas and vectors.
    for source in [*PACKAGES.values(), REPO / "spec"]:
        shutil.copytree(source, root / source.name, symlinks=True, ignore=ignore)
    out = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
        + [str(root / source.name) for source in PACKAGES.values()],
        check=True,
        capture_output=True,
        timeout=600,
    )
    found = {}
    for name in PACKAGES:
        (wheel,) = out.glob(name.replace("-", "_") + "-*.whl")
        found[name] = wheel
    yield found


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_license_is_mit_and_credits_the_protocols_author() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert "Joseph Huckaby" in text
    assert "contains no code of pixl-ipc" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PACKAGES))
def test_each_wheel_carries_the_license(wheels: dict[str, Path], name: str) -> None:
    with zipfile.ZipFile(wheels[name]) as archive:
        licenses = [n for n in archive.namelist() if "/licenses/" in n]
        assert [n.rsplit("/", 1)[1] for n in licenses] == ["LICENSE"]
        assert archive.read(licenses[0]) == (REPO / "LICENSE").read_bytes()
    assert metadata(wheels[name])["License-Expression"] == "MIT"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PACKAGES))
def test_each_long_description_stands_alone(wheels: dict[str, Path], name: str) -> None:
    meta = metadata(wheels[name])
    assert meta["Description-Content-Type"] == "text/markdown"
    description = meta.get_payload()
    assert isinstance(description, str) and description.startswith("# ")
    relative = [t for t in link_targets(description) if not _ABSOLUTE.match(t)]
    assert relative == [], f"links that do not resolve on a package index: {relative}"


@pytest.mark.slow
def test_uvloop_is_an_extra_not_a_dependency(wheels: dict[str, Path]) -> None:
    meta = metadata(wheels["pixl-ipc"])
    requires = meta.get_all("Requires-Dist") or []
    uvloop = [r for r in requires if r.startswith("uvloop")]
    assert uvloop and all('extra == "uvloop"' in r for r in uvloop), uvloop
    assert "uvloop" in (meta.get_all("Provides-Extra") or [])


@pytest.mark.slow
def test_the_wheel_declares_its_version_classifiers_and_python(
    wheels: dict[str, Path],
) -> None:
    meta = metadata(wheels["pixl-ipc"])
    assert meta["Version"] == pixl_ipc.__version__
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert (
        f"Programming Language :: Python :: {sys.version_info[0]}.{sys.version_info[1]}"
        in classifiers
    )


def test_the_version_is_written_once_apart_from_the_protocols() -> None:
    for source in PACKAGES.values():
        project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
        assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("pixl-ipc") == pixl_ipc.__version__
    assert pixl_ipc.PROTOCOL_VERSION == "1.1"
    assert not pixl_ipc.__version__.startswith(pixl_ipc.PROTOCOL_VERSION + ".")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("pixl-ipc")), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert proc.stdout == f"pixl-ipc {pixl_ipc.__version__}\n"


def test_link_targets_finds_relative_links_outside_code() -> None:
    text = (
        "See [the spec](spec/PROTOCOL.md), ![plot](docs/a.png) and "
        '[home](https://example.org/x).\n\n[ref]: ../LICENSE\n<a href="x.html">x</a>\n'
        "```sh\necho '[not](a/link)'\n```\n"
    )
    assert link_targets(text) == [
        "spec/PROTOCOL.md",
        "docs/a.png",
        "https://example.org/x",
        "../LICENSE",
        "x.html",
    ]


def test_the_changelog_has_an_entry_for_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert headings and headings[0] == pixl_ipc.__version__, headings[:3]
