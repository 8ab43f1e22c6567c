#!/usr/bin/env bash
# Builds serverbench, runs every server model through the scenario matrix with the load
# generator, writes one serverbench.result/1 JSON per point plus a manifest into
# results/<UTC timestamp>/, then draws the charts and summary.md (plots/).
#
# Each point: start the server pinned to CPU 0, wait for its readiness line, run loadgen
# pinned to the other CPU(s) with --server-pid, stop the server (SIGTERM, then SIGKILL).
# A server that fails to start or dies is a failed point; the run goes on and the exit
# code says whether any point failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly ROOT
readonly ALL_SCENARIOS="http-keepalive http-close echo cpu-bound io-wait idle-conns open-loop"
readonly READY_TIMEOUT_S=10
# The idle holder's own bounds: it opens its connections within HOLD_CONNECT_S, then waits up to
# HOLD_SETTLE_S for the server to accept them all, and only then says it is ready (it keeps stop
# signals pending until then). run_all.sh waits for it that long, plus a margin.
readonly HOLD_CONNECT_S=8 HOLD_SETTLE_S=5
readonly STOP_GRACE_S=2

usage() {
    cat <<'USAGE'
usage: ./run_all.sh [options]

Builds (Release) if needed, runs every server model x scenario x point, writes
results/<UTC timestamp>/ (manifest.json, points/, logs/, microbench.json), links
results/latest, and draws charts + summary.md into plots/out/<run-id>/.

options:
  --profile quick|standard|full  how long and how wide (default standard)
                                 quick ~3 min (CI), standard ~15 min, full ~50 min
  --models a,b,...               only these models (names after server-; default: every
                                 build/bin/server-* found)
  --scenarios a,b,...            only these scenarios (default: all):
                                 http-keepalive http-close echo cpu-bound io-wait
                                 idle-conns open-loop
  --repeat N                     repetitions per point (default: per profile); the
                                 charts and the comparison use the median
  --out DIR                      results root (default results/)
  --build-dir DIR                build tree (default build/); binaries in DIR/bin
  --no-build                     use the binaries in DIR/bin as they are
  --no-microbench                skip build/bin/microbench
  --no-plots                     skip charts and summary.md
  -h, --help                     this text

Exit code: 0 all points ok (or not-applicable/unsupported), 1 some point failed,
2 usage error.
USAGE
}

