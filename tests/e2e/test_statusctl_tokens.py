"""statusctl's token, user and prefs commands against a private PostgreSQL and statusd:
API tokens are printed once and stored only as their SHA-256, list never shows them, revoke
and expiry take effect in statusd; token sign mints a JWT that statusd (token.c) accepts
with the same secret; user admin gives a signed-token user a domain's mail; prefs shows and
sets; bad arguments get a clear message, the usage and exit 2."""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import unittest

from e2e import event, main
from msgsandbox import Sandbox, paths

STATUSCTL = paths.binary("statusd/statusctl")
TOKEN_RE = re.compile(r"^mst_[a-z2-7]{32}$")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "panic:")


def b64decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class StatusctlTokensTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)  # migrates the database
        cls.conf = cls.sd.config           # statusctl reads statusd's configuration
        cls.secret = cls.sd.secret.encode()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

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

    def ctl_json(self, *args, want=0):
        return json.loads(self.ctl("--json", *args, want=want).stdout)

    def usage_error(self, *args, says=None):
        res = self.ctl(*args, want=2)
        self.assertIn("usage:", res.stderr, f"{args}: {res.stderr}")
        if says is not None:
            self.assertIn(says, res.stderr, f"{args}: {res.stderr}")
        self.assertEqual(res.stdout, "", f"{args}")
        return res

    def api_code(self, token, path="/api/v1/messages"):
        return self.sd.api(path, token)[0]

    # --- API tokens ------------------------------------------------------------------

    def test_create_stores_only_the_hash(self):
        res = self.ctl("token", "create", "Alice@Example.ORG", "--label", "laptop",
                       "--expires", "30d")
        token = res.stdout.strip()
        self.assertRegex(token, TOKEN_RE)
        self.assertEqual(res.stdout, token + "\n")  # the token alone, for TOKEN=$(...)
        self.assertIn("shown only now", res.stderr)
        rows = self.pg.psql("SELECT t.id, t.username, t.label, encode(t.token_hash, 'hex'),"
                            " extract(epoch FROM t.expires_at - t.created_at)::bigint"
                            " FROM api_tokens t WHERE t.label = 'laptop'")
        self.assertEqual(len(rows), 1)
        _, user, label, digest, lifetime = rows[0]
        self.assertEqual((user, label), ("alice@example.org", "laptop"))
        self.assertEqual(digest, hashlib.sha256(token.encode()).hexdigest())
        self.assertAlmostEqual(int(lifetime), 30 * 86400, delta=5)
        # nowhere in the database is the token itself
        dump = "\n".join("\t".join(r) for r in self.pg.psql(
            "SELECT t::text FROM api_tokens t UNION ALL SELECT u::text FROM users u"))
        self.assertNotIn(token, dump)
        self.assertNotIn(token[4:], dump)
        # the users row came with it
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM users WHERE name = 'alice@example.org'"), "1")
        # statusd takes it
        self.assertEqual(self.api_code(token), 200)

    def test_create_json_and_defaults(self):
        doc = self.ctl_json("token", "create", "json@example.org")
        self.assertRegex(doc["token"], TOKEN_RE)
        self.assertEqual(doc["user"], "json@example.org")
        self.assertIsNone(doc["label"])
        self.assertIsNone(doc["expires"])  # no --expires: does not expire
        self.assertRegex(doc["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertIsInstance(doc["id"], int)
        # a second token for the same user: the users row is reused, the tokens differ
        doc2 = self.ctl_json("token", "create", "json@example.org", "--label", "second")
        self.assertNotEqual(doc["token"], doc2["token"])
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM api_tokens WHERE username = 'json@example.org'"), "2")

    def test_list_never_shows_tokens(self):
        made = [self.ctl_json("token", "create", "lister@example.org", "--label", f"l{i}")
                for i in range(2)]
        self.ctl("token", "create", "other@example.org")
        res = self.ctl("token", "list")
        self.assertNotIn("mst_", res.stdout)
        for col in ("ID", "USER", "LABEL", "CREATED", "EXPIRES", "REVOKED"):
            self.assertIn(col, res.stdout.splitlines()[0])
        self.assertRegex(res.stdout, rf"(?m)^{made[0]['id']}\s+lister@example\.org\s+l0\s+\S+Z"
                                     r"\s+never\s+-$")
        doc = self.ctl_json("token", "list", "Lister@example.org")
        self.assertNotIn("mst_", json.dumps(doc))
        got = [(t["id"], t["user"], t["label"], t["revoked"], t["state"]) for t in doc["tokens"]]
        self.assertEqual(got, [(m["id"], "lister@example.org", f"l{i}", None, "valid")
                               for i, m in enumerate(made)])
        for t in doc["tokens"]:
            self.assertEqual(set(t), {"id", "user", "label", "created", "expires", "revoked",
                                      "state"})
        res = self.ctl("token", "list", "nobody@example.org")
        self.assertIn("no API tokens for nobody@example.org", res.stdout)

    def test_revoke(self):
        kept = self.ctl_json("token", "create", "rev@example.org", "--label", "kept")
        gone = self.ctl_json("token", "create", "rev@example.org", "--label", "gone")
        res = self.ctl("token", "revoke", str(gone["id"]))
        self.assertIn(f"revoked API token {gone['id']} of rev@example.org", res.stdout)
        self.assertEqual(self.pg.scalar(
            f"SELECT revoked_at IS NOT NULL FROM api_tokens WHERE id = {gone['id']}"), "t")
        self.assertEqual(self.pg.scalar(
            f"SELECT revoked_at IS NULL FROM api_tokens WHERE id = {kept['id']}"), "t")
        # statusd: never seen before, so not cached: refused at once; the other one works
        self.assertEqual(self.api_code(gone["token"]), 401)
        self.assertEqual(self.api_code(kept["token"]), 200)
        # list shows when
        doc = self.ctl_json("token", "list", "rev@example.org")
        states = {t["label"]: (t["state"], t["revoked"] is not None) for t in doc["tokens"]}
        self.assertEqual(states, {"kept": ("valid", False), "gone": ("revoked", True)})
        # again: fine, says so
        res = self.ctl("token", "revoke", str(gone["id"]))
        self.assertIn("already revoked", res.stdout)
        doc = self.ctl_json("token", "revoke", str(gone["id"]))
        self.assertEqual((doc["revoked"], doc["already_revoked"]), (True, True))
        # no such token: exit 3
        res = self.ctl("token", "revoke", "987654321", want=3)
        self.assertIn("no API token with id 987654321", res.stderr)
        for bad in ("abc", "0", "12x", "1.5", "99999999999999999999", " 1", "+1"):
            self.usage_error("token", "revoke", bad, says="not a token id")
        self.usage_error("token", "revoke", "--", "-5", says="not a token id")
        self.usage_error("token", "revoke", "-5", says="unknown option -5")

    def test_expiry(self):
        doc = self.ctl_json("token", "create", "short@example.org", "--expires", "2s")
        self.assertIsNotNone(doc["expires"])
        self.assertEqual(self.api_code(doc["token"]), 200)
        time.sleep(2.5)
        doc2 = self.ctl_json("token", "list", "short@example.org")
        self.assertEqual(doc2["tokens"][0]["state"], "expired")
        # statusd cached it no longer than it was valid
        self.assertEqual(self.api_code(doc["token"]), 401)

    def test_unknown_and_malformed_api_tokens(self):
        self.assertEqual(self.api_code("mst_" + "a" * 32), 401)       # well-formed, unknown
        self.assertEqual(self.api_code("mst_" + "a" * 32), 401)       # (now cached as unknown)
        self.assertEqual(self.api_code("mst_" + "A" * 32), 401)       # malformed
        self.assertEqual(self.api_code("mst_short"), 401)

    def test_concurrent_first_use(self):
        """Many requests with a token statusd has not seen yet: one lookup, all answered."""
        from concurrent.futures import ThreadPoolExecutor
        tok = self.ctl_json("token", "create", "many@example.org")["token"]
        unknown = "mst_" + "b" * 32
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(self.api_code, [tok, unknown] * 16))
        self.assertEqual(codes, [200, 401] * 16)

    # --- signed tokens ---------------------------------------------------------------

    def verify_jwt(self, jwt):
        """Check a JWT with the shared secret independently of token.c; returns the claims."""
        head, payload, sig = jwt.split(".")
        want = hmac.new(self.secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
        self.assertTrue(hmac.compare_digest(b64decode(sig), want), "bad signature")
        self.assertEqual(json.loads(b64decode(head)), {"alg": "HS256", "typ": "JWT"})
        return json.loads(b64decode(payload))

    def test_sign(self):
        before = int(time.time())
        res = self.ctl("token", "sign", "Bob@Example.net", "--ttl", "10m")
        jwt = res.stdout.strip()
        self.assertEqual(res.stdout, jwt + "\n")
        claims = self.verify_jwt(jwt)
        self.assertEqual(claims["sub"], "bob@example.net")
        self.assertTrue(before <= claims["iat"] <= int(time.time()) + 1, claims)
        self.assertEqual(claims["exp"] - claims["iat"], 600)
        # statusd verifies it with token.c and the same secret
        self.assertEqual(self.api_code(jwt), 200)
        # tampered: refused
        self.assertEqual(self.api_code(jwt[:-2] + ("AA" if jwt[-2:] != "AA" else "BA")), 401)
        # default lifetime: an hour (within auth_token_max_lifetime's 1d)
        claims = self.verify_jwt(self.ctl("token", "sign", "bob@example.net").stdout.strip())
        self.assertEqual(claims["exp"] - claims["iat"], 3600)
        doc = self.ctl_json("token", "sign", "bob@example.net", "--ttl", "90m")
        self.assertEqual(self.verify_jwt(doc["token"])["exp"] -
                         self.verify_jwt(doc["token"])["iat"], 5400)
        self.assertEqual(doc["user"], "bob@example.net")
        self.assertRegex(doc["expires"], r"Z$")
        # no database needed to sign
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM users WHERE name = 'bob@example.net'"), "0")

    def test_sign_errors(self):
        self.usage_error("token", "sign", "bob@example.net", "--ttl", "40d",
                         says="auth_token_max_lifetime")
        self.usage_error("token", "sign", "bob@example.net", "--ttl", "soon", says="duration")
        self.usage_error("token", "sign", "bob@example.net", "--ttl", "0", says="duration")
        self.usage_error("token", "sign", says="missing")
        # no secret configured
        conf = self.sb.path("nosecret.conf")
        with open(conf, "w") as f:
            f.write(f"database = {self.pg.conninfo}\n")
        res = self.ctl("token", "sign", "bob@example.net", conf=conf, want=1)
        self.assertIn("auth_secret_file is not set", res.stderr)
        # a secret others can read, and a short one
        for name, content, mode, says in (("open.secret", "x" * 40, 0o644, "accessible to others"),
                                          ("short.secret", "x" * 31 + "\n", 0o600, "shorter than 32")):
            path = self.sb.path(name)
            with open(path, "w") as f:
                f.write(content)
            os.chmod(path, mode)
            conf = self.sb.path(name + ".conf")
            with open(conf, "w") as f:
                f.write(f"database = {self.pg.conninfo}\nauth_secret_file = {path}\n")
            res = self.ctl("token", "sign", "bob@example.net", conf=conf, want=1)
            self.assertIn(says, res.stderr)
            self.assertIn(path, res.stderr)

    def test_documented_python_example(self):
        """The Python example of docs/api.md mints a token statusd accepts."""
        with open(os.path.join(paths.source, "docs", "api.md")) as f:
            doc = f.read()
        section = doc[doc.index("## Signing tokens in a webmail backend"):]
        code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        self.assertIn("/etc/msgstatus/auth.secret", code)
        code = code.replace("/etc/msgstatus/auth.secret", self.sd.settings["auth_secret_file"])
        code = code.replace("alice@example.org", "Doc@Example.org")
        scope = {}
        exec(compile(code, "docs/api.md", "exec"), scope)  # noqa: S102 - our own docs
        self.assertEqual(scope["secret"], self.secret)
        code, doc = self.sd.api("/api/v1/preferences", scope["token"])
        self.assertEqual((code, doc["user"]), (200, "doc@example.org"))

    def test_statusd_refuses_a_bad_secret_file(self):
        statusd = paths.binary("statusd/statusd")
        cases = (("open.key", "k" * 40 + "\n", 0o604, "accessible to others"),
                 ("short.key", "k" * 31 + "\n", 0o600, "shorter than 32"),
                 ("missing.key", None, 0, "No such file"))
        for name, content, mode, says in cases:
            path = self.sb.path(name)
            if content is not None:
                with open(path, "w") as f:
                    f.write(content)
                os.chmod(path, mode)
            conf = self.sb.path(name + ".statusd.conf")
            with open(conf, "w") as f:
                f.write(f"auth_secret_file = {path}\ndatabase = {self.pg.conninfo}\n"
                        f"events_socket = {self.sb.path(name + '.sock')}\npickup_dir =\n"
                        f"http_listen = 127.0.0.1:1\n")
            res = subprocess.run([statusd, "-c", conf], capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(res.returncode, 1, f"{name}: {res.stderr}")
            self.assertIn("fatal", res.stderr)
            self.assertIn(f"auth_secret_file {path}", res.stderr)
            self.assertIn(says, res.stderr)
            for mark in SANITIZER_MARKS:
                self.assertNotIn(mark, res.stderr)

    # --- users and preferences -------------------------------------------------------

    def test_user_admin_and_show(self):
        res = self.ctl("user", "admin", "Carol@Example.org", "Example.ORG", "example.net",
                       "example.org")
        self.assertIn("carol@example.org administers {example.org,example.net}", res.stdout)
        self.assertEqual(self.pg.scalar(
            "SELECT domain_admin::text FROM users WHERE name = 'carol@example.org'"),
            "{example.org,example.net}")
        res = self.ctl("user", "show", "carol@example.org")
        self.assertRegex(res.stdout, r"(?m)^admin of\s+example\.org, example\.net$")
        self.assertRegex(res.stdout, r"(?m)^read receipts\s+yes$")
        self.assertRegex(res.stdout, r"(?m)^presence\s+no$")
        self.assertRegex(res.stdout, r"(?m)^api tokens\s+0 valid$")
        doc = self.ctl_json("user", "show", "carol@example.org")
        self.assertEqual(doc["domain_admin"], ["example.org", "example.net"])
        self.assertEqual((doc["user"], doc["read_receipts"], doc["presence"], doc["api_tokens"]),
                         ("carol@example.org", True, False, 0))
        # statusd: a signed-token admin sees the domain's mail, not others'
        self.sd.send_events([
            event("queued", tracking_id="adm1", sender="zed@example.org", sasl_user="zed@example.org",
                  recipient="x@example.com"),
            event("queued", tracking_id="adm2", sender="zed@example.com", sasl_user="zed@example.com",
                  recipient="x@example.com")])
        code, doc = self.sd.api("/api/v1/messages", self.sd.token("carol@example.org"))
        self.assertEqual(code, 200, doc)
        self.assertEqual([m["tracking_id"] for m in doc["messages"]], ["adm1"])
        # an API token of hers carries the same rights
        tok = self.ctl_json("token", "create", "carol@example.org")["token"]
        code, doc = self.sd.api("/api/v1/messages", tok)
        self.assertEqual([m["tracking_id"] for m in doc["messages"]], ["adm1"])
        self.assertRegex(self.ctl("user", "show", "carol@example.org").stdout,
                         r"(?m)^api tokens\s+1 valid$")
        # --clear
        res = self.ctl("user", "admin", "carol@example.org", "--clear")
        self.assertIn("administers no domains", res.stdout)
        self.assertEqual(self.ctl_json("user", "show", "carol@example.org")["domain_admin"], [])
        # errors
        res = self.ctl("user", "show", "nobody@example.org", want=3)
        self.assertIn("no user nobody@example.org", res.stderr)
        self.usage_error("user", "admin", "carol@example.org", says="domains")
        self.usage_error("user", "admin", "carol@example.org", "--clear", "example.org",
                         says="--clear")
        self.usage_error("user", "admin", "carol@example.org", "postmaster@example.org",
                         says="address")
        for bad in ("exa mple.org", ".example.org", "example..org", "ex;ample.org", ""):
            self.usage_error("user", "admin", "carol@example.org", bad, says="not a domain")
        self.usage_error("user", "show", says="missing")
        self.usage_error("user", "frobnicate", "x")

    def test_prefs(self):
        res = self.ctl("prefs", "Dave@example.org")
        self.assertRegex(res.stdout, r"(?m)^read receipts\s+yes$")
        self.assertRegex(res.stdout, r"(?m)^presence\s+no$")
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM users WHERE name = 'dave@example.org'"), "0")
        res = self.ctl("prefs", "dave@example.org", "--read-receipts", "no", "--presence", "yes")
        self.assertRegex(res.stdout, r"(?m)^read receipts\s+no$")
        self.assertRegex(res.stdout, r"(?m)^presence\s+yes$")
        self.assertEqual(self.pg.psql(
            "SELECT read_receipts, presence FROM users WHERE name = 'dave@example.org'"),
            [["f", "t"]])
        doc = self.ctl_json("prefs", "dave@example.org", "--presence", "off")
        self.assertEqual((doc["read_receipts"], doc["presence"]), (False, False))
        # what statusd's API shows is the same
        code, doc = self.sd.api("/api/v1/preferences", self.sd.token("dave@example.org"))
        self.assertEqual((code, doc["read_receipts"], doc["presence"]), (200, False, False))
        # the server-sent MDN preference (docs/mdn.md): unset is the userdb's default
        self.assertRegex(res.stdout, r"(?m)^mdn\s+default$")
        doc = self.ctl_json("prefs", "dave@example.org", "--mdn", "always")
        self.assertEqual(doc["mdn"], "always")
        self.assertEqual(self.sd.api("/api/v1/preferences",
                                     self.sd.token("dave@example.org"))[1]["mdn"], "always")
        self.assertIsNone(self.ctl_json("prefs", "dave@example.org", "--mdn", "default")["mdn"])
        self.usage_error("prefs", "dave@example.org", "--mdn", "sometimes", says="never, always")
        self.usage_error("prefs", "dave@example.org", "--presence", "maybe", says="yes or no")
        self.usage_error("prefs", "dave@example.org", "--colour", "blue", says="unknown option --colour")
        self.usage_error("prefs", says="missing")

    # --- bad usage -------------------------------------------------------------------

    def test_bad_arguments(self):
        for args in (["token"], ["token", "frobnicate"], ["user"], ["frobnicate"]):
            res = self.ctl(*args, want=2)
            self.assertIn("usage:", res.stderr)
            self.assertIn("token create USER", res.stderr)  # the full list of commands
        cases = [  # (arguments, a part of the message)
            (["token", "create"], "missing argument"),
            (["token", "create", "a@example.org", "b@example.org"], "too many arguments"),
            (["token", "create", ""], "the user is empty"),
            (["token", "create", "a\x01b@example.org"], "control character"),
            (["token", "create", "a" * 321], "longer than 320"),
            (["token", "create", "a@example.org", "--expires", "0"], "duration"),
            (["token", "create", "a@example.org", "--expires", "tomorrow"], "duration"),
            (["token", "create", "a@example.org", "--expires", "-5d"], "duration"),
            (["token", "create", "a@example.org", "--label", "a\nb"], "control character"),
            (["token", "create", "a@example.org", "--label", "x" * 201], "longer than 200"),
            (["token", "create", "a@example.org", "--label"], "option --label needs a value"),
            (["token", "create", "a@example.org", "--bogus"], "unknown option --bogus"),
            (["token", "create", "a@example.org", "-x"], "unknown option -x"),
            (["token", "list", "a@example.org", "b@example.org"], "too many arguments"),
            (["token", "revoke"], "missing argument"),
            (["status"], "missing argument"),
        ]
        for args, says in cases:
            self.usage_error(*args, says=says)
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM users WHERE name IN ('a@example.org', 'b@example.org')"), "0")

    def test_unmigrated_database(self):
        self.pg.psql("CREATE DATABASE bare", db="postgres")
        conf = self.sb.path("bare.conf")
        with open(conf, "w") as f:
            f.write(f"database = {self.pg.conninfo.replace('dbname=msgstatus', 'dbname=bare')}\n")
        for args in (["token", "create", "a@example.org"], ["token", "list"],
                     ["user", "show", "a@example.org"]):
            res = self.ctl(*args, conf=conf, want=1)
            self.assertIn("statusctl migrate", res.stderr, args)

    def test_tail_and_status_show_the_reply(self):
        """The SMTP reply (RFC 8621's form) where there is one, else what Postfix logged."""
        tid = f"reply{os.getpid()}"
        refused = "connect to mx.r.example[192.0.2.1]:25: Connection refused"
        evs = [event("queued", tracking_id=tid, recipient=r, sender="replier@reply.example")
               for r in ("g@r.example", "c@r.example")]
        evs += [event("deferred", tracking_id=tid, recipient="g@r.example", offset_ms=1,
                      details={"smtp_reply": "450 4.7.1 Greylisted",
                               "postfix_reply": "host mx said: 450 4.7.1 Greylisted (in "
                                                "reply to RCPT TO command)"}),
                event("deferred", tracking_id=tid, recipient="c@r.example", offset_ms=2,
                      details={"postfix_reply": refused})]
        self.assertTrue(all("ack" in r for r in self.sd.send_events(evs)))
        tail = self.ctl("tail", "-n", "2").stdout.splitlines()
        self.assertTrue(tail[0].endswith("  450 4.7.1 Greylisted"), tail)
        self.assertTrue(tail[1].endswith("  " + refused), tail)
        status = self.ctl("status", tid).stdout
        self.assertRegex(status, r"g@r\.example +deferred .*  450 4\.7\.1 Greylisted\n")
        self.assertRegex(status, r"c@r\.example +deferred .*  connect to .*Connection refused\n")

    def test_tail_and_follow(self):
        tid = f"tail{os.getpid()}"
        first = [event("queued", tracking_id=tid, recipient=f"t{i}@example.net",
                       sender="tailer@tail.example") for i in range(3)]
        self.assertTrue(all("ack" in r for r in self.sd.send_events(first)))
        out = self.ctl("--json", "tail", "-n", "3").stdout
        got = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([d["event_id"] for d in got], [e["id"] for e in first])
        self.assertEqual([d["offset"] for d in got], sorted(d["offset"] for d in got))
        human = self.ctl("tail", "-n", "1").stdout
        self.assertIn("t2@example.net", human)
        self.assertIn("queued", human)
        # --from OFFSET: what came after an offset a reader saw last; -f then follows
        start = got[0]["offset"]
        proc = subprocess.Popen([STATUSCTL, "-c", self.conf, "tail", "--json", "-f", "--from",
                                 str(start)], stdout=subprocess.PIPE, text=True)
        try:
            lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
            self.assertEqual([d["event_id"] for d in lines], [e["id"] for e in first[1:]])
            later = event("relayed", tracking_id=tid, recipient="t0@example.net")
            t0 = time.monotonic()
            self.sd.send_events([later])
            live = json.loads(proc.stdout.readline())
            self.assertEqual(live["event_id"], later["id"])
            self.assertEqual(live["status"], "relayed")
            self.assertLess(time.monotonic() - t0, 3, "followed through LISTEN, not polling")
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()
        self.usage_error("tail", "--from", "-3", says="--from wants an offset")
        self.usage_error("tail", "-n", "many", says="-n wants a number")

    def test_replay(self):
        tid = f"replay{os.getpid()}"
        good = [event("queued", tracking_id=tid, recipient=f"p{i}@example.net",
                      sender="replayer@replay.example") for i in range(3)]
        path = self.sb.path("replay.events")
        with open(path, "w") as f:
            f.write(json.dumps(good[0]) + "\n\n")
            f.write('{"v":1,"type":"queued", broken\n')
            f.write(json.dumps(good[1]) + "\n" + json.dumps(good[0]) + "\n")
            f.write(json.dumps(good[2]))  # the last record without its newline
        res = self.ctl("replay", path, want=1)
        self.assertIn(f"{path}: 4 stored, 1 rejected", res.stdout)
        self.assertRegex(res.stderr, rf"{path}:3: rejected: .+")
        count = self.pg.scalar(f"SELECT count(*) FROM events WHERE tracking_id = '{tid}'")
        self.assertEqual(count, "3", "the repeated record is stored once")
        again = self.ctl_json("replay", path, want=1)
        self.assertEqual(again, {"stored": 4, "rejected": 1})
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM events "
                                        f"WHERE tracking_id = '{tid}'"), "3")
        missing = self.ctl("replay", self.sb.path("no-such.events"), want=1)
        self.assertIn("no-such.events", missing.stderr)

    def test_manual_page_documents_every_command(self):
        with open(os.path.join(paths.source, "man", "statusctl.8")) as f:
            man = f.read()
        for words in ("token create", "token list", "token revoke", "token sign", "user show",
                      "user admin", "prefs", "tail", "replay", "\\-\\-from", "\\-\\-label", "\\-\\-expires", "\\-\\-ttl",
                      "\\-\\-clear", "\\-\\-read\\-receipts", "\\-\\-presence"):
            self.assertIn(words, man)


if __name__ == "__main__":
    main()
