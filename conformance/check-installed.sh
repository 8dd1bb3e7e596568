#!/usr/bin/env bash
# The conformance suite as a user gets it: both wheels built, installed in a
# fresh virtual environment outside the kit's tree, and run from a temporary
# directory. Usage: conformance/check-installed.sh [REPORT_DIR]
#   REPORT_DIR  where the matrix writes its reports (default build/conformance)
#   PYTHON      the interpreter that builds and hosts the environment (python3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/build/conformance}" && cd "${1:-$root/build/conformance}" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/pxc-installed-XXXXXX")
trap 'rm -rf "$work"' EXIT

# Built from a copy (the data links kept), so that the build leaves nothing in the tree.
mkdir "$work/tree"
cp -a "$root/python" "$root/conformance" "$root/spec" "$work/tree/"
"$python" -m pip wheel --quiet --no-deps -w "$work/wheels" "$work/tree/python" "$work/tree/conformance"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$work"/wheels/*.whl
export PATH="$work/venv/bin:$PATH"

# A user's project: their adapter and their server's handlers beside them.
mkdir "$work/project"
cd "$work/project"
cp "$root/python/adapters/adapter.py" "$root/conformance/app/pixl_ipc_python.py" .
echo "== from $PWD, with only the two wheels installed"
pixl-ipc-conformance server --quiet --max-message-bytes 16777216 --capability app_handlers \
  --case 'S-ECHO,S-LIFE-*' --start "pixl-ipc serve --socket {socket} --max-message-bytes 16777216 \
--chmod {chmod} --config {access_config} --handlers pixl_ipc_python.py"
pixl-ipc-conformance client --quiet --case 'C-ECHO,C-TIMEOUT' --adapter "{python} adapter.py --client blocking"
# Two servers alike: every carried input (recorded answers, server cases) answered the same.
pixl-ipc-conformance compare --quiet --only-differences \
  --start "pixl-ipc serve --socket {socket}" --start "pixl-ipc serve --socket {socket}"
# Then every implementation of the kit; the matrix's paths are relative to its file.
pixl-ipc-conformance matrix --matrix-file "$root/conformance/matrix.json" --out "$out"
