"""Knot DNS (knotd) as a private authoritative server on 127.0.0.1, for the federation's
DNS records and DKIM keys: its own configuration, zone files, database and control socket
in the sandbox, a free UDP/TCP port, no privileges needed (run as the knot user, that
Debian's package makes, when the tests run as root).

    dns = sb.knot({"example.org": ["s1._domainkey 300 IN TXT \\"v=DKIM1; k=rsa; p=...\\""]})
    dns.server        # "127.0.0.1@PORT": what msgstatus's dns_server setting takes
    dns.set_zone("example.org", records)   # rewrite a zone (or add one) and reload it
"""
import os
import pwd
import subprocess

from .core import free_port, paths, wait_for

KNOTD = "/usr/sbin/knotd"
KNOTC = "/usr/sbin/knotc"


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def available():
    return os.access(KNOTD, os.X_OK)


class Knot:
    def __init__(self, sb, zones, name="knot", port=None):
        self.sb = sb
        self.name = name
        self.user = "knot" if os.geteuid() == 0 and _has_user("knot") else None
        self.dir = sb.mkdir(name)
        for sub in ("zones", "db", "run"):
            sb.mkdir(name, sub, owner=self.user)
        self.port = port or free_port()
        self.config = os.path.join(self.dir, "knot.conf")
        self.control = os.path.join(self.dir, "run", "knot.sock")
        self.zones = dict(zones)
        self.serials = {}
        for zone, records in self.zones.items():
            self.serials[zone] = 1
            self._write_zone(zone, records, serial=1)
        self._write_config()
        self.child = sb.spawn(name, [KNOTD, "-c", self.config], user=self.user)
        wait_for("knotd to answer", self._answers, proc=self.child.popen)

    @property
    def server(self):
        return f"127.0.0.1@{self.port}"

    def _write_zone(self, zone, records, serial):
        lines = [f"$ORIGIN {zone}.", "$TTL 300",
                 f"@ 300 IN SOA ns.{zone}. hostmaster.{zone}. {serial} 3600 600 86400 60",
                 f"@ 300 IN NS ns.{zone}.", "ns 300 IN A 127.0.0.1"]
        lines += list(records)
        with open(os.path.join(self.dir, "zones", zone + ".zone"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def _write_config(self):
        zones = "".join(f"  - domain: {z}\n" for z in self.zones)
        zones = "zone:\n" + zones if zones else ""  # knotd may start with none
        with open(self.config, "w") as f:
            f.write(f"""server:
    rundir: "{self.dir}/run"
    listen: 127.0.0.1@{self.port}
control:
    listen: "{self.control}"
database:
    storage: "{self.dir}/db"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "{self.dir}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
{zones}""")

    def _answers(self):
        res = subprocess.run([KNOTC, "-c", self.config, "-s", self.control, "zone-status"],
                             capture_output=True, text=True)
        return res.returncode == 0 and all(z in res.stdout for z in self.zones)

    def set_zone(self, zone, records, serial=None):
        """Rewrite zone and have knotd load it; serial must grow (default: the last one
        + 1). A zone knotd does not serve yet is added to its configuration (reload)."""
        new = zone not in self.zones
        self.serials[zone] = serial = serial or self.serials.get(zone, 0) + 1
        self.zones[zone] = records
        self._write_zone(zone, records, serial)
        if new:
            self._write_config()
            self._knotc("reload")
            wait_for(f"knotd to serve {zone}", self._answers, proc=self.child.popen)
        else:
            self._knotc("zone-reload", zone)

    def _knotc(self, *args):
        subprocess.run([KNOTC, "-c", self.config, "-s", self.control, *args], check=True,
                       capture_output=True)

    def close(self):
        self.child.stop()


def dkim_key(sb, domain, selector, name=None):
    """A DKIM key made by opendkim-genkey: (private key path, the zone record)."""
    d = sb.mkdir(name or f"dkim-{selector}-{domain}")
    subprocess.run(["opendkim-genkey", "-b", "1024", "-D", d, "-d", domain, "-s", selector],
                   check=True, capture_output=True)
    with open(os.path.join(d, selector + ".txt")) as f:
        # "s1._domainkey	IN	TXT	( ... )  ; ----- DKIM key ...": zone-file syntax
        record = f.read().split("; -----")[0].strip()
    return os.path.join(d, selector + ".private"), record


def dkim_sign(message, domain, selector, key_path, canon="relaxed", alg="sha256"):
    """message (bytes, CRLF lines) signed with OpenDKIM's library (tests/tools/dkimsign)."""
    res = subprocess.run([paths.binary("tests/dkimsign"), "-d", domain, "-s", selector,
                          "-k", key_path, "-c", canon, "-a", alg],
                         input=message, capture_output=True, check=True)
    return res.stdout
