#!/usr/bin/env bash
# Makes sure the Debian packages that building, testing and plotting need are installed.
# As root it installs what is missing (apt-get); otherwise it names the exact command and exits 2.
# Sourced by run_all.sh and tests/run_tests.sh; also runnable alone: tools/ensure_deps.sh [extra...]
set -euo pipefail

# cmake/g++/make build everything; the -dev packages are the libraries the code uses;
# liburing-dev adds server-io-uring; python3-matplotlib draws the charts, python3-scipy and
# python3-numpy do the statistics of comparisons; util-linux has taskset; sockperf is the
# yardstick that loadgen's UDP side is tested against.
SERVERBENCH_PACKAGES=(cmake g++ make libbenchmark-dev nlohmann-json3-dev libcli11-dev libgtest-dev
                      liburing-dev python3 python3-matplotlib python3-numpy python3-scipy util-linux sockperf)

# A package's service (openssh-server's sshd, the web servers of the bundled server files) must not
# start listening on this machine: the tests and runs start their own. policy-rc.d is Debian's
# switch for that during install; the services are then disabled, so that a boot does not start them.
declare -A SERVICE_OF=([openssh-server]=ssh [nginx-light]=nginx [lighttpd]=lighttpd [h2o]=h2o)
install_without_starting_services() {
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || { (( own_policy )) && rm -f "$policy"; return 1; }
    (( own_policy )) && rm -f "$policy"
    local pkg
    if command -v systemctl >/dev/null; then
        for pkg in "$@"; do
            if [[ -n ${SERVICE_OF[$pkg]:-} ]]; then systemctl disable "${SERVICE_OF[$pkg]}" >/dev/null 2>&1 || true; fi
        done
    fi
}

ensure_deps() {
    local wanted=("${SERVERBENCH_PACKAGES[@]}" "$@") installed missing=() pkg
    # One query for them all: a dpkg-query costs tens of milliseconds, and every run starts here.
    installed=$'\n'$(dpkg-query -W -f='${Package} ${Status}\n' "${wanted[@]}" 2>/dev/null |
                      awk '/ install ok installed$/ {print $1}' || true)$'\n'
    for pkg in "${wanted[@]}"; do
        [[ $installed == *$'\n'"$pkg"$'\n'* ]] || missing+=("$pkg")
    done
    (( ${#missing[@]} == 0 )) && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}" >&2
        apt-get update -qq >&2
        install_without_starting_services "${missing[@]}"
    else
        echo "missing packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 2
    fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then ensure_deps "$@"; fi
