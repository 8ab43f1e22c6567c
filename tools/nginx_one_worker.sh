# shellcheck shell=bash
# Sourced by the scripts that measure against nginx (tools/vs_nginx.sh, tools/loadgen_vs_wrk.sh):
# one nginx worker on one CPU serving the suite's 13-byte "Hello, World!" body, and /proc helpers.
# start_nginx CPU WORKDIR sets nginx_pid and nginx_port; the caller's EXIT trap calls stop_nginx.

nginx_pid="" nginx_port=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (at most 5 s) until something accepts on 127.0.0.1:$1.
wait_for_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "${0##*/}: nothing listening on port $1 after 5 s" >&2
    return 1
}

# master_process off: the pid started is the one worker, so killing it ends nginx.
start_nginx() {
    local cpu=$1 work=$2
    nginx_port=$(free_port)
    cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
error_log $work/error.log;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    server { listen 127.0.0.1:$nginx_port; location / { return 200 "Hello, World!"; } }
}
CONF
    taskset -c "$cpu" nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
    nginx_pid=$!
    wait_for_port "$nginx_port"
}

stop_nginx() {
    [[ -n $nginx_pid ]] || return 0
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
}

# CPU seconds (user + sys) process $1 has used so far.
process_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
