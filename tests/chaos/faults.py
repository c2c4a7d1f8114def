"""The faults the chaos suite injects while mail flows.

Each fault is a function fault(chain, seconds, rng, stop) that breaks something for about
`seconds` and leaves it working again when it returns (also when `stop` is set early):
every process it killed is running again, every stopped process continued, every
filled disk emptied. `chain` is the running system (chaos.Chain). Each returns a short
note of what it did, for the report.

Processes are signalled by the PIDs the sandbox started them with (or their children),
never by name.
"""
import os
import signal
import socket
import subprocess
import threading
import time


def _children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def none(chain, seconds, rng, stop):
    """Baseline: nothing broken. The other phases' latencies are compared with this one."""
    stop.wait(seconds)
    return "no fault"


def statusd_kill9(chain, seconds, rng, stop):
    """statusd killed with SIGKILL at random moments, restarted after a random pause."""
    end = time.monotonic() + seconds
    kills = 0
    while time.monotonic() < end and not stop.is_set():
        stop.wait(rng.uniform(0.3, 2.0))
        chain.sd.kill()
        kills += 1
        stop.wait(rng.uniform(0.2, 1.5))
        chain.sd.start(wait_db=False)
    return f"{kills} SIGKILLs"


def postgres_down(chain, seconds, rng, stop):
    """PostgreSQL stopped as if it crashed (immediate shutdown), then started again."""
    stop.wait(seconds * 0.1)
    chain.pg.stop("immediate")
    stop.wait(seconds * 0.7)
    chain.pg.start()
    stop.wait(seconds * 0.2)
    return f"down {seconds * 0.7:.1f} s (immediate shutdown, crash recovery)"


def postgres_slow(chain, seconds, rng, stop):
    """PostgreSQL stalls: all its processes stopped (SIGSTOP) 300 ms of every 500 ms, as
    on a saturated disk."""
    end = time.monotonic() + seconds
    stalls = 0
    master = chain.pg.child.pid
    while time.monotonic() < end and not stop.is_set():
        pids = [master] + _children(master)
        _signal_all(pids, signal.SIGSTOP)
        try:
            time.sleep(0.3)
        finally:
            _signal_all(pids, signal.SIGCONT)
        stalls += 1
        time.sleep(0.2)
    return f"{stalls} stalls of 300 ms"


def milter_kill9(chain, seconds, rng, stop):
    """The milter's worker killed with SIGKILL (its supervisor starts it again), then the
    whole milter killed and started again."""
    end = time.monotonic() + seconds
    kills = 0
    while time.monotonic() < end - seconds * 0.4 and not stop.is_set():
        stop.wait(rng.uniform(0.5, 1.5))
        worker = chain.milter.worker_pid()
        if worker:
            os.kill(worker, signal.SIGKILL)
            kills += 1
        stop.wait(1.5)  # the supervisor waits a second before it starts a new worker
    chain.milter.child.send_signal(signal.SIGKILL)
    chain.milter.child.popen.wait(10)
    stop.wait(rng.uniform(0.5, 1.5))
    chain.milter.start()
    stop.wait(max(0.0, end - time.monotonic()))
    return f"{kills} worker SIGKILLs, then the supervisor's"


def statusd_socket_full(chain, seconds, rng, stop):
    """statusd stops reading (SIGSTOP) and its event socket's listen queue is filled, so
    producers that connect get nothing; then statusd continues."""
    chain.sd.child.send_signal(signal.SIGSTOP)
    fillers = []
    try:
        for _ in range(4096):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(chain.sd.socket_path)
            except BlockingIOError:  # EAGAIN: the listen queue is full
                s.close()
                break
            fillers.append(s)
        stop.wait(seconds)
    finally:
        chain.sd.child.send_signal(signal.SIGCONT)
        for s in fillers:
            s.close()
    return f"stopped {seconds:.0f} s, listen queue full after {len(fillers)} connections"


def spool_disk_full(chain, seconds, rng, stop):
    """The file system holding the spools (the milter's, msgstatus-logd's, statusd's
    pickup directory) filled to the last byte, then emptied."""
    written = chain.spoolfs_fs.fill()
    try:
        stop.wait(seconds)
    finally:
        chain.spoolfs_fs.empty()
    return f"full for {seconds:.0f} s ({written // 1024} KiB of filler)"


def spool_disk_full_statusd_kill9(chain, seconds, rng, stop):
    """Both at once: the spools' file system full, and statusd killed (SIGKILL) and started
    again while it is full, so that a producer can neither send nor file its events."""
    fill = threading.Thread(target=spool_disk_full, args=(chain, seconds, rng, stop))
    fill.start()
    try:
        stop.wait(seconds * 0.2)
        chain.sd.kill()
        stop.wait(seconds * 0.4)
        chain.sd.start(wait_db=False)
    finally:
        fill.join()
    return "statusd SIGKILLed and restarted while the spools' disk was full"


def logrotate_statusd_down(chain, seconds, rng, stop):
    """statusd stopped; `postfix logrotate` while it is down (the old log is compressed);
    statusd started again."""
    chain.sd.stop()
    stop.wait(seconds * 0.3)
    chain.sb.run(["postfix", "-c", chain.postfix.config_dir, "logrotate"])
    stop.wait(seconds * 0.4)
    chain.sd.start(wait_db=False)
    stop.wait(seconds * 0.3)
    return "statusd down, maillog rotated and compressed meanwhile"


def dovecot_restart(chain, seconds, rng, stop):
    """Dovecot stopped while the reader's IMAP session is open (and LMTP deliveries come
    in), started again."""
    stop.wait(seconds * 0.2)
    chain.dovecot.stop()
    stop.wait(seconds * 0.3)
    chain.dovecot.start()
    stop.wait(seconds * 0.5)
    return f"down {seconds * 0.3:.1f} s"


# In the order the CI run injects them (after the baseline).
FAULTS = [
    ("none", none),
    ("statusd-kill9", statusd_kill9),
    ("postgres-down", postgres_down),
    ("postgres-slow", postgres_slow),
    ("milter-kill9", milter_kill9),
    ("statusd-socket-full", statusd_socket_full),
    ("spool-disk-full", spool_disk_full),
    ("spool-disk-full+statusd-kill9", spool_disk_full_statusd_kill9),
    ("logrotate-statusd-down", logrotate_statusd_down),
    ("dovecot-restart", dovecot_restart),
]
