"""A real headless browser for the page tests: Debian's chromium, driven through Debian's
chromedriver by Debian's python3-selenium (nothing is downloaded).

    with Browser(sb) as b:
        b.open(url)
        b.wait("the list", lambda: b.js("return document.querySelectorAll('li.msg').length"))
"""
import os
import shutil
import signal
import sys
import threading

from .core import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
QUIT_TIMEOUT = 30  # s: chromedriver now and then never answers the quit (its browser gone)


def descendants(pid):
    """The PIDs of pid's children, theirs, and so on (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def available():
    """Why a browser cannot run here, or None."""
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.access(p, os.X_OK):
            return f"{p} is not installed"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed"
    return None


class Browser:
    def __init__(self, sb, name="browser", width=1100, height=900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.dir = sb.mkdir(name)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-extensions", "--disable-background-networking",
                  f"--window-size={width},{height}",
                  f"--user-data-dir={os.path.join(self.dir, 'profile')}"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        log = os.path.join(self.dir, "chromedriver.log")
        try:
            service = Service(CHROMEDRIVER, log_output=log)  # selenium >= 4.11
        except TypeError:
            service = Service(CHROMEDRIVER, log_path=log)  # Debian 12's 4.8
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_script_timeout(10)
        sb.add_service(self)

    def open(self, url):
        self.driver.get(url)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, what, fn, timeout=15.0):
        """wait_for, polling the page more often."""
        return wait_for(what, fn, timeout=timeout, interval=0.02)

    def offline(self, yes):
        """Cut the page off the network (Chromium's network emulation), or connect it again."""
        self.driver.set_network_conditions(offline=yes, latency=0, download_throughput=-1,
                                           upload_throughput=-1)

    def console(self):
        """The page's console messages since the last call."""
        return [e["message"] for e in self.driver.get_log("browser")]

    def screenshot(self, path):
        self.driver.save_screenshot(path)

    def close(self):
        if self.driver is not None:
            driver, self.driver = self.driver, None
            quitting = threading.Thread(target=self.quit, args=(driver,), daemon=True)
            quitting.start()
            quitting.join(QUIT_TIMEOUT)
            if quitting.is_alive():
                # it will not answer: end chromedriver and what it started (ours, by PID)
                process = getattr(driver.service, "process", None)
                ended = []
                if process is not None:
                    for pid in [*descendants(process.pid), process.pid]:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            ended.append(pid)
                        except ProcessLookupError:
                            pass
                print(f"msgsandbox: chromedriver did not quit in {QUIT_TIMEOUT} s: ended "
                      f"{len(ended)} process(es) of it", file=sys.stderr)
            shutil.rmtree(os.path.join(self.dir, "profile"), ignore_errors=True)

    @staticmethod
    def quit(driver):
        try:
            driver.quit()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
