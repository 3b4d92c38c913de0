#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster on localhost (for tests/test_slurm.py and manual tries).
#
#   eval "$(tests/cluster/slurm-up.sh)"    # installs if needed, starts, waits for an idle node
#   ...                                    # sbatch / snakemake --profile profiles/slurm ...
#   tests/cluster/slurm-down.sh            # stops the daemons
#
# Needs root and Debian/Ubuntu (apt-get installs slurmctld slurmd slurm-client munge when missing).
# Everything lives in a private folder, ${GDBENCH_SLURM_DIR:-/tmp/gdbench-slurm}: slurm.conf, state,
# spool, logs and pid files. Nothing is written to /etc/slurm, so after slurm-down.sh Slurm's client
# tools (and the Snakemake SLURM plugin, which calls them when imported) find no cluster and return
# at once. Point SLURM_CONF at the private slurm.conf to talk to this cluster: stdout carries only
# the `export ...` lines for that; progress and errors go to stderr.
# Idempotent: if the cluster is already up and idle, it only prints the export lines again.
# Ports: ${GDBENCH_SLURMCTLD_PORT:-6817} (slurmctld) and ${GDBENCH_SLURMD_PORT:-6818} (slurmd). The tests
# pass a folder of their own run and two free ports, so runs side by side do not meet; what stays
# shared is munged (used, not restarted, when one already answers) and slurmd's /run/slurm/conf link.
set -euo pipefail

DIR=${GDBENCH_SLURM_DIR:-/tmp/gdbench-slurm}
WAIT_S=${GDBENCH_SLURM_WAIT_S:-30}
APT_TIMEOUT_S=${GDBENCH_SLURM_APT_TIMEOUT_S:-300}
HERE=$(cd "$(dirname "$0")" && pwd)

