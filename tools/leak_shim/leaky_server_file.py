#!/usr/bin/env python3
"""Writes the leaking twin of any server file: the same server, config and scenarios, started with
libleakshim.so preloaded (leak_shim.c), so that a soak can be checked against a leak that the
server's own code does not carry (docs/soak.md).

    python3 tools/leak_shim/leaky_server_file.py servers/references/nginx.toml --fd-every 1000 \\
        --out /tmp/nginx-leaks-fds.toml
    ./run_all.sh --profile soak --models nginx,nginx-leaks-fds --server-file /tmp/nginx-leaks-fds.toml

The twin is named NAME-leaks-fds or NAME-leaks-memory and paired with NAME. Its command runs the
original's through env(1) with LD_PRELOAD and the shim's variable; {{dir}} becomes the original's
folder, so the twin can be written anywhere. The original must be usable here (its program
installed): a twin's program is env, which would hide a missing one. A bad argument or server file
gets one line and exit code 2.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from serverbench.server_file import ServerFileError, parse, read_toml  # noqa: E402


class OneLineParser(argparse.ArgumentParser):
    """A bad argument gets one line and exit code 2, not the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message}\n")


def positive(text):
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)


def toml_value(value):
    """A server file's value as TOML: JSON's strings and lists of strings are TOML's too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, (int, float)) else json.dumps(value)


def leaky_twin(doc, original_dir, shim, fd_every=None, kib_per_min=None):
    """The twin's TOML document (a dict) of the parsed server file doc."""
    leak = f"LEAKSHIM_FD_EVERY={fd_every}" if fd_every else f"LEAKSHIM_KIB_PER_MIN={kib_per_min}"
    what = (f"one descriptor per {fd_every} connections" if fd_every else f"{kib_per_min} KiB of memory a minute")
    twin = {k: v.replace("{{dir}}", original_dir) if isinstance(v, str) else v for k, v in doc.items()}
    twin["command"] = ["env", f"LD_PRELOAD={shim}", leak] + [a.replace("{{dir}}", original_dir) for a in doc["command"]]
    twin["name"] = f"{doc['name']}-leaks-{'fds' if fd_every else 'memory'}"
    twin["counterpart"] = doc["name"]
    twin["about"] = f"{doc.get('about') or doc['name']}; leaking {what} through LD_PRELOAD"
    return twin


def twin_text(twin, original):
    head = f"# The leaking twin of {original}, written by tools/leak_shim/leaky_server_file.py.\n"
    return head + "".join(f"{key} = {toml_value(value)}\n" for key, value in twin.items())


def main(argv=None):
    ap = OneLineParser(prog="leaky_server_file.py", description=__doc__.splitlines()[0])
    ap.add_argument("server_file")
    leak = ap.add_mutually_exclusive_group(required=True)
    leak.add_argument("--fd-every", type=positive, metavar="N", help="leak one descriptor per N accepted connections")
    leak.add_argument("--kib-per-min", type=positive, metavar="K", help="leak K KiB of memory a minute")
    ap.add_argument("--shim", default=os.path.join(ROOT, "build", "lib", "libleakshim.so"),
                    help="the shim (default: build/lib/libleakshim.so)")
    ap.add_argument("--out", help="write the twin here (default: stdout)")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.shim):
        ap.error(f"no shim at {args.shim}: build the tree first")
    path = os.path.abspath(args.server_file)
    try:
        doc = read_toml(path)
        parse(path, doc)  # checked, its program installed
    except ServerFileError as e:
        ap.error(str(e))
    original_dir = os.path.dirname(path)
    twin = leaky_twin(doc, original_dir, os.path.abspath(args.shim), args.fd_every, args.kib_per_min)
    text = twin_text(twin, path)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
