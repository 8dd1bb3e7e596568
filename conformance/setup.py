"""Refuse to build the suite without the kit's data.

``src/pixl_ipc_conformance/data/`` links to ``../spec/schema``,
``../spec/vectors`` and the cases, matrix and examples beside this file, so
that the package carries them. From a copy of ``conformance/`` without the
kit around it those links lead nowhere, and the package would be built
without them: say so and stop instead.
"""

from pathlib import Path

from setuptools import setup

DATA = Path(__file__).resolve().parent / "src" / "pixl_ipc_conformance" / "data"
#: One file of each linked folder, and the matrix.
CARRIED = (
    "schema/request.schema.json",
    "vectors/original-answers.json",
    "cases/case.schema.json",
    "examples/node-adapter.js",
    "matrix.json",
)

missing = [name for name in CARRIED if not (DATA / name).is_file()]
if missing:
    raise SystemExit(
        "pixl-ipc-conformance cannot be built from here: it carries the kit's spec/ and"
        f" conformance/ files, and {', '.join(missing)} cannot be found under {DATA}."
        " Build or install it from inside the whole kit (pip install path/to/kit/conformance),"
        " with spec/ beside conformance/."
    )
setup()
