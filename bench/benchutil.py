"""What the benchmarks share. Import it before msgsandbox: it puts the test sandbox on
sys.path and points it at the optimized build (build/, unless MSGSTATUS_BUILD_DIR says
otherwise). bench/ is on sys.path already, as the folder of the script that runs."""
import os
import subprocess
import sys

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SOURCE, "tests", "sandbox"))
os.environ.setdefault("MSGSTATUS_BUILD_DIR", os.path.join(SOURCE, "build"))


def percentile(values, p):
    """The p-th percentile of values, nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def cpu_seconds(pid):
    """User and system CPU time a process has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends(pg):
    """CPU seconds of each of PostgreSQL's processes."""
    kids = subprocess.run(["pgrep", "-P", str(pg.child.popen.pid)], capture_output=True,
                          text=True).stdout.split()
    return {int(k): cpu_seconds(int(k)) for k in kids}


def pg_cpu(pg):
    """CPU seconds all of PostgreSQL has used: the postmaster, its live children, and the
    children it has reaped (a psql's backend ends with it)."""
    def own():  # incl. cutime cstime: the children reaped so far
        with open(f"/proc/{pg.child.popen.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    # a child reaped between the two reads would be counted in neither or in both: read
    # again until no child was reaped meanwhile
    for _ in range(100):
        before = own()
        live = sum(backends(pg).values())
        after = own()
        if after == before:
            break
    return after + live
