#!/bin/sh
# The suite's entry point: the driver is the Python package serverbench/ (python3 -m serverbench --help).
# Debian's /usr/bin/python3 first: it has matplotlib and SciPy, and a version manager's shim on
# PATH can take half a second to start.
root=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3
[ -x "$python" ] || python=python3
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m serverbench "$@"
