#!/usr/bin/env bash
# A single-node SLURM cluster on loopback for the tests (Debian packages, root, no systemd).
#
#   .ci/slurm.sh install   apt-get the daemons (munge, slurmctld, slurmd, slurm-client)
#   .ci/slurm.sh start     start munge, slurmctld and slurmd; wait for the node to be idle
#   .ci/slurm.sh stop      stop them again (by pid)
#
# State, logs and the config live under $SLURM_CI_DIR (default /tmp/msc-slurm); clients find the
# config through SLURM_CONF=$SLURM_CI_DIR/etc/slurm.conf (printed by `start`). Daemons bind to
# 127.0.0.1 when the host name resolves to a loopback address; no traffic leaves the machine.
set -euo pipefail

D=${SLURM_CI_DIR:-/tmp/msc-slurm}
export SLURM_CONF=$D/etc/slurm.conf

log() { echo "[slurm $(date +%T)] $*"; }

wait_for() {  # wait_for SECONDS COMMAND...
  local n=$(( $1 * 5 )); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

do_install() {
  command -v slurmctld >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null && return 0
  export DEBIAN_FRONTEND=noninteractive
  local added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the packages' scripts from starting daemons
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; added=1
  fi
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null; }
  [ "$added" = 1 ] && rm -f /usr/sbin/policy-rc.d
  log "installed $(sbatch --version)"
}

write_conf() {
  local node cpus mem bind=""
  node=$(hostname -s); cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))
  case "$(getent ahostsv4 "$(hostname)" | awk 'NR==1{print $1}')" in
    127.*) bind="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny" ;;
  esac
  mkdir -p "$D"/etc "$D"/log "$D"/state "$D"/spool
  cat > "$SLURM_CONF" <<EOF
ClusterName=msc-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
$bind
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/builtin
SchedulerParameters=sched_min_interval=100000,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

do_start() {
  [ -s /etc/munge/munge.key ] || mungekey --create
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged
  wait_for 20 sh -c 'munge -n | unmunge' || { log "munged does not answer"; exit 1; }
  write_conf
  rm -rf "$D"/state/* "$D"/spool/*
  /usr/sbin/slurmctld
  /usr/sbin/slurmd
  wait_for 60 sh -c "[ \"\$(sinfo -h -o %t)\" = idle ]" || {
    sinfo || true; tail -30 "$D"/log/slurmctld.log "$D"/log/slurmd.log; exit 1; }
  log "cluster up: export SLURM_CONF=$SLURM_CONF"
}

stop_pid() {
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

do_stop() {
  scancel --user=root 2>/dev/null || true
  stop_pid "$D"/slurmd.pid
  stop_pid "$D"/slurmctld.pid
  stop_pid /run/munge/munged.pid
  log "stopped"
}

case "${1:-}" in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