log() { printf '%s\n' "$*" >&2; }
die() { printf 'run_all.sh: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------------------- options

profile=standard models_filter="" scenarios_filter="" repeat="" out_root="$ROOT/results"
build_dir="$ROOT/build" do_build=1 do_plots=1 do_microbench=1

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --profile) profile=${2:?--profile needs a value}; shift 2 ;;
            --models) models_filter=${2:?--models needs a value}; shift 2 ;;
            --scenarios) scenarios_filter=${2:?--scenarios needs a value}; shift 2 ;;
            --repeat) repeat=${2:?--repeat needs a value}; shift 2 ;;
            --out) out_root=${2:?--out needs a value}; shift 2 ;;
            --build-dir) build_dir=${2:?--build-dir needs a value}; shift 2 ;;
            --no-build) do_build=0; shift ;;
            --no-plots) do_plots=0; shift ;;
            --no-microbench) do_microbench=0; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument '$1'" ;;
        esac
    done
    [[ $build_dir = /* ]] || build_dir="$PWD/$build_dir"
    [[ $out_root = /* ]] || out_root="$PWD/$out_root"
    if [[ -n $repeat && ! $repeat =~ ^[1-9][0-9]*$ ]]; then die "--repeat must be a positive integer"; fi
    local s
    for s in ${scenarios_filter//,/ }; do
        [[ " $ALL_SCENARIOS " == *" $s "* ]] || die "unknown scenario '$s' (known: $ALL_SCENARIOS)"
    done
}

# Profiles: how long each point runs, how many repeats, and which points exist.
# quick must stay under 4 minutes for all twelve models on a 2-core machine (CI);
# smoke is a hidden one-point profile for the script's own test.
set_profile() {
    case $profile in
        smoke)
            warmup=200ms duration=1s default_repeat=1 microbench_min_time=0.01
            keepalive_conns="1 10" close_conns="10" active_conns=10
            echo_sizes="64" idle_counts="100" open_loop_rps=500 ;;
        quick)
            warmup=250ms duration=1s default_repeat=1 microbench_min_time=0.01
            keepalive_conns="1 50" close_conns="50" active_conns=50
            echo_sizes="64 16384" idle_counts="1000" open_loop_rps=20000 ;;
        standard)
            warmup=500ms duration=2s default_repeat=2 microbench_min_time=0.05
            keepalive_conns="1 10 50 200" close_conns="1 10 50" active_conns=50
            echo_sizes="64 16384" idle_counts="1000" open_loop_rps=20000 ;;
        full)
            warmup=1s duration=4s default_repeat=3 microbench_min_time=0.2
            keepalive_conns="1 10 50 200 1000" close_conns="1 10 50" active_conns=50
            echo_sizes="64 16384" idle_counts="1000 10000" open_loop_rps=20000 ;;
        *) die "unknown profile '$profile' (quick, standard, full)" ;;
    esac
    repeat=${repeat:-$default_repeat}
}

# ---------------------------------------------------------------------------- environment

# 10k idle connections need 10k descriptors in the server and in the holder.
raise_fd_limit() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

build_if_needed() {
    (( do_build )) || return 0
    source "$ROOT/tools/ensure_deps.sh"
    ensure_deps
    if [[ ! -f $build_dir/CMakeCache.txt ]]; then
        log "== configuring $build_dir (Release)"
        cmake -S "$ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >&2
    fi
    log "== building in $build_dir"
    cmake --build "$build_dir" -j "$(nproc)" >&2
}

# Models are discovered, never listed: a new server-* binary joins the matrix by existing.
discover_models() {
    local bin name found=()
    for bin in "$build_dir"/bin/server-*; do
        [[ -x $bin && -f $bin ]] || continue
        name=${bin##*/server-}
        if [[ -z $models_filter || ",$models_filter," == *",$name,"* ]]; then found+=("$name"); fi
    done
    if [[ -n $models_filter ]]; then
        local want
        for want in ${models_filter//,/ }; do
            [[ " ${found[*]} " == *" $want "* ]] || die "model '$want' not found as $build_dir/bin/server-$want"
        done
    fi
    (( ${#found[@]} > 0 )) || die "no server binaries in $build_dir/bin (build first, or pass --build-dir)"
    models=("${found[@]}")
}

selected_scenarios() {
    local s
    for s in $ALL_SCENARIOS; do
        if [[ -z $scenarios_filter || ",$scenarios_filter," == *",$s,"* ]]; then printf '%s\n' "$s"; fi
    done
}

# A stdlib-only python for the JSON helpers (several calls per point), the system one first: a
# version-manager shim on PATH (pyenv) can take half a second to start. Plots need matplotlib.
find_python() {
    if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3 || die "python3 not found"; fi
}

find_plot_python() {
    local candidate
    for candidate in /usr/bin/python3 "$(command -v python3 || true)"; do
        [[ -n $candidate && -x $candidate ]] || continue
        if "$candidate" -c 'import matplotlib' 2>/dev/null; then echo "$candidate"; return 0; fi
    done
    return 1
}

# CPU layout: the server gets CPU 0, the load generator the rest. cpu-bound gives the
# server every CPU (it is the scenario about using cores), sharing the last with loadgen.
cpu_layout() {
    local ncpu=$1 scenario=$2
    if (( ncpu < 2 )); then server_cpus=0 loadgen_cpus=0 loadgen_threads=1; return; fi
    loadgen_cpus="1-$((ncpu - 1))" loadgen_threads=$((ncpu - 1))
    [[ $loadgen_cpus == 1-1 ]] && loadgen_cpus=1
    if [[ $scenario == cpu-bound ]]; then server_cpus="0-$((ncpu - 1))"; else server_cpus=0; fi
}

# ---------------------------------------------------------------------------- the matrix

# Points of a scenario, one per line: label|connections|server flags|loadgen flags|idle count.
# open-loop offers every model the same rate (latency compared at equal load, as wrk2 is used):
# 20000 req/s is below every model's keep-alive capacity at 50 connections on the 2-CPU reference
# machine (the lowest, fork-per-conn and prefork, about 39k) and within one loadgen thread's reach.
scenario_points() {
    local scenario=$1 c size label
    case $scenario in
        http-keepalive)
            for c in $keepalive_conns; do echo "c$c|$c|--protocol http|--protocol http --mode keepalive|0"; done ;;
        http-close)
            for c in $close_conns; do echo "c$c|$c|--protocol http|--protocol http --mode close|0"; done ;;
        echo)
            for size in $echo_sizes; do
                if (( size % 1024 == 0 )); then label="$((size / 1024))KiB"; else label="${size}B"; fi
                echo "$label-c$active_conns|$active_conns|--protocol echo|--protocol echo --message-bytes $size|0"
            done ;;
        cpu-bound)
            echo "c$active_conns|$active_conns|--protocol http --cpu-us 100|--protocol http|0" ;;
        io-wait)
            # Every model that has workers gets 64 of them (the blocking-pool default), so
            # hand-off pools and blocking pools face the 1 ms wait with the same headcount.
            echo "c$active_conns|$active_conns|--protocol http --io-us 1000 --workers 64|--protocol http|0" ;;
        idle-conns)
            for c in $idle_counts; do echo "idle$c-c$active_conns|$active_conns|--protocol http|--protocol http|$c"; done ;;
        open-loop)
            echo "c$active_conns|$active_conns|--protocol http|--protocol http --rate $open_loop_rps|0" ;;
    esac
}

