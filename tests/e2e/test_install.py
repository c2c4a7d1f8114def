"""Installation as docs/deployment.md §2 does it without the packages: configure with the prefix /usr, build, install
into a DESTDIR, and check that the installed programs look for their configuration and
migrations where the installation put them (/etc/msgstatus, /usr/share/msgstatus/sql), that
an edited configuration survives a reinstall, and that installing with another --prefix than
the configured one is refused instead of producing programs that look in the wrong place."""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from e2e import main
from msgsandbox import paths


def run(argv, env=None, timeout=600):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="msgstatus-install-")
        cls.build = os.path.join(cls.tmp, "build")
        cls.root = os.path.join(cls.tmp, "root")
        res = run(["cmake", "-S", paths.source, "-B", cls.build, "-DCMAKE_INSTALL_PREFIX=/usr",
                   "-DCMAKE_BUILD_TYPE=Release", "-DMSGSTATUS_TESTS=OFF"])
        assert res.returncode == 0, res.stdout + res.stderr
        res = run(["cmake", "--build", cls.build, "-j2"])
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        cls.install = run(["cmake", "--install", cls.build], env={"DESTDIR": cls.root})
        assert cls.install.returncode == 0, cls.install.stdout + cls.install.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def staged(self, path):
        """Where an absolute path of the installed system is in the DESTDIR."""
        return os.path.join(self.root, path.lstrip("/"))

    def test_files_land_where_debian_puts_them(self):
        for path in ("/usr/sbin/statusd", "/usr/sbin/statusctl", "/usr/sbin/msgstatus-milter",
                     "/usr/sbin/msgstatus-logd", "/etc/msgstatus/statusd.conf",
                     "/etc/msgstatus/milter.conf", "/etc/msgstatus/logd.conf",
                     "/usr/share/man/man8/statusd.8", "/usr/share/man/man5/statusd.conf.5",
                     "/usr/share/doc/msgstatus/examples/statusd.conf",
                     "/usr/share/doc/msgstatus/examples/90-msgstatus.conf"):
            self.assertTrue(os.path.exists(self.staged(path)), f"{path} not installed")
        for wrong in ("usr/local", "usr/etc"):
            self.assertFalse(os.path.exists(os.path.join(self.root, wrong)), wrong)

    def test_programs_look_where_the_files_are(self):
        sbin = self.staged("/usr/sbin")
        for program, flag, conf in (("statusd", "-h", "/etc/msgstatus/statusd.conf"),
                                    ("statusctl", "--help", "/etc/msgstatus/statusd.conf"),
                                    ("msgstatus-milter", "-h", "/etc/msgstatus/milter.conf"),
                                    ("msgstatus-logd", "-h", "/etc/msgstatus/logd.conf")):
            res = run([os.path.join(sbin, program), flag])
            self.assertEqual(res.returncode, 2, f"{program} {flag}: {res.stderr}")
            m = re.search(r"-c FILE\s+read FILE instead of (\S+)", res.stderr)
            self.assertIsNotNone(m, f"{program}: no default config in {res.stderr!r}")
            self.assertEqual(m.group(1), conf, program)
            self.assertTrue(os.path.isfile(self.staged(m.group(1))), m.group(1))
        # the migrations statusd and statusctl apply by default
        res = run([os.path.join(sbin, "statusd"), "-n", "-c",
                   self.staged("/etc/msgstatus/statusd.conf")])
        self.assertEqual(res.returncode, 0, res.stderr)
        sql_dir = re.search(r"^sql_dir = (.*)$", res.stdout, re.M).group(1)
        self.assertEqual(sql_dir, "/usr/share/msgstatus/sql")
        want = sorted(os.path.basename(p) for p in glob.glob(os.path.join(paths.source, "sql",
                                                                           "*.sql")))
        got = sorted(os.listdir(self.staged(sql_dir)))
        self.assertEqual(got, want)

    def test_reinstall_keeps_an_edited_configuration(self):
        conf = self.staged("/etc/msgstatus/milter.conf")
        with open(conf, "a") as f:
            f.write("milter_socket_mode = 0600\n")
        res = run(["cmake", "--install", self.build], env={"DESTDIR": self.root})
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("Keeping: " + conf, res.stdout)
        with open(conf) as f:
            self.assertTrue(f.read().endswith("milter_socket_mode = 0600\n"))

    def test_another_prefix_at_install_time_is_refused(self):
        other = os.path.join(self.tmp, "other")
        res = run(["cmake", "--install", self.build, "--prefix", "/usr/local"],
                  env={"DESTDIR": other})
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("-DCMAKE_INSTALL_PREFIX=/usr/local", res.stderr)
        self.assertIn("/etc/msgstatus", res.stderr)
        self.assertFalse(os.path.exists(other), "files were installed anyway")


if __name__ == "__main__":
    main()
