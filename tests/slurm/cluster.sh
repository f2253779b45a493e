#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, for `make cluster-test` and
# tests/test_slurm.py: munge, MariaDB, slurmdbd, slurmctld and slurmd, all on localhost,
# configuration, state and logs in one folder, every daemon started by this script.
#
#   tests/slurm/cluster.sh install     # Debian packages (root + apt-get), when absent
#   tests/slurm/cluster.sh start DIR   # prints the SLURM_CONF to export for clients
#   tests/slurm/cluster.sh stop DIR    # stops what `start DIR` started
#
# The node has this machine's CPUs and memory and two fake GPUs (gres without devices),
# so GPU requests (--gpus/--gres) are checked by the real scheduler.
set -euo pipefail

PORT_BASE=${SLURM_TEST_PORT_BASE:-16800}   # ctld +17, slurmd +18, dbd +19, mariadb +6
CLUSTER=emcomtest
ACCOUNT=emcom
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
MUNGE_SOCKET_DIR=/run/munge
SYSTEM_CONF=/etc/slurm/slurm.conf

die() { echo "cluster.sh: $*" >&2; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every half second.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.5
  done
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null \
    && command -v munged >/dev/null && command -v mariadbd >/dev/null; then
    return 0
  fi
  [[ $(id -u) == 0 ]] || die "SLURM is not installed and installing it needs root"
  command -v apt-get >/dev/null || die "SLURM is not installed and there is no apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # A policy-rc.d that says no keeps the packages' own services from starting.
  local policy=/usr/sbin/policy-rc.d made="" rc=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
  fi
  timeout 600 apt-get update -q >/dev/null \
    && timeout 900 apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null \
    || rc=$?
  [[ -z $made ]] || rm -f "$policy"
  ((rc == 0)) || die "installing ${PACKAGES[*]} failed ($rc)"
}

write_config() {
  local d=$1 cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
  mkdir -p "$d"/{etc,state,spool,log,run,munge,mysql}
  chmod 700 "$d" "$d/munge"
  cat >"$d/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$((PORT_BASE + 17))
SlurmdPort=$((PORT_BASE + 18))
AuthType=auth/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MpiDefault=none
KillWait=30
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT_BASE + 19))
AccountingStorageTRES=gres/gpu
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/none
NodeName=emcom1 NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=emcom Nodes=emcom1 Default=YES MaxTime=INFINITE State=UP
EOF
  # Two "GPUs" without GPUs: any character devices stand in for /dev/nvidia*.
  echo "NodeName=emcom1 Name=gpu File=/dev/null,/dev/zero" >"$d/etc/gres.conf"
  cat >"$d/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$((PORT_BASE + 19))
SlurmUser=root
PidFile=$d/run/slurmdbd.pid
LogFile=$d/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT_BASE + 6))
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$d/etc/slurmdbd.conf"
  # A fresh munge key per cluster.
  dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$d/munge/munge.key"
}

start() {
  local d
  d=$(realpath -m "$1")
  [[ ! -e $d/run/slurmctld.pid ]] || die "$d already holds a cluster; stop it first"
  install
  write_config "$d"
  export SLURM_CONF=$d/etc/slurm.conf

  # SLURM 22.05's clients talk to munged on its default socket only (AuthInfo=socket= is
  # ignored by sacctmgr), so this munged serves the default socket while the cluster runs.
  ! pgrep -x munged >/dev/null || die "a munged is already running; stop it first"
  mkdir -p "$MUNGE_SOCKET_DIR" && chmod 755 "$MUNGE_SOCKET_DIR"
  munged --force --key-file="$d/munge/munge.key" --socket="$MUNGE_SOCKET_DIR/munge.socket.2" \
    --pid-file="$d/run/munged.pid" --seed-file="$d/munge/seed" --log-file="$d/log/munged.log"
  wait_for 20 munged test -S "$MUNGE_SOCKET_DIR/munge.socket.2"

  mariadb-install-db --no-defaults --datadir="$d/mysql" --user=root \
    --auth-root-authentication-method=normal >"$d/log/mariadb-install.log" 2>&1
  mariadbd --no-defaults --user=root --datadir="$d/mysql" --socket="$d/run/mysql.sock" \
    --port=$((PORT_BASE + 6)) --bind-address=127.0.0.1 --pid-file="$d/run/mariadb.pid" \
    --log-error="$d/log/mariadb.log" --innodb-buffer-pool-size=64M &
  wait_for 60 mariadb mariadb --no-defaults --socket="$d/run/mysql.sock" -uroot -e 'select 1'
  mariadb --no-defaults --socket="$d/run/mysql.sock" -uroot -e "
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

  slurmdbd
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -i add account "$ACCOUNT" Description=tests Organization=emcom >/dev/null
  sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null

  # The executor's job step drops SLURM_CONF before its `srun`, which then reads the default
  # path: a link there, made only where no slurm.conf exists (removed by `stop`).
  [[ ! -e $SYSTEM_CONF ]] || die "$SYSTEM_CONF exists; this script does not replace it"
  mkdir -p "$(dirname "$SYSTEM_CONF")" && ln -s "$SLURM_CONF" "$SYSTEM_CONF"

  slurmctld
  wait_for 60 slurmctld scontrol ping
  slurmd -N emcom1
  wait_for 60 "node emcom1 idle" bash -c 'sinfo -h -N -o %T | grep -qx idle'
  echo "export SLURM_CONF=$SLURM_CONF"
}

# stop_pid NAME PIDFILE: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
  local pid
  [[ -s $2 ]] || return 0
  pid=$(cat "$2")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null && echo "cluster.sh: killed $1 ($pid)" >&2
  fi
  rm -f "$2"
}

stop() {
  local d
  d=$(realpath -m "$1")
  export SLURM_CONF=$d/etc/slurm.conf
  if [[ -s $d/run/slurmctld.pid ]]; then
    # Jobs first (their slurmstepd would outlive slurmd), within KillWait.
    timeout 20 scancel --full --user root >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 45))
    while ((SECONDS < deadline)) && [[ -n $(timeout 10 squeue -h -o %i 2>/dev/null) ]]; do
      sleep 1
    done
  fi
  stop_pid slurmd "$d/run/slurmd.pid"
  stop_pid slurmctld "$d/run/slurmctld.pid"
  stop_pid slurmdbd "$d/run/slurmdbd.pid"
  stop_pid mariadbd "$d/run/mariadb.pid"
  stop_pid munged "$d/run/munged.pid"
  if [[ $(readlink "$SYSTEM_CONF" 2>/dev/null) == "$SLURM_CONF" ]]; then rm "$SYSTEM_CONF"; fi
  true
}

case ${1:-} in
  install) install ;;
  start) start "${2:?usage: cluster.sh start DIR}" ;;
  stop) stop "${2:?usage: cluster.sh stop DIR}" ;;
  *) die "usage: cluster.sh install | start DIR | stop DIR" ;;
esac