# The blocking model serves one client at a time (the rest wait in the backlog): it runs the
# one-connection points, plus one probe of http-keepalive above one connection, where the claim
# that it serves one client at a time is measured. Elsewhere it is "not-applicable".
point_applicable() {
    local model=$1 scenario=$2 connections=$3
    [[ $model == blocking ]] || return 0
    (( connections == 1 )) && return 0
    [[ $scenario == http-keepalive && $connections == "$blocking_probe_conns" ]]
}

# ---------------------------------------------------------------------------- processes

declare -A live_pids=()     # pid -> what, for the exit trap

process_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

kill_group() {
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE_S * 20; i++)); do
        process_alive "$pid" || break
        sleep 0.05
    done
    if process_alive "$pid"; then
        stop_note="did not stop within ${STOP_GRACE_S} s of SIGTERM, killed"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    # Children a server leaves behind (fork models) share its process group.
    kill -KILL -- "-$pid" 2>/dev/null || true
    local code=0
    wait "$pid" 2>/dev/null || code=$?
    unset "live_pids[$pid]"
    return "$code"
}

cleanup() {
    local pid
    for pid in "${!live_pids[@]}"; do kill_group "$pid" || true; done
    [[ -n ${work_dir:-} ]] && rm -rf "$work_dir"
    return 0
}

on_signal() {
    log "run_all.sh: interrupted, stopping what it started"
    interrupted=1
    cleanup
    finish_manifest || true
    exit 130
}

# Starts "$@" in its own process group with stdout on a FIFO, and waits (up to
# $ready_timeout_s) for a stdout line matching $ready_pattern. Sets started_pid,
# ready_line; on failure sets start_failure and start_exit_code (if it exited).
start_and_wait_ready() {
    local ready_timeout_s=$1 ready_pattern=$2 err_file=$3; shift 3
    local fifo="$work_dir/stdout.$RANDOM$RANDOM"
    mkfifo "$fifo"
    setsid "$@" </dev/null >"$fifo" 2>"$err_file" &
    started_pid=$!
    live_pids[$started_pid]=$1
    local fd
    exec {fd}<>"$fifo"
    ready_line="" start_failure="" start_exit_code=""
    local deadline=$(( ${EPOCHREALTIME/./} + ready_timeout_s * 1000000 )) line partial=""
    while :; do
        # A read that times out mid-line (a loaded machine) keeps what it got in $line.
        if read -r -t 0.1 -u "$fd" line; then
            line=$partial$line partial=""
            if [[ $line =~ $ready_pattern ]]; then ready_line=$line; break; fi
            continue
        fi
        partial+=$line
        if ! process_alive "$started_pid"; then
            start_exit_code=0
            wait "$started_pid" 2>/dev/null || start_exit_code=$?
            unset "live_pids[$started_pid]"
            start_failure="exited with code $start_exit_code before its readiness line"
            break
        fi
        if (( ${EPOCHREALTIME/./} > deadline )); then
            start_failure="no readiness line within ${ready_timeout_s} s"
            kill_group "$started_pid" || true
            break
        fi
    done
    # Removed only now: the child opens the FIFO after fork, and a path removed before
    # that would make its redirection create a plain file instead.
    exec {fd}<&-
    rm -f "$fifo"
    [[ -z $start_failure ]]
}

