#!/usr/bin/env bash
# Build dist/kotakpos: one executable with the whole server, CLI and TUI inside.
#
#   build/build.sh            # needs PyInstaller: pip install -e '.[build]'
#   PYTHON=python3.11 build/build.sh
#
# PyInstaller's work files go to build/work/ (ignored by git); build/ keeps only sources.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"

if ! "$python" -m PyInstaller --version >/dev/null 2>&1; then
    echo "PyInstaller is missing for $python; install the build extra: pip install -e '.[build]'" >&2
    exit 1
fi

"$python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/work build/kotakpos.spec

# The binary must at least start and answer; the full check is tests/system/test_frozen.py.
version="$(dist/kotakpos --version)"
size=$(stat -c %s dist/kotakpos)
echo "built dist/kotakpos: $version, $((size / 1048576)) MiB ($size bytes)"
