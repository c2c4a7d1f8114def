"""A private certificate authority for the sandbox: server certificates for statusd's own TLS
(http_tls_cert, http_tls_key), trusted by nothing outside the sandbox.

    ca = sb.ca()                                   # made once per sandbox, in <sandbox>/ca
    cert = ca.issue("statusd-example.org", ["status.example.org.localhost", "127.0.0.1"])
    cert.cert, cert.key                            # PEM files for statusd.conf
    ca.cert                                        # the CA certificate: what clients trust
    ca.context()                                   # an ssl.SSLContext that trusts it

Keys are ECDSA P-256 (fast to make; libwebsockets and libcurl take them with OpenSSL).
Each certificate is valid for its names (subjectAltName: DNS names, IP addresses) for a
week, so a kept sandbox or a long demo keeps working. The key files are readable by their
owner only (owner= makes them another user's, e.g. the demo's statusd user).
"""
import ipaddress
import os
import pwd
import ssl

OPENSSL = "openssl"


class ServerCert:
    """A certificate (.cert, chain PEM: the leaf) and its key (.key) issued by ca (.ca)."""

    def __init__(self, ca, cert, key, names):
        self.ca = ca
        self.cert = cert
        self.key = key
        self.names = list(names)


class PrivateCA:
    def __init__(self, sb, name="ca", days=7):
        self.sb = sb
        self.days = days
        self.dir = sb.mkdir(name)
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca.key")
        sb.run([OPENSSL, "req", "-x509", "-new", "-nodes", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", self.key, "-out", self.cert,
                "-days", str(days), "-subj", "/CN=msgsandbox private CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        os.chmod(self.cert, 0o644)
        self._context = None

    def issue(self, name, names, owner=None):
        """A server certificate for names (host names and IP addresses), signed by the CA."""
        alt = []
        for n in names:
            try:
                ipaddress.ip_address(n)
                alt.append("IP:" + n)
            except ValueError:
                alt.append("DNS:" + n)
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName = {', '.join(alt)}\n"
                    "basicConstraints = critical, CA:FALSE\n"
                    "keyUsage = critical, digitalSignature\n"
                    "extendedKeyUsage = serverAuth\n")
        self.sb.run([OPENSSL, "req", "-new", "-nodes", "-newkey", "ec",
                     "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key, "-out", csr,
                     "-subj", "/CN=" + names[0]])
        self.sb.run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                     "-CAcreateserial", "-out", cert, "-days", str(self.days), "-sha256",
                     "-extfile", ext])
        os.chmod(key, 0o600)
        os.chmod(cert, 0o644)
        if owner is not None:
            pw = pwd.getpwnam(owner)
            os.chown(key, pw.pw_uid, pw.pw_gid)
        return ServerCert(self, cert, key, names)

    def context(self):
        """A client ssl.SSLContext that trusts this CA only (and checks host names)."""
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.cert)
        return self._context

    def close(self):
        pass
