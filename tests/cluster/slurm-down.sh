#!/usr/bin/env bash
# Stop the test cluster started by slurm-up.sh: slurmd, slurmctld and (if slurm-up.sh started it)
# munged, by their pid files in ${GDBENCH_SLURM_DIR:-/tmp/gdbench-slurm}. Idempotent: stopping a
# cluster that is not running succeeds. Keeps the folder (config, logs) for post-mortems.
set -uo pipefail

DIR=${GDBENCH_SLURM_DIR:-/tmp/gdbench-slurm}
WAIT_S=${GDBENCH_SLURM_WAIT_S:-15}
log() { echo "slurm-down: $*" >&2; }

# ours NAME PIDFILE: print the pid in PIDFILE if that process is alive and really is NAME
# (pid files can go stale and the pid be reused); remove a stale pid file.
ours() {
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        echo "$pid"
        return 0
    fi
    kill -0 "$pid" 2>/dev/null && log "pid $pid in $pidfile is not $name; leaving it alone"
    rm -f "$pidfile"
    return 1
}

# stop NAME=PIDFILE...: SIGTERM them all at once (each takes 1-2 s to exit), wait up to WAIT_S,
# then SIGKILL what is left.
stop() {
    local item name pidfile pid rc=0
    local -a names=() pids=() files=()
    for item in "$@"; do
        name=${item%%=*} pidfile=${item#*=}
        pid=$(ours "$name" "$pidfile") || continue
        kill -TERM "$pid" 2>/dev/null
        names+=("$name") pids+=("$pid") files+=("$pidfile")
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for _ in $(seq 1 $((WAIT_S * 10))); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        pid=${pids[$i]} name=${names[$i]}
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM for ${WAIT_S}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            sleep 0.2
        fi
        if kill -0 "$pid" 2>/dev/null; then
            log "ERROR: could not stop $name (pid $pid)"
            rc=1
        else
            rm -f "${files[$i]}"
            log "stopped $name (pid $pid)"
        fi
    done
    return $rc
}

rc=0
# Cancel what is still queued or running on this private cluster first: job steps (slurmstepd)
# outlive slurmd by design and would keep running after the daemons are gone.
if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null && [ -f "$DIR/slurm.conf" ]; then
    jobs=$(SLURM_CONF=$DIR/slurm.conf timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        log "cancelling jobs: $(tr "\n" " " <<<"$jobs")"
        # shellcheck disable=SC2086
        SLURM_CONF=$DIR/slurm.conf timeout 10 scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 $((WAIT_S * 2))); do
            [ -z "$(SLURM_CONF=$DIR/slurm.conf timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi
daemons=(slurmd="$DIR/slurmd.pid" slurmctld="$DIR/slurmctld.pid")
# munged only if slurm-up.sh started it (a munged that was already running is left alone)
[ -e "$DIR/munged.ours" ] && daemons+=(munged="$DIR/munge/munged.pid")
stop "${daemons[@]}" || rc=1
[ $rc = 0 ] && rm -f "$DIR/munged.ours"
# slurmd (configless mode, see slurm-up.sh) links /run/slurm/conf to its config cache so that client
# commands inside jobs find the cluster; a link left behind would make every later Slurm client call
# (and every `snakemake` start, through the SLURM plugin's import) wait for a controller that is gone.
if [ -L /run/slurm/conf ] && [[ "$(readlink /run/slurm/conf)" == "$DIR"/* ]]; then
    rm -f /run/slurm/conf
    rmdir /run/slurm 2>/dev/null || true
fi
exit $rc
