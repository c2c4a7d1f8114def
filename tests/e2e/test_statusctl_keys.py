"""statusctl's federation key commands (statusctl(8), docs/federation.md "Operations"), run
for real against a key directory in a temporary directory (no database needed): key make
writes a PKCS#8 PEM Ed25519 key of mode 0600 in a directory of mode 0700 and refuses to
overwrite; key rotate leaves two valid keys; key retire revokes (empty p=) and deletes the
private key; key list shows the states; key records prints zone-file lines whose MSK1 text,
parsed by the grammar of docs/federation.md, carries exactly the public key that openssl
reads from the private key file, and that key verifies a signature openssl makes with the
file. Bad domains and selectors get exit 2 and make no file."""
import base64
import json
import os
import re
import stat
import subprocess
import tempfile
import unittest

from e2e import main
from msgsandbox import paths

STATUSCTL = paths.binary("statusd/statusctl")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "panic:")
ENDPOINT = "https://status.example.net/api/v1/federation/reports"
ZONE_RE = re.compile(r'^(\S+)\.\t(\d+)\tIN\tTXT\t((?:"(?:[^"\\]|\\.)*" ?)+)$')
# RFC 8410: the DER SubjectPublicKeyInfo of an Ed25519 key is this prefix and the raw key
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def txt_strings(quoted):
    """The character-strings of a zone-file TXT RDATA, unescaped and concatenated."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', quoted)
    for p in parts:
        assert len(re.sub(r"\\(.)", r"\1", p)) <= 255, p
    return "".join(re.sub(r"\\(.)", r"\1", p) for p in parts)


def parse_record(txt, version):
    """docs/federation.md "Rules for both": version tag first, tag=value pairs, no repeats."""
    tags = [t.strip() for t in txt.split(";")]
    assert tags[0] == f"v={version}", txt
    out = {}
    for t in tags[1:]:
        if t == "":
            continue
        name, value = (x.strip() for x in t.split("=", 1))
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,15}", name), txt
        assert name not in out, txt
        out[name] = value
    return out


class StatusctlKeysTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keys-")
        self.keydir = os.path.join(self.tmp, "keys")
        self.conf = self.config(ENDPOINT)

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.tmp], check=True)

    def config(self, endpoint, name="statusd.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(f"federation_key_dir = {self.keydir}\nfederation_endpoint = {endpoint}\n")
        return path

    def ctl(self, *args, want=0, conf=None):
        res = subprocess.run([STATUSCTL, "-c", conf or self.conf, *args], capture_output=True,
                             text=True, timeout=60)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, res.stderr, f"statusctl {args}: {res.stderr}")
        if want is not None:
            self.assertEqual(res.returncode, want,
                             f"statusctl {' '.join(args)}: exit {res.returncode}\n"
                             f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    def key_file(self, selector, domain="example.net"):
        return os.path.join(self.keydir, f"{selector}._msgstatus-key.{domain}.pem")

    def openssl_public(self, selector):
        """The raw public key of a private key file, as openssl reads it."""
        der = subprocess.run(["openssl", "pkey", "-in", self.key_file(selector), "-pubout",
                              "-outform", "DER"], capture_output=True, check=True).stdout
        self.assertEqual(der[:12], ED25519_SPKI_PREFIX)
        return der[12:]

    def records(self, *args):
        """key records, parsed: {owner name: (ttl, text)}; the comments are checked."""
        out = {}
        for line in self.ctl("key", "records", *args).stdout.splitlines():
            if line.startswith(";"):
                continue
            m = ZONE_RE.match(line)
            self.assertIsNotNone(m, f"not a zone-file TXT line: {line!r}")
            self.assertNotIn(m.group(1), out)
            out[m.group(1)] = (int(m.group(2)), txt_strings(m.group(3)))
        return out

    def states(self):
        doc = json.loads(self.ctl("--json", "key", "list").stdout)
        return {(k["domain"], k["selector"]): k for k in doc["keys"]}

    def check_key_record(self, recs, selector):
        """The selector's MSK1 record carries the key of its file: same bytes as openssl
        reads, and it verifies a signature openssl makes with the file."""
        ttl, txt = recs[f"{selector}._msgstatus-key.example.net"]
        tags = parse_record(txt, "MSK1")
        self.assertEqual(tags["k"], "ed25519")
        raw = base64.b64decode(tags["p"], validate=True)
        self.assertEqual(base64.b64encode(raw).decode(), tags["p"])  # canonical
        self.assertEqual(raw, self.openssl_public(selector))
        data = os.path.join(self.tmp, "data")
        sig = os.path.join(self.tmp, "sig")
        pub = os.path.join(self.tmp, "pub.der")
        with open(data, "wb") as f:
            f.write(b'"@method": POST\n')
        with open(pub, "wb") as f:
            f.write(ED25519_SPKI_PREFIX + raw)
        subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey",
                        self.key_file(selector), "-in", data, "-out", sig], check=True)
        res = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-pubin", "-keyform",
                              "DER", "-inkey", pub, "-in", data, "-sigfile", sig],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        return raw

    def test_make_rotate_retire_and_records(self):
        res = self.ctl("key", "make", "Example.NET", "S2026")
        self.assertIn("made key s2026 of example.net (signing)", res.stdout)
        self.assertIn(self.key_file("s2026"), res.stdout)
        # the private key: PKCS#8 PEM, 0600, in a directory of mode 0700
        with open(self.key_file("s2026")) as f:
            pem = f.read()
        self.assertTrue(pem.startswith("-----BEGIN PRIVATE KEY-----\n"), pem[:40])
        self.assertEqual(stat.S_IMODE(os.stat(self.key_file("s2026")).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.keydir).st_mode), 0o700)
        self.assertEqual([n for n in os.listdir(self.keydir) if n.startswith(".tmp")], [])
        # make prints the record to publish; it is the key of the file
        line = [x for x in res.stdout.splitlines() if x.startswith("s2026._msgstatus-key.")]
        self.assertEqual(len(line), 1, res.stdout)
        first = self.check_key_record(self.records(), "s2026")
        self.assertIn(base64.b64encode(first).decode(), line[0])
        # no private key text anywhere in what statusctl prints
        body = "".join(pem.splitlines()[1:-1])
        self.assertNotIn(body[:40], res.stdout + res.stderr)

        # a second key is made ahead: published, not signing
        res = self.ctl("key", "make", "example.net", "s2027")
        self.assertIn("(published)", res.stdout)
        st = self.states()
        self.assertEqual(st[("example.net", "s2026")]["state"], "signing")
        self.assertEqual(st[("example.net", "s2027")]["state"], "published")
        self.assertEqual(st[("example.net", "s2026")]["public_key"],
                         base64.b64encode(first).decode())

        # rotate: s2027 signs, s2026 stays valid; both records carry their keys
        res = self.ctl("key", "rotate", "example.net", "s2027")
        self.assertIn("signs with s2027 now; s2026 stays valid", res.stdout)
        self.assertEqual(res.stderr, "")  # it was made ahead: no warning
        st = self.states()
        self.assertEqual(st[("example.net", "s2027")]["state"], "signing")
        self.assertEqual(st[("example.net", "s2026")]["state"], "published")
        recs = self.records()
        self.assertEqual(recs["_msgstatus.example.net"], (3600, f"v=MSR1; u={ENDPOINT}"))
        self.assertEqual(parse_record(recs["_msgstatus.example.net"][1], "MSR1")["u"], ENDPOINT)
        second = self.check_key_record(recs, "s2027")
        self.assertEqual(self.check_key_record(recs, "s2026"), first)
        self.assertNotEqual(first, second)
        self.assertEqual(len(recs), 3)

        # human list: a header and one line per key with its state
        out = self.ctl("key", "list").stdout.splitlines()
        self.assertEqual(out[0].split()[:3], ["DOMAIN", "SELECTOR", "STATE"])
        self.assertRegex(out[1], r"^example\.net\s+s2026\s+published\s+\S+Z\s+\S+Z\s+\S{43}=$")
        self.assertRegex(out[2], r"^example\.net\s+s2027\s+signing\s")

        # the signing key cannot be retired; an unknown one is not found (exit 3)
        res = self.ctl("key", "retire", "example.net", "s2027", want=1)
        self.assertIn("is the signing key of example.net: rotate", res.stderr)
        res = self.ctl("key", "retire", "example.net", "nosuch", want=3)
        self.assertIn("has no key with selector nosuch", res.stderr)

        # retire s2026: revoked record, private key gone, selector never reused
        self.ctl("key", "retire", "example.net", "s2026")
        self.assertFalse(os.path.exists(self.key_file("s2026")))
        self.assertEqual(self.states()[("example.net", "s2026")]["state"], "retired")
        self.assertIsNone(self.states()[("example.net", "s2026")]["file"])
        recs = self.records("example.net", "--ttl", "5m")
        ttl, txt = recs["s2026._msgstatus-key.example.net"]
        self.assertEqual((ttl, txt), (300, "v=MSK1; k=ed25519; p="))
        self.assertEqual(parse_record(txt, "MSK1")["p"], "")
        self.assertEqual(self.check_key_record(recs, "s2027"), second)
        self.assertIn("already retired",
                      self.ctl("key", "retire", "example.net", "s2026").stdout)
        res = self.ctl("key", "make", "example.net", "s2026", want=1)
        self.assertIn("selectors are never reused", res.stderr)
        res = self.ctl("key", "rotate", "example.net", "s2026", want=1)
        self.assertIn("is retired", res.stderr)

        # rotate to a new selector: made on the spot, with a warning
        res = self.ctl("key", "rotate", "example.net", "s2028")
        self.assertIn("made key s2028 just now", res.stderr)
        self.check_key_record(self.records(), "s2028")
        self.assertEqual(self.states()[("example.net", "s2027")]["state"], "published")

    def test_refuses_to_overwrite(self):
        os.mkdir(self.keydir, 0o700)
        with open(self.key_file("s1"), "w") as f:
            f.write("someone's key\n")
        res = self.ctl("key", "make", "example.net", "s1", want=1)
        self.assertIn("exists already: not overwriting it", res.stderr)
        with open(self.key_file("s1")) as f:
            self.assertEqual(f.read(), "someone's key\n")
        self.assertEqual(self.states(), {})

    def test_untrusted_names(self):
        for args in (("example.net", "../x"), ("example.net", "a/b"), ("example.net", "a.b"),
                     ("example.net", "-x"), ("example.net", ""), ("../etc", "s1"),
                     ("example.net/..", "s1"), ("example..net", "s1"), ("example.net.", "s1"),
                     ("alice@example.net", "s1"), ("example.net", "x" * 64)):
            for cmd in ("make", "rotate", "retire"):
                res = self.ctl("key", cmd, *args, want=2)
                self.assertIn("usage:", res.stderr, f"{cmd} {args}")
                self.assertEqual(res.stdout, "")
        for cmd in ("list", "records"):
            for bad in ("a-.example.net", "x" * 64 + ".example.net", "a/b", "a.-b.net"):
                res = self.ctl("key", cmd, bad, want=2)
                self.assertIn("is not a domain name", res.stderr, f"{cmd} {bad}")
        self.ctl("key", "make", "example.net", want=2)
        self.ctl("key", "make", "example.net", "s1", "extra", want=2)
        self.assertEqual(os.listdir(self.tmp), ["statusd.conf"])  # nothing was made

    def test_settings_checked(self):
        self.ctl("key", "make", "example.net", "s1")
        os.chmod(self.keydir, 0o770)
        res = self.ctl("key", "list", want=1)
        self.assertIn(f"federation_key_dir {self.keydir} may be written by group or others",
                      res.stderr)
        os.chmod(self.keydir, 0o700)
        bad = self.config("http://status.example.net/r", "bad.conf")
        res = self.ctl("key", "records", want=1, conf=bad)
        self.assertIn("federation_endpoint", res.stderr)
        rel = os.path.join(self.tmp, "rel.conf")
        with open(rel, "w") as f:
            f.write("federation_key_dir = keys\n")
        res = self.ctl("key", "list", want=1, conf=rel)
        self.assertIn("federation_key_dir: expected an absolute path", res.stderr)
        # no endpoint: a comment says so, and the key records are printed all the same
        res = self.ctl("key", "records", conf=self.config("", "none.conf"))
        self.assertIn("; federation_endpoint is not set", res.stdout)
        self.assertNotIn("_msgstatus.example.net", res.stdout)
        self.assertIn("s1._msgstatus-key.example.net.", res.stdout)

    def test_long_endpoint_is_split(self):
        url = "https://status.example.net/" + "p" * 400
        conf = self.config(url, "long.conf")
        self.ctl("key", "make", "example.net", "s1", conf=conf)
        raw = self.ctl("key", "records", conf=conf).stdout
        self.assertRegex(raw, r'_msgstatus\.example\.net\.\t3600\tIN\tTXT\t"[^"]{255}" "')
        recs = {}
        for line in raw.splitlines():
            m = ZONE_RE.match(line)
            if m:
                recs[m.group(1)] = txt_strings(m.group(3))
        self.assertEqual(recs["_msgstatus.example.net"], f"v=MSR1; u={url}")


if __name__ == "__main__":
    main()