last_line_of() {
    if [[ -s $1 ]]; then tail -n 1 "$1" | tr -d '\r' | cut -c1-200; fi
}

# ---------------------------------------------------------------------------- one point

# Runs one point; appends one line to the points list. Sets point_status.
run_point() {
    local model=$1 scenario=$2 label=$3 connections=$4 server_flags=$5 loadgen_flags=$6 idle=$7 rep=$8
    local rel="points/$model/$scenario/$label-r$rep.json"
    local out="$run_dir/$rel" log_base="$run_dir/logs/$model/$scenario/$label-r$rep"
    mkdir -p "${out%/*}" "${log_base%/*}"
    cpu_layout "$ncpu" "$scenario"
    point_status=ok point_reason=""

    # shellcheck disable=SC2206  # flag strings are word lists by construction
    local sflags=($server_flags) lflags=($loadgen_flags)
    if ! start_and_wait_ready "$READY_TIMEOUT_S" 'port=([0-9]+)' "$log_base.server.log" \
            taskset -c "$server_cpus" "$build_dir/bin/server-$model" --port 0 "${sflags[@]}"; then
        if [[ $start_exit_code == 2 ]] && grep -qi unsupported "$log_base.server.log"; then
            point_status=unsupported point_reason=$(last_line_of "$log_base.server.log")
        else
            point_status=failed
            point_reason="server $start_failure: $(last_line_of "$log_base.server.log")"
        fi
        record_point "$model" "$scenario" "$label" "$connections" "$rep" "" "$idle"
        return 0
    fi
    local server_pid=$started_pid port
    [[ $ready_line =~ port=([0-9]+) ]] && port=${BASH_REMATCH[1]}

    local holder_pid="" holder_json="$log_base.idle.json"
    if (( idle > 0 )); then
        if start_and_wait_ready $((HOLD_CONNECT_S + HOLD_SETTLE_S + 5)) '^ready ' "$log_base.idle.log" \
                "$py" "$ROOT/tools/hold_connections.py" --port "$port" --count "$idle" \
                --connect-timeout "$HOLD_CONNECT_S" --settle-timeout "$HOLD_SETTLE_S" --out "$holder_json"; then
            holder_pid=$started_pid
        else
            point_reason="idle holder $start_failure"
        fi
    fi

    local lg_code=0 limit
    limit=$(( $(seconds_of "$duration") + $(seconds_of "$warmup") + 20 ))
    timeout -k 2 "$limit" taskset -c "$loadgen_cpus" "$build_dir/bin/loadgen" \
        --port "$port" "${lflags[@]}" --connections "$connections" --threads "$loadgen_threads" \
        --duration "$duration" --warmup "$warmup" --cpus "$loadgen_cpus" --server-pid "$server_pid" \
        --model "$model" --scenario "$scenario" --server-flags "$server_flags" \
        --out "$out" --quiet </dev/null >"$log_base.loadgen.log" 2>&1 &
    # In the background and waited for, so Ctrl-C reaches the trap at once.
    local loadgen_pid=$!
    live_pids[$loadgen_pid]=loadgen
    wait "$loadgen_pid" || lg_code=$?
    unset "live_pids[$loadgen_pid]"

    local server_was_alive=1
    process_alive "$server_pid" || server_was_alive=0
    if [[ -n $holder_pid ]]; then
        kill_group "$holder_pid" || true
        if [[ -s $holder_json && -s $out ]]; then
            "$py" "$ROOT/tools/result_json.py" set "$out" idle_connections "$holder_json" || true
        fi
    fi
    local server_code=0
    stop_note=""  # what kill_group notes from here on is the server's stop, not the holder's
    kill_group "$server_pid" || server_code=$?

    if (( ! server_was_alive )); then
        point_status=failed
        point_reason="server died mid-point (exit code $server_code): $(last_line_of "$log_base.server.log")"
    elif [[ ! -s $out ]]; then
        point_status=failed
        if (( lg_code == 124 || lg_code == 137 )); then point_reason="loadgen timed out after ${limit} s"
        else point_reason="loadgen exited $lg_code without a result: $(last_line_of "$log_base.loadgen.log")"; fi
    elif (( lg_code > 1 )); then
        point_status=failed point_reason="loadgen exited $lg_code: $(last_line_of "$log_base.loadgen.log")"
    elif (( lg_code == 1 )); then
        # The server survived; errors are data (refused, reset, timed out) shown in the charts.
        point_reason="loadgen reported errors: $(last_line_of "$log_base.loadgen.log")"
    fi
    if [[ $point_status == ok && -z $stop_note && $server_code != 0 ]]; then
        stop_note="exited with code $server_code on SIGTERM (expected 0)"
    fi
    if [[ -n $stop_note && $point_status == ok ]]; then
        point_reason="${point_reason:+$point_reason; }server $stop_note"
    fi
    record_point "$model" "$scenario" "$label" "$connections" "$rep" "$rel" "$idle"
}

