"""The suite as a package: it carries its data, and added case files take their place.

The wheel is built from the source tree (``pip wheel``) and must hold every case,
the case schema, the spec's schemas and vectors, the kit's matrix and the example
adapter. Unpacked in a directory of its own and run from another one, it must
find all of them without the kit's tree. ``make test`` goes further: both wheels
in a fresh virtual environment, the whole matrix run from a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pixl_ipc_conformance import resources
from pixl_ipc_conformance.cli import main
from pixl_ipc_conformance.model import CaseFileError, load_cases

REPO = Path(__file__).resolve().parents[2]
CARRIED = {
    "data/cases": REPO / "conformance" / "cases",
    "data/schema": REPO / "spec" / "schema",
    "data/vectors": REPO / "spec" / "vectors",
    "data/examples": REPO / "conformance" / "examples",
}


def _kit_files() -> set[str]:
    names = {"data/matrix.json"}
    for inside, where in CARRIED.items():
        names |= {
            f"{inside}/{p.relative_to(where)}" for p in where.rglob("*") if p.is_file()
        }
    return names


def test_the_source_tree_links_the_data_to_the_kits_own_files() -> None:
    for inside, where in CARRIED.items():
        assert (
            Path(str(resources.data_root() / inside.removeprefix("data/"))).resolve()
            == where
        )
    assert resources.default_matrix() == REPO / "conformance" / "matrix.json"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy (links kept), so that the build leaves nothing in the tree.
    tree = tmp_path_factory.mktemp("tree")
    for part in ("conformance", "spec"):
        shutil.copytree(REPO / part, tree / part, symlinks=True)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(out),
            str(tree / "conformance"),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("pixl_ipc_conformance-*.whl")
    return built


def test_the_wheel_carries_every_case_schema_vector_and_the_matrix(wheel: Path) -> None:
    prefix = "pixl_ipc_conformance/"
    with zipfile.ZipFile(wheel) as archive:
        carried = {
            n.removeprefix(prefix)
            for n in archive.namelist()
            if n.startswith(prefix + "data/")
        }
    assert carried == _kit_files()


def test_the_unpacked_wheel_runs_from_another_directory(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pixl_ipc_conformance, sys; print(pixl_ipc_conformance.__file__)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.startswith(str(site)), (
        "the unpacked wheel is not the package imported"
    )
    listing = subprocess.run(
        [sys.executable, "-m", "pixl_ipc_conformance", "list"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    count = len(load_cases("server")) + len(load_cases("client"))
    assert listing.stdout.rstrip().splitlines()[-1] == f"{count} cases"
    example = subprocess.run(
        [sys.executable, "-m", "pixl_ipc_conformance", "example", "node-adapter.js"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    node_adapter = REPO / "conformance" / "examples" / "node-adapter.js"
    assert example.stdout == node_adapter.read_text(encoding="utf-8")
    # The schemas load too: a run against nothing listening gets as far as connecting.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixl_ipc_conformance",
            "server",
            "--socket",
            str(tmp_path / "none.sock"),
        ]
        + ["--case", "S-ECHO", "--quiet"],
        check=False,
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr
    assert "no server serves at" in run.stdout


def _write_case(directory: Path, case_id: str, title: str) -> None:
    source = json.loads(
        (REPO / "conformance" / "cases" / "server" / "S-ECHO.json").read_text()
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{case_id}.json").write_text(
        json.dumps({**source, "id": case_id, "title": title})
    )


def test_a_cases_dir_adds_cases_and_replaces_those_of_the_same_id(
    tmp_path: Path,
) -> None:
    _write_case(tmp_path / "server", "S-ECHO", "my own echo")
    _write_case(tmp_path, "S-MY-EXTRA", "an extra case, loose in the directory")
    carried = load_cases("server")
    cases = load_cases("server", cases_dir=tmp_path)
    assert len(cases) == len(carried) + 1
    by_id = {c.id: c for c in cases}
    assert by_id["S-ECHO"].title == "my own echo"
    assert by_id["S-MY-EXTRA"].path == str(tmp_path / "S-MY-EXTRA.json")
    assert load_cases("client", cases_dir=tmp_path) == load_cases("client")


def test_a_cases_dir_that_is_not_a_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(CaseFileError, match="not a directory"):
        load_cases("server", cases_dir=tmp_path / "nowhere")
    assert main(["list", "--cases-dir", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_a_copy_of_conformance_without_the_spec_refuses_to_build(
    tmp_path: Path,
) -> None:
    shutil.copytree(REPO / "conformance", tmp_path / "conformance", symlinks=True)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "out")]
        + [str(tmp_path / "conformance")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode != 0
    assert "from inside the whole kit" in build.stdout + build.stderr
    assert "schema/request.schema.json" in build.stdout + build.stderr
    assert not list((tmp_path / "out").glob("*.whl"))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_what_pip_leaves_in_the_checkout_is_ignored_by_git() -> None:
    left = [
        "python/build/lib/pixl_ipc/__init__.py",
        "python/src/pixl_ipc.egg-info/PKG-INFO",
        "conformance/build/lib/pixl_ipc_conformance/__init__.py",
        "conformance/src/pixl_ipc_conformance.egg-info/PKG-INFO",
    ]
    check = subprocess.run(
        ["git", "check-ignore", "--no-index", *left],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(check.stdout.split()) == sorted(left)
