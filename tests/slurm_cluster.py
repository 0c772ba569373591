"""A real single-node SLURM cluster for the workflow test (SLURM_NOTES.md of the project).

Starts munge, slurmctld and slurmd on this machine with a one-node configuration, and
stops them again. Needs root and the Debian packages ``slurm-wlm`` and ``munge``
(``run.sh test`` installs them when run as root). State, spool and logs live in a
temporary folder; the configuration must be ``/etc/slurm/slurm.conf`` because ``srun``
inside a batch job reads only that path. The file is written only where none exists
(or where this module wrote it) and is removed again, so a real cluster's
configuration is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by uabench tests/slurm_cluster.py; removed after the test"


def available() -> str | None:
    """None when a cluster can be started here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "starting SLURM daemons needs root"
    missing = [
        b for b in ("slurmctld", "slurmd", "sbatch", "squeue", "munged") if not shutil.which(b)
    ]
    if missing:
        return f"SLURM binaries {missing} not installed (apt-get install slurm-wlm munge)"
    if SYSTEM_CONF.exists() and MARKER not in SYSTEM_CONF.read_text():
        return f"{SYSTEM_CONF} belongs to a real cluster; not touching it"
    return None


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


class LocalSlurm:
    """One-node SLURM (node ``localhost``, partition ``main``) rooted in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.conf = SYSTEM_CONF
        self.pids: list[Path] = []

    def _start_munge(self) -> None:
        ok = subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0
        if ok:
            return
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        run_dir.chmod(0o755)
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True)

    def start(self) -> dict[str, str]:
        """Starts the daemons and returns the environment that points clients at them."""
        self._start_munge()
        state, spool, logs = (self.folder / d for d in ("state", "spool", "log"))
        for d in (state, spool, logs):
            shutil.rmtree(d, ignore_errors=True)  # stale state kills slurmctld (notes, 4)
            d.mkdir(parents=True)
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "\n".join(
                [
                    MARKER,
                    "ClusterName=bench",
                    "SlurmctldHost=localhost",
                    "SlurmUser=root",
                    "AuthType=auth/munge",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "MinJobAge=300",
                    "ReturnToService=2",
                    f"StateSaveLocation={state}",
                    f"SlurmdSpoolDir={spool}",
                    f"SlurmctldPidFile={self.folder / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.folder / 'slurmd.pid'}",
                    f"SlurmctldLogFile={logs / 'slurmctld.log'}",
                    f"SlurmdLogFile={logs / 'slurmd.log'}",
                    f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
                    f"RealMemory={_memory_mb() - 1024} State=UNKNOWN",
                    "PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )  # fmt: skip
        )
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        subprocess.run(["slurmctld", "-c", "-i", "-f", str(self.conf)], check=True, env=env)
        subprocess.run(["slurmd", "-N", "localhost", "-f", str(self.conf)], check=True, env=env)
        self.pids = [self.folder / "slurmd.pid", self.folder / "slurmctld.pid"]
        deadline = time.time() + 30
        while time.time() < deadline:
            state = subprocess.run(
                ["timeout", "5", "sinfo", "-h", "-N", "-o", "%T"],
                capture_output=True,
                text=True,
                env=env,
            ).stdout.strip()
            if state == "idle":
                return env
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SLURM node did not become idle (state {state!r}); logs in {logs}")

    def stop(self) -> None:
        """TERM slurmd then slurmctld, KILL after 10 s (notes, 5)."""
        for pid_file in self.pids:
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text().split()[0])
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.time() + 10
                while time.time() < deadline and Path(f"/proc/{pid}").exists():
                    time.sleep(0.1)
                if not Path(f"/proc/{pid}").exists():
                    break
        if self.conf.exists() and MARKER in self.conf.read_text():
            self.conf.unlink()
