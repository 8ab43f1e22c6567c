#!/usr/bin/env bash
# The test command of the README: installs missing Debian packages (as root), builds Release
# into build/ and runs every ctest suite, as many at once as there are CPUs (the tests that make
# namespaces or time things hold the "machine" lock and never run beside each other). Arguments
# go to ctest, e.g. tests/run_tests.sh -L servers
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
source "$root/tools/ensure_deps.sh"
# The tests also drive a real browser (the report), sshd and network namespaces (several hosts,
# emulated links), perf (counted work), and a virtual machine whose kernel has netem (tests/netem_vm
# fetches that kernel's .deb itself), and the production servers of the bundled server files.
ensure_deps chromium chromium-driver python3-selenium openssh-server iproute2 ethtool linux-perf \
            nginx-light apache2-bin lighttpd h2o \
            qemu-system-x86 busybox-static

[[ -f $build_dir/CMakeCache.txt ]] || cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure --parallel "$(nproc)" "$@"
