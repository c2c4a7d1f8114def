"""statusd in the sandbox, with helpers to feed events and query HTTP."""
import base64
import hashlib
import hmac
import json
import grp
import os
import pwd
import socket
import time
import urllib.error
import urllib.request

from .core import free_port, paths, wait_for


def now_rfc3339(offset_ms=0):
    t = time.time() + offset_ms / 1000.0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


class EventClient:
    """A connection to statusd's event socket speaking docs/protocol.md."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.rfile = self.sock.makefile("rb")

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, events):
        self.send_raw(b"".join(json.dumps(e).encode() + b"\n" for e in events))

    def replies(self, n):
        """Read n reply lines (dicts)."""
        out = []
        for _ in range(n):
            line = self.rfile.readline()
            if not line:
                raise ConnectionError(f"statusd closed the connection after {len(out)} replies")
            out.append(json.loads(line))
        return out

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


class Statusd:
    """statusd with its config, secret, socket folder and pickup folder in <sandbox>/<name>.

    With tls (a msgsandbox.tls.ServerCert): statusd serves HTTPS only (http_tls_cert,
    http_tls_key), url is https://127.0.0.1:PORT and http() trusts the sandbox's CA.

    As root by default. With user (root only), as docs/deployment.md runs it: statusd runs
    as that system user, with the mail user's group ("mail", the Dovecot plugin's) as a
    supplementary group; the socket folder is user:mail 0750, the pickup folder
    user:mail 2770 (set by dovecot_plugin_settings), the secret user's own 0600.
    """

    def __init__(self, sb, pg, settings=None, start=True, name="statusd", http_port=None,
                 user=None, tls=None):
        self.sb = sb
        self.pg = pg
        self.name = name
        self.user = user
        self.tls = tls
        self.dir = sb.mkdir(name)
        self.run_dir = sb.mkdir(name, "run", owner=user, group="mail", mode=0o750) if user \
            else sb.mkdir(name, "run")
        self.http_port = http_port or free_port()
        self.settings = {
            "events_socket": os.path.join(self.run_dir, "events.sock"),
            "database": pg.conninfo,
            "sql_dir": os.path.join(paths.source, "sql"),
            "database_retry_max": "500ms",
            "pickup_dir": sb.mkdir(name, "pickup"),
            "pickup_interval": "1s",
            # the Dovecot plugin runs as the mail user (see dovecot_plugin_settings)
            "events_socket_group": "mail",
        }
        self.secret = base64.b64encode(os.urandom(36)).decode()
        secret_file = os.path.join(self.dir, "auth.secret")
        with open(secret_file, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(secret_file, 0o600)
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(secret_file, pw.pw_uid, pw.pw_gid)
        self.settings["auth_secret_file"] = secret_file
        if tls is not None:
            self.settings["http_tls_cert"] = tls.cert
            self.settings["http_tls_key"] = tls.key
        self.settings.update(settings or {})
        self.config = os.path.join(self.dir, "statusd.conf")
        self.child = None
        if start:
            self.start()

    @property
    def pickup_dir(self):
        return self.settings["pickup_dir"]

    def drop(self, events, raw=None):
        """Leave events in the pickup directory the way the Dovecot plugin does (tmp + rename)."""
        data = raw if raw is not None else b"".join(json.dumps(e).encode() + b"\n"
                                                      for e in events)
        name = "%d-%d-%s.events" % (time.time() * 1000, os.getpid(), os.urandom(4).hex())
        tmp = os.path.join(self.pickup_dir, ".tmp-" + name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.pickup_dir, name))
        return os.path.join(self.pickup_dir, name)

    def dovecot_plugin_settings(self):
        """The plugin {} settings of a Dovecot whose mail user hands events to this statusd:
        its socket (the socket's group is mail) and its pickup directory, made writable."""
        if self.user is None:
            os.chown(self.pickup_dir, pwd.getpwnam("mail").pw_uid, grp.getgrnam("mail").gr_gid)
        else:  # statusd's, writable by the mail group; the files keep the group (setgid)
            os.chown(self.pickup_dir, pwd.getpwnam(self.user).pw_uid,
                     grp.getgrnam("mail").gr_gid)
            os.chmod(self.pickup_dir, 0o2770)
        return {"msgstatus_socket": self.socket_path, "msgstatus_pickup_dir": self.pickup_dir}

    @property
    def socket_path(self):
        return self.settings["events_socket"]

    @property
    def url(self):
        """The base URL on 127.0.0.1: https:// with tls (its certificate names 127.0.0.1)."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def ssl_context(self):
        """With tls: a client context that trusts the sandbox's CA; else None."""
        return self.tls.ca.context() if self.tls is not None else None

    def write_config(self):
        self.settings["http_listen"] = f"127.0.0.1:{self.http_port}"
        with open(self.config, "w") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")

    def start(self, wait_db=True):
        self.write_config()
        self.child = self.sb.spawn(self.name, [paths.binary("statusd/statusd"), "-c", self.config],
                                   user=self.user, groups=("mail",) if self.user else ())
        wait_for(f"{self.name} to listen", lambda: os.path.exists(self.socket_path)
                 and self.http_status("/healthz")[0] in (200, 503), proc=self.child.popen)
        if wait_db:
            wait_for(f"{self.name} to reach the database",
                     lambda: self.http_status("/healthz")[0] == 200, proc=self.child.popen)

    def stop(self, timeout=15.0):
        """SIGTERM and wait; a clean stop exits 0 (sanitizer leak reports make it non-zero)."""
        if self.child is None or not self.child.alive():
            return None
        rc = self.child.stop(timeout=timeout)
        self.sb.expect_exit(self.child, rc, 0)
        return rc

    def kill(self):
        import signal
        return self.child.stop(signal.SIGKILL) if self.child else None

    def close(self):
        self.stop()

    def client(self):
        return EventClient(self.socket_path)

    def send_events(self, events):
        """Send events on a fresh connection and return the replies."""
        c = self.client()
        try:
            c.send(events)
            return c.replies(len(events))
        finally:
            c.close()

    def http(self, path, method="GET", body=None, headers=None):
        """(status, parsed JSON or text) for a request to statusd."""
        req = urllib.request.Request(self.url + path, method=method, data=body,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context) as r:
                data = r.read()
                status = r.status
                ctype = r.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            data = e.read()
            status = e.code
            ctype = e.headers.get("content-type", "")
        if "json" in ctype:
            return status, json.loads(data)
        return status, data.decode(errors="replace")

    def stream(self, token, query=""):
        """A WebSocket to the live feed (/api/v1/messages/stream) as the token's user: ws://,
        or wss:// trusting the sandbox's CA with tls (python3-websocket's connection)."""
        import ssl
        from urllib.parse import quote

        import websocket
        url = self.url.replace("http", "ws", 1) + "/api/v1/messages/stream"
        query += ("&" if query else "?") + "access_token=" + quote(token)
        sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": self.tls.ca.cert} \
            if self.tls is not None else None
        return websocket.create_connection(url + query, timeout=10, sslopt=sslopt)

    def http_status(self, path):
        try:
            return self.http(path)
        except (urllib.error.URLError, ConnectionError, OSError):
            return (0, None)

    def token(self, user, ttl=3600, now=None, **claims):
        """A signed (HS256 JWT) token for user, as a webmail backend would mint it."""
        def b64(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        now = int(time.time()) if now is None else now
        body = {"sub": user, "iat": now, "exp": now + ttl}
        body.update(claims)
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps(body).encode())
        sig = hmac.new(self.secret.encode(), f"{head}.{payload}".encode(),
                       hashlib.sha256).digest()
        return f"{head}.{payload}.{b64(sig)}"

    def api(self, path, token=None, method="GET", body=None, headers=None):
        """A request with a bearer token; body may be a dict (sent as JSON) or bytes."""
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        return self.http(path, method=method, body=body, headers=h)

    def status(self, msg_id, user="alice@example.org"):
        """GET a message's status as user (by default the sender the tests use)."""
        from urllib.parse import quote
        return self.api(f"/api/v1/messages/{quote(msg_id, safe='')}/status", self.token(user))
