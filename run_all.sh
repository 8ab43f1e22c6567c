#!/usr/bin/env bash
# The suite's entry point: the driver is the Python package serverbench/ (./run_all.sh --help).
# The Debian packages it needs are installed first (as root; otherwise it names them and exits 2),
# then Debian's /usr/bin/python3 runs it: it has matplotlib and SciPy, and a version manager's
# shim on PATH can take half a second to start.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$root/tools/ensure_deps.sh"
ensure_deps
python=/usr/bin/python3
[[ -x $python ]] || python=python3
# -P: this checkout's serverbench/, never one in the working directory.
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -P -m serverbench "$@"
