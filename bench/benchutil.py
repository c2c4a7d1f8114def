"""What the benchmarks share. Import it before msgsandbox: it puts the test sandbox on
sys.path and points it at the optimized build (build/, unless MSGSTATUS_BUILD_DIR says
otherwise). bench/ is on sys.path already, as the folder of the script that runs."""
import os
import sys

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SOURCE, "tests", "sandbox"))
os.environ.setdefault("MSGSTATUS_BUILD_DIR", os.path.join(SOURCE, "build"))


def percentile(values, p):
    """The p-th percentile of values, nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