seconds_of() {
    local d=$1
    case $d in
        *ms) echo $(( (${d%ms} + 999) / 1000 )) ;;
        *s) echo "${d%s}" ;;
        *) echo "$d" ;;
    esac
}

record_point() {
    local model=$1 scenario=$2 label=$3 connections=$4 rep=$5 file=$6 idle=$7
    "$py" "$ROOT/tools/result_json.py" point-line \
        model="$model" scenario="$scenario" point="$label" connections="$connections" \
        repeat="$rep" status="$point_status" file="$file" reason="$point_reason" \
        idle_connections="$idle" server_cpus="$server_cpus" loadgen_cpus="$loadgen_cpus" \
        >>"$run_dir/points.jsonl"
    points_done=$((points_done + 1))
    [[ $point_status == failed ]] && failed_points=$((failed_points + 1))
    report_progress "$model" "$scenario" "$label" "$rep" "$run_dir/$file"
}

report_progress() {
    local model=$1 scenario=$2 label=$3 rep=$4 file=$5 eta="" summary=""
    local now=${EPOCHREALTIME/./} measured
    if [[ $point_status != not-applicable ]]; then points_measured=$((points_measured + 1)); fi
    measured=$(( points_measured > 0 ? points_measured : 1 ))
    local per_point_us=$(( (now - matrix_started_us) / measured ))
    local left_s=$(( (points_total_measured - points_measured) * per_point_us / 1000000 ))
    (( left_s < 0 )) && left_s=0
    eta=$(printf '%dm%02ds' $((left_s / 60)) $((left_s % 60)))
    if [[ $point_status == ok && -s $file ]]; then
        summary=$("$py" "$ROOT/tools/result_json.py" brief "$file" 2>/dev/null || true)
    fi
    printf '[%3d/%d] %-16s %-15s %-14s r%d  %-14s %s%s  (ETA %s)\n' \
        "$points_done" "$points_total" "$model" "$scenario" "$label" "$rep" "$point_status" \
        "$summary" "${point_reason:+  - $point_reason}" "$eta" >&2
}

record_not_applicable() {
    local model=$1 scenario=$2 label=$3 connections=$4 rep=$5
    point_status=not-applicable
    point_reason="the blocking model serves one client at a time"
    server_cpus="" loadgen_cpus=""
    record_point "$model" "$scenario" "$label" "$connections" "$rep" "" 0
}

count_points() {
    local model scenario line rep label connections rest
    points_total=0 points_total_measured=0
    for model in "${models[@]}"; do
        for scenario in "${scenarios[@]}"; do
            while IFS='|' read -r label connections rest; do
                points_total=$((points_total + repeat))
                if point_applicable "$model" "$scenario" "$connections"; then
                    points_total_measured=$((points_total_measured + repeat))
                fi
            done < <(scenario_points "$scenario")
        done
    done
}

