# Sourced by mp_srun.sh: a one-node SLURM cluster (munged, slurmctld, slurmd from Debian's
# slurm-wlm) under a private configuration in $slurm_dir, stopped again on exit. Needs root.
slurm_dir="$tmp/slurm"
mkdir -p "$slurm_dir"/{state,spool,log,run}
host=$(hostname -s)
node_line=$(slurmd -C | head -1)
# Ports from the process id, so two test runs (or another cluster) do not collide.
base=$((20000 + $$ % 10000 * 2))
cat > "$slurm_dir/slurm.conf" <<CONF
ClusterName=strata-test
SlurmctldHost=$host
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/run/slurmctld.pid
SlurmdPidFile=$slurm_dir/run/slurmd.pid
SlurmctldLogFile=$slurm_dir/log/slurmctld.log
SlurmdLogFile=$slurm_dir/log/slurmd.log
ReturnToService=2
MpiDefault=none
$node_line
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$slurm_dir/slurm.conf"
started_munge=0
if ! pgrep -u munge -x munged > /dev/null; then
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged
  started_munge=1
fi
slurm_stop() {
  for f in slurmd slurmctld; do
    [ -f "$slurm_dir/run/$f.pid" ] && kill "$(cat "$slurm_dir/run/$f.pid")" 2> /dev/null || true
  done
  if [ "$started_munge" = 1 ]; then kill "$(cat /run/munge/munged.pid 2> /dev/null)" 2> /dev/null || true; fi
  sleep 0.5
  rm -rf "$tmp"
}
trap slurm_stop EXIT
slurmctld -i
slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2> /dev/null | grep -qE '^(idle|mixed)'; then break; fi
  sleep 0.5
done
sinfo -h -o %T | grep -qE '^(idle|mixed)' || { echo "FAIL: the local SLURM node did not come up"; sinfo; tail "$slurm_dir"/log/*.log; exit 1; }