log() { echo "slurm-up: $*" >&2; }
die() {
    log "ERROR: $*"
    for f in "$DIR"/slurmctld.log "$DIR"/slurmd.log "$DIR"/munge/munged.log; do
        [ -s "$f" ] && [ -r "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    # stop what this run started, so that a failed start leaves no daemons behind
    [ -n "${STARTED:-}" ] && "$HERE/slurm-down.sh" >&2
    exit 1
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
print_env() {
    echo "export GDBENCH_SLURM_DIR=$DIR"
    echo "export GDBENCH_SLURMCTLD_PORT=${GDBENCH_SLURMCTLD_PORT:-6817}"
    echo "export GDBENCH_SLURMD_PORT=${GDBENCH_SLURMD_PORT:-6818}"
    echo "export SLURM_CONF=$DIR/slurm.conf"
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts munged, slurmctld and slurmd); current uid $(id -u)"

# --- 1. packages ----------------------------------------------------------------------------------
missing=()
for b in slurmctld slurmd sbatch munged; do command -v "$b" >/dev/null 2>&1 || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install slurmctld slurmd slurm-client munge"
    log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p "$DIR"
    apt_log=$DIR/apt.log # dpkg talks a lot even with -qq; shown only on failure
    timeout "$APT_TIMEOUT_S" apt-get update -qq >"$apt_log" 2>&1 \
        || { tail -n 20 "$apt_log" >&2; die "apt-get update failed or took over ${APT_TIMEOUT_S}s (log: $apt_log)"; }
    timeout "$APT_TIMEOUT_S" apt-get install -y -qq -o Dpkg::Use-Pty=0 slurmctld slurmd slurm-client munge >>"$apt_log" 2>&1 \
        || { tail -n 20 "$apt_log" >&2; die "apt-get install slurmctld slurmd slurm-client munge failed (log: $apt_log)"; }
    for b in slurmctld slurmd sbatch munged; do command -v "$b" >/dev/null 2>&1 || die "$b still missing after apt-get install"; done
fi
# Debian's package may ship /etc/slurm/slurm.conf on some releases; never leave one behind (an unanswered
# slurm.conf makes every `snakemake` start stall ~9 s while the SLURM plugin's import times out).
[ -e /etc/slurm/slurm.conf ] && log "WARNING: /etc/slurm/slurm.conf exists (not ours); it is ignored because SLURM_CONF is set"

export SLURM_CONF=$DIR/slurm.conf
NODE=$(hostname -s)

# --- 2. already up? --------------------------------------------------------------------------------
if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && [ -f "$SLURM_CONF" ] \
    && state=$(timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null) && [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]; then
    log "already up (node $NODE $state)"
    print_env
    exit 0
fi
# Partly up or stale: clean up and start from scratch.
"$HERE/slurm-down.sh" >/dev/null 2>&1 || true

# --- 3. config ------------------------------------------------------------------------------------
mkdir -p "$DIR/state" "$DIR/spool"
rm -f "$DIR/slurmctld.log" "$DIR/slurmd.log" "$DIR/munge/munged.log" # logs of this start only
chmod 755 "$DIR"
read -r CPUS MEM < <(slurmd -C | awk '/^NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]} print v["CPUs"], v["RealMemory"]}')
{ [ -n "${CPUS:-}" ] && [ -n "${MEM:-}" ]; } || die "could not read CPUs/RealMemory from 'slurmd -C'"
MEM=$((MEM * 95 / 100)) # declaring more memory than slurmd detects drains the node

# OverSubscribe=FORCE:4 lets up to 4 jobs share a core: a test workflow's jobs mostly start Python
# and wait, and on a 2-core machine one job per core would serialise them into many more rounds.
cat > "$SLURM_CONF" <<CONF
# Written by tests/cluster/slurm-up.sh: a single-node test cluster on localhost.
ClusterName=gdbench
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=${GDBENCH_SLURMCTLD_PORT:-6817}
SlurmdPort=${GDBENCH_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SwitchType=switch/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu
MinJobAge=600
ReturnToService=2
MailProg=/bin/true
SlurmctldParameters=enable_configless
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:${GDBENCH_SLURM_OVERSUBSCRIBE:-4}
CONF

# --- 4. munge -------------------------------------------------------------------------------------
if timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
    log "munged already answers; using it"
else
    [ -s /etc/munge/munge.key ] || die "/etc/munge/munge.key missing (the munge package creates it)"
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    mkdir -p "$DIR/munge" && chown munge:munge "$DIR/munge" # munged runs as munge: its pid and log files
    STARTED=1
    runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" >&2 \
        || die "munged did not start"
    # remember that this script started munged (slurm-down.sh stops only a munged it started)
    touch "$DIR/munged.ours"
    ok=
    for _ in $(seq 1 $((WAIT_S * 5))); do
        if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    [ -n "$ok" ] || die "munged does not answer after ${WAIT_S}s"
fi

# --- 5. slurmctld and slurmd ----------------------------------------------------------------------
# slurmd runs "configless" (it fetches slurm.conf from slurmctld and links /run/slurm/conf to its cache
# in $DIR/spool): Snakemake's job step strips every SLURM_* variable, SLURM_CONF included, before it
# calls srun inside a job, so srun there only finds the cluster through that link (or /etc/slurm,
# which we keep clean). slurm-down.sh removes the link.
STARTED=1
slurmctld -c -f "$SLURM_CONF" >&2 || die "slurmctld did not start"
deadline=$((SECONDS + WAIT_S))
while [ $SECONDS -lt $deadline ]; do
    timeout 5 scontrol ping >/dev/null 2>&1 && break
    [ -s "$DIR/slurmctld.pid" ] && ! alive "$DIR/slurmctld.pid" && die "slurmctld exited right after starting"
    sleep 0.2
done
timeout 5 scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer after ${WAIT_S}s"
slurmd --conf-server "127.0.0.1:${GDBENCH_SLURMCTLD_PORT:-6817}" >&2 || die "slurmd did not start"

deadline=$((SECONDS + WAIT_S))
state=
while [ $SECONDS -lt $deadline ]; do
    state=$(timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    [[ "$state" == idle* ]] && break
    [ -s "$DIR/slurmctld.pid" ] && ! alive "$DIR/slurmctld.pid" && die "slurmctld exited"
    sleep 0.5
done
[[ "$state" == idle* ]] || die "node $NODE not idle after ${WAIT_S}s (state: '${state:-no answer}')"
log "up: node $NODE idle, $CPUS CPUs, $MEM MB, partition debug (config $SLURM_CONF)"
print_env
