"""A build tree of stand-ins (fake_server.py, fake_loadgen.py) for testing the driver without
the real build, and a way to find the processes a test started."""
import os
import sys

FAKES = os.path.dirname(os.path.abspath(__file__))


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def make_fake_build(root, behaviours):
    """root/build/bin with server-<model> for each {model: behaviour} and a loadgen. Every fake
    carries --marker root on its command line, so processes_mentioning(root) finds them all."""
    bin_dir = os.path.join(root, "build", "bin")
    os.makedirs(bin_dir)
    for model, behaviour in behaviours.items():
        write_exe(os.path.join(bin_dir, f"server-{model}"),
                  f'#!/bin/sh\nexec "{sys.executable}" "{FAKES}/fake_server.py" '
                  f'--behaviour {behaviour} --model {model} --marker "{root}" "$@"\n')
    write_exe(os.path.join(bin_dir, "loadgen"),
              f'#!/bin/sh\nexec "{sys.executable}" "{FAKES}/fake_loadgen.py" --marker "{root}" "$@"\n')
    return os.path.join(root, "build")


def processes_mentioning(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rpartition(")")[2].split()[0] == "Z"
        except OSError:
            continue
        if marker.encode() in cmdline and not zombie:
            found.append(int(pid))
    return found