# Repeats are whole passes over the matrix: drift on a shared machine (a neighbour's build,
# thermal limits) then spreads over every model instead of landing on one model's repeats.
run_matrix() {
    local model scenario rep label connections sflags lflags idle
    for ((rep = 1; rep <= repeat; rep++)); do
        for model in "${models[@]}"; do
            for scenario in "${scenarios[@]}"; do
                while IFS='|' read -r label connections sflags lflags idle; do
                    if point_applicable "$model" "$scenario" "$connections"; then
                        run_point "$model" "$scenario" "$label" "$connections" "$sflags" "$lflags" "$idle" "$rep"
                    else
                        record_not_applicable "$model" "$scenario" "$label" "$connections" "$rep"
                    fi
                done < <(scenario_points "$scenario")
            done
        done
    done
}

run_microbench() {
    local bin="$build_dir/bin/microbench"
    (( do_microbench )) || return 0
    if [[ ! -x $bin ]]; then log "== microbench: $bin not built, skipped"; return 0; fi
    log "== microbench (min time ${microbench_min_time} s per benchmark)"
    local code=0
    taskset -c 0 "$bin" --benchmark_min_time="$microbench_min_time" \
        --benchmark_out="$run_dir/microbench.json" --benchmark_out_format=json \
        >"$run_dir/logs/microbench.log" 2>&1 || code=$?
    if (( code != 0 )); then log "== microbench exited $code (see logs/microbench.log); run goes on"; fi
}

finish_manifest() {
    [[ -n ${run_dir:-} && -d $run_dir ]] || return 0
    "$py" "$ROOT/tools/result_json.py" manifest "$run_dir" \
        profile="$profile" repeat="$repeat" started_at="$started_at" \
        finished_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)" git_rev="$git_rev" \
        interrupted="${interrupted:-0}" warmup="$warmup" duration="$duration" \
        build_dir="$build_dir" models="${models[*]}" scenarios="${scenarios[*]}" >"$run_dir/manifest.json"
}

draw_plots() {
    (( do_plots )) || return 0
    local plot_py
    if ! plot_py=$(find_plot_python); then
        log "== plots skipped: no python3 with matplotlib. Install it with:"
        echo "apt-get install -y python3-matplotlib" >&2
        return 0
    fi
    log "== plots ($plot_py)"
    "$plot_py" "$ROOT/plots/plot_results.py" "$run_dir" >&2 || log "== plotting failed; results are intact in $run_dir"
}

# ---------------------------------------------------------------------------- main

main() {
    parse_args "$@"
    set_profile
    raise_fd_limit
    py=$(find_python)
    build_if_needed
    discover_models
    mapfile -t scenarios < <(selected_scenarios)
    ncpu=$(nproc)
    blocking_probe_conns=$(for c in $keepalive_conns; do (( c > 1 )) && { echo "$c"; break; }; done || true)
    git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then git_rev="$git_rev-dirty"; fi
    export SERVERBENCH_GIT_REV=$git_rev
    [[ -x $build_dir/bin/loadgen ]] || die "no load generator at $build_dir/bin/loadgen (build first)"

    started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local run_id
    run_id=$(date -u +%Y%m%dT%H%M%SZ)
    run_dir="$out_root/$run_id"
    [[ -e $run_dir ]] && run_dir="$run_dir-$$"
    mkdir -p "$run_dir/points" "$run_dir/logs"
    : >"$run_dir/points.jsonl"
    work_dir=$(mktemp -d)
    trap cleanup EXIT
    trap on_signal INT TERM

    count_points
    points_done=0 points_measured=0 failed_points=0
    log "== run $run_dir: profile $profile, repeat $repeat, ${#models[@]} models (${models[*]}),"
    log "   scenarios: ${scenarios[*]}; $points_total points; server on CPU 0, loadgen on the rest"
    matrix_started_us=${EPOCHREALTIME/./}
    run_matrix
    run_microbench
    finish_manifest
    ln -sfn "$run_id" "$out_root/latest" 2>/dev/null || true
    "$py" "$ROOT/plots/print_table.py" "$run_dir" || log "== could not print the table"
    draw_plots
    local wall_s=$(( (${EPOCHREALTIME/./} - matrix_started_us) / 1000000 ))
    log "== done in ${wall_s} s: $run_dir ($failed_points failed point(s))"
    (( failed_points == 0 ))
}

main "$@"
