"""A private PostgreSQL: initdb into the sandbox, UNIX socket only, own port number."""
import glob
import os
import signal
import subprocess

from .core import SandboxError, free_port, wait_for


def pg_bindir():
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(cand, "initdb"), os.X_OK):
            return cand
    raise SandboxError("PostgreSQL server binaries not found (apt-get install postgresql)")


class Postgres:
    """initdb + postgres as a child of the sandbox (as user 'postgres' when run as root).

    By default every local user may connect as any role (trust) and msgstatus's role is the
    superuser: simple for tests. With app_user (root only), as docs/deployment.md sets it
    up: the superuser is postgres, app_user is an ordinary role that owns the database and
    nothing else, and every connection is checked with peer authentication: the system
    users postgres and app_user may connect as their own roles, root (who runs the sandbox)
    as either; nobody else at all.
    """

    def __init__(self, sb, dbname="msgstatus", fsync=False, settings=None, app_user=None):
        self.sb = sb
        self.bindir = pg_bindir()
        self.user = "postgres" if os.geteuid() == 0 else None
        if app_user is not None and self.user is None:
            raise SandboxError("PostgreSQL with peer authentication needs root")
        self.dir = sb.mkdir("pg", owner=self.user)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.dbname = dbname
        self.superuser = "postgres" if app_user else "msgstatus"
        self.app_user = app_user or self.superuser
        self.settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.dir}'",
            "port": str(self.port),
            "fsync": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "max_connections": "100",
            "log_min_messages": "warning",
        }
        self.settings.update(settings or {})
        self.child = None
        auth = ["-A", "trust"] if app_user is None else ["--auth-local=peer",
                                                         "--auth-host=reject"]
        sb.run([os.path.join(self.bindir, "initdb"), "-D", self.data, *auth, "-U",
                self.superuser, "-E", "UTF8", "--locale=C", "--no-sync"], user=self.user)
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")
        if app_user is not None:
            self._peer_only(app_user)
        self.start()
        if app_user is None:
            self.psql(f"CREATE DATABASE {dbname}", db="postgres")
        else:
            self.psql(f"CREATE ROLE {app_user} LOGIN", db="postgres")
            self.psql(f"CREATE DATABASE {dbname} OWNER {app_user}", db="postgres")

    def _peer_only(self, app_user):
        """pg_hba.conf: the UNIX socket only, peer authentication, through one user map."""
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("# Written by msgsandbox: peer authentication on the UNIX socket only, with\n"
                    "# the map msgsandbox (pg_ident.conf); no TCP (listen_addresses is empty).\n"
                    "# TYPE  DATABASE  USER  METHOD\n"
                    "local   all       all   peer map=msgsandbox\n")
        with open(os.path.join(self.data, "pg_ident.conf"), "w") as f:
            f.write("# MAPNAME   SYSTEM-USER  PG-USER\n"
                    f"msgsandbox  postgres     postgres\n"
                    f"msgsandbox  {app_user:<12} {app_user}\n"
                    "# root runs the sandbox (and the demo's psql and statusctl commands)\n"
                    f"msgsandbox  root         postgres\n"
                    f"msgsandbox  root         {app_user}\n")

    @property
    def conninfo(self):
        return f"host={self.dir} port={self.port} user={self.app_user} dbname={self.dbname}"

    def database(self, dbname):
        """Another database on this server, owned by msgstatus's role (a second site's):
        a Database with the same conninfo, psql() and scalar() as this object."""
        if self.app_user == self.superuser:
            self.psql(f"CREATE DATABASE {dbname}", db="postgres")
        else:
            self.psql(f"CREATE DATABASE {dbname} OWNER {self.app_user}", db="postgres")
        return Database(self, dbname)

    def start(self):
        if self.child is not None and self.child.alive():
            return
        self.child = self.sb.spawn("postgres", [os.path.join(self.bindir, "postgres"), "-D",
                                                self.data], user=self.user)
        wait_for("postgres to accept connections", self.ready, proc=self.child.popen)

    def ready(self):
        res = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-q", "-h", self.dir, "-p",
                              str(self.port), "-U", self.superuser, "-d", "postgres"],
                             capture_output=True)
        return res.returncode == 0

    def stop(self, mode="fast"):
        """Stop the server (fast: SIGINT, immediate: SIGQUIT) and wait for it."""
        if self.child is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        self.child.stop(sig, timeout=30)

    def restart(self):
        self.stop()
        self.start()

    def psql(self, sql, db=None, check=True):
        """Run SQL with psql; returns rows as lists of strings (tab-separated output)."""
        res = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              "-h", self.dir, "-p", str(self.port), "-U", self.superuser,
                              "-d", db or self.dbname, "-c", sql],
                             capture_output=True, text=True)
        if check and res.returncode != 0:
            raise SandboxError(f"psql: {res.stderr.strip()}")
        return [line.split("\t") for line in res.stdout.splitlines() if line != ""]

    def scalar(self, sql):
        rows = self.psql(sql)
        return rows[0][0] if rows else None

    def close(self):
        self.stop()


class Database:
    """One database of a Postgres server (Postgres.database()): what statusd and the tests
    use of a Postgres object, for that database; starting and stopping is the server's."""

    def __init__(self, server, dbname):
        self.server = server
        self.dbname = dbname

    @property
    def conninfo(self):
        s = self.server
        return f"host={s.dir} port={s.port} user={s.app_user} dbname={self.dbname}"

    def psql(self, sql, db=None, check=True):
        return self.server.psql(sql, db=db or self.dbname, check=check)

    def scalar(self, sql):
        rows = self.psql(sql)
        return rows[0][0] if rows else None
