"""Whole mail sites: MailSite, a plain one, and MsgstatusSite, one that runs msgstatus.

MailSite is a second, plain mail site: a private Postfix that delivers its domain by LMTP to a
private Dovecot (IMAP to read the mail), with no msgstatus at all. It is the far side of
tests where mail leaves a msgstatus site and reports come back, as from any other site:

    b = sb.mail_site("example.net", users={"bob@example.net": "bob-secret"})
    a = sb.postfix(domains=["example.org"], ..., transports={"example.net": b.postfix})
    b.route("example.org", a)        # B's bounces and DSNs go back to A's smtpd
    b.dovecot.messages("bob@example.net")

The site is made of the sandbox's own Postfix and Dovecot classes, with their defaults
except for:

- names: <name>-postfix and <name>-dovecot (config, queue, mail and logs in the sandbox
  folders of those names); own ports on 127.0.0.1 (smtpd, IMAP), own LMTP socket;
- myhostname mx.<domain>: Postfix's smtp client refuses a server that greets it with its
  own name, and the other site's Postfix is mx.sandbox.test;
- no milter, no SASL, no msgstatus plugin: a site that knows nothing of msgstatus.

Its Postfix speaks DSN as an unconfigured Postfix does: smtpd announces DSN and keeps
NOTIFY, ORCPT, ENVID and RET; after delivery it sends real RFC 3464 reports to the
envelope sender: a success notice ("delivered", bounce(8) as trace) for NOTIFY=SUCCESS, a
delay notice when a test sets delay_warning_time, a bounce for a recipient that fails.
Every address in the domain is accepted at RCPT TO (an empty virtual_mailbox_maps) and
Dovecot's LMTP says who exists: mail to an unknown address is accepted, then bounced by
the site, as a late bounce from a real remote site. mailboxes= makes smtpd refuse the
others at RCPT TO instead.
"""
import re
import signal

from .core import free_port, paths, wait_for
from .dovecot import Dovecot
from .logd import Logd
from .milter import Milter
from .opendkim import OpenDkim
from .postfix import Postfix
from .statusd import Statusd


class MailSite:
    """Postfix (.postfix) and Dovecot (.dovecot) for one domain.

    Parameters:
      domain      the site's mail domain, e.g. "example.net".
      users       {address: password} in Dovecot: the mailboxes that exist.
      routes      {domain: next hop, SmtpSink or Postfix}: where the site sends other
                  domains' mail (the rest fails at once: no DNS, no Internet).
      name        prefix of the two services' names, default "site-<domain>".
      postfix     more keyword arguments for Postfix (settings=, mailboxes=, retry=...).
      dovecot     more keyword arguments for Dovecot.
    """

    def __init__(self, sb, domain, users, routes=None, name=None, postfix=None, dovecot=None):
        self.domain = domain
        self.name = name or "site-" + domain
        self.dovecot = sb.add_service(Dovecot(sb, users=users, name=self.name + "-dovecot",
                                              **(dovecot or {})))
        kw = {"myhostname": "mx." + domain}
        kw.update(postfix or {})
        self.postfix = sb.add_service(Postfix(sb, domains=[domain], lmtp=self.dovecot,
                                              transports=routes, name=self.name + "-postfix",
                                              **kw))

    @property
    def nexthop(self):
        """What another Postfix's transport map points at to send mail here."""
        return self.postfix.nexthop

    def route(self, domain, target, reload=True):
        """Send domain's mail to target (a next hop, an SmtpSink, a Postfix or another
        site): reload."""
        self.postfix.set_transport(domain, target, reload=reload)

    def messages(self, user, mailbox="INBOX"):
        """The raw messages in a user's mailbox at this site, over IMAP."""
        return self.dovecot.messages(user, mailbox)


class MsgstatusSite(MailSite):
    """A complete msgstatus site for one domain, as docs/federation.md's sites A and B:

        a = sb.msgstatus_site("example.org", {"alice@example.org": "alice-secret"})
        b = sb.msgstatus_site("example.net", {"bob@example.net": "bob-secret"},
                              routes={"example.org": a})
        a.route("example.net", b)        # they send each other mail over loopback
        a.send("alice@example.org", ["bob@example.net"], subject="hi")

    What it is made of, each a sandbox service named <name>-<part> (name: the domain by
    default), in the order they start:

    - .pg: its own database, msgstatus_<domain>, on one PostgreSQL server that all the
      sandbox's sites share (statusd takes any database in its conninfo);
    - .statusd: statusd serving HTTPS only (http_tls_cert/http_tls_key) with a certificate
      from the sandbox's private CA (sb.ca()) for the names endpoint_host and 127.0.0.1;
      its federation_endpoint is .endpoint, its DNS lookups (dns_server) go to the shared
      Knot; its federation key (selector key_selector) is made by `statusctl key make` in
      <sandbox>/<name>-statusd/federation-keys before it starts;
    - .dkim: OpenDKIM signing mail from the domain (msgsandbox.opendkim; dkim_signers);
    - .milter: msgstatus-milter (msgstatus_domains = the domain, dns_server = Knot), then
      OpenDKIM, in Postfix's milter list: the tracking id is added, then signed;
    - .dovecot: IMAP, LMTP and SASL, with the msgstatus plugin;
    - .postfix: myhostname mx.<domain>, the domain delivered to Dovecot, SMTP AUTH, routes
      to other sites (routes=, route());
    - .logd: msgstatus-logd following that Postfix (relayed, deferred, bounced).

    DNS: the site publishes the zone <domain> in the shared Knot (.dns): its DKIM key
    records, and the records `statusctl key records` prints (_msgstatus MSR1 with the
    endpoint, <selector>._msgstatus-key MSK1). publish() writes them again, with
    .extra_records, after a test changed .dkim.records or the keys.

    Other parameters: pg, dns (the shared server and Knot: given by sb.msgstatus_site());
    routes (Postfix transports: {domain: site or next hop}); name; key_selector (default
    k1); statusd, dovecot, postfix (more settings or keyword arguments for each); user (the
    system user statusd, the milter, logd and statusctl run as, as docs/deployment.md runs
    them; root only); http_port (statusd's, default a free one); record_ttl (of the
    _msgstatus and MSK1 records, default 5m: resolvers cache them that long).

    How another site reaches the endpoint by name: endpoint_host is by default
    status.<domain>.localhost. libcurl (7.85 and later; Debian 12 has 7.88) resolves every
    name under .localhost to the loopback address itself, without asking the system's
    resolver (RFC 6761, section 6.3), so a report sender built on libcurl reaches this
    statusd by the very URL of the MSR1 record, with no resolver override and nothing
    changed on the machine. Python's urllib (glibc's resolver) does not: clients in the
    tests use .statusd.url, https://127.0.0.1:PORT, which the certificate names too, and
    .statusd.stream() for the live feed over wss://. A report sender must trust the
    sandbox's CA: .ca_file, the same file for every site of a sandbox (sb.ca().cert), so
    a site can be given it before it starts, in statusd= under the sender's setting.
    """

    def __init__(self, sb, domain, users, dns, pg, routes=None, name=None,
                 endpoint_host=None, key_selector="k1", dkim_signers=None, statusd=None,
                 dovecot=None, postfix=None, user=None, http_port=None, record_ttl="5m"):
        self.sb = sb
        self.domain = domain
        self.name = name or domain
        self.dns = dns
        self.user = user
        self.extra_records = []
        self.record_ttl = record_ttl
        self.pg = pg.database("msgstatus_" + re.sub(r"[^a-z0-9]", "_", domain.lower()))
        self.endpoint_host = endpoint_host or f"status.{domain}.localhost"
        cert = sb.ca().issue(self.name + "-statusd", [self.endpoint_host, "127.0.0.1"],
                             owner=user)
        self.ca_file = cert.ca.cert
        port = http_port or free_port()
        self.endpoint = f"https://{self.endpoint_host}:{port}/api/v1/federation/reports"
        settings = {"dns_server": dns.server, "federation_endpoint": self.endpoint,
                    "federation_key_dir": sb.mkdir(self.name + "-statusd", "federation-keys",
                                                   owner=user, mode=0o700)}
        settings.update(statusd or {})
        self.statusctl_path = paths.binary("statusd/statusctl")
        self.statusd = sb.add_service(Statusd(sb, self.pg, settings=settings, start=False,
                                              name=self.name + "-statusd", http_port=port,
                                              user=user, tls=cert))
        self.statusd.write_config()
        self.statusctl("key", "make", domain, key_selector)
        self.dkim = sb.add_service(OpenDkim(sb, domain, signers=dkim_signers,
                                            name=self.name + "-opendkim"))
        self.publish()
        self.statusd.start()
        self.milter = sb.add_service(Milter(sb, self.statusd, name=self.name + "-milter",
                                            settings={"dns_server": dns.server}, user=user))
        dc = {"mail_plugins": ["notify", "msgstatus"],
              "plugin_paths": [paths.binary("dovecot-plugin/lib90_msgstatus_plugin.so")],
              "plugin": self.statusd.dovecot_plugin_settings()}
        dc.update(dovecot or {})
        self.dovecot = sb.add_service(Dovecot(sb, users=users, name=self.name + "-dovecot",
                                              **dc))
        pf = {"myhostname": "mx." + domain,
              "milter_macro_defaults": {"msgstatus_domains": domain}}
        pf.update(postfix or {})
        self.postfix = sb.add_service(Postfix(sb, domains=[domain], lmtp=self.dovecot,
                                              sasl=self.dovecot,
                                              milter=[self.milter, self.dkim],
                                              transports=routes, name=self.name + "-postfix",
                                              **pf))
        self.logd = sb.add_service(Logd(sb, self.statusd, postfix=self.postfix,
                                        name=self.name + "-logd", user=user))
        sb.add_service(self)  # closed first: see begin_close()

    def begin_close(self):
        """At the start of the sandbox's close: no more mail (Postfix stops), and the
        milter and Dovecot are told to stop at once (SIGTERM). libmilter takes up to 5 s to
        notice a SIGTERM, Dovecot a second: with this, all sites wait their time together
        rather than one after the other. The services then close as usual, in reverse
        order, each waiting for its own process."""
        self.postfix.stop()
        for part in (self.milter, self.dovecot):
            if part.child is not None:
                part.child.send_signal(signal.SIGTERM)

    def close(self):
        pass

    def statusctl(self, *args, check=True):
        """Run statusctl with this site's statusd.conf (as statusd's user)."""
        return self.sb.run([self.statusctl_path, "-c", self.statusd.config, *args],
                           user=self.user, check=check)

    def records(self):
        """The records of the site's zone: DKIM keys, then `statusctl key records`."""
        out = [rec for _, rec in sorted(self.dkim.records.items())]
        out += self.statusctl("key", "records", self.domain, "--ttl",
                              self.record_ttl).stdout.splitlines()
        return out + list(self.extra_records)

    def publish(self):
        """(Re)write the site's zone in the shared DNS server."""
        self.dns.set_zone(self.domain, self.records())

    def send(self, sender, recipients, password=None, **kw):
        """Submit a message as sender with SMTP AUTH (the password from the site's users);
        returns (queue id, tracking id) once the milter recorded it."""
        qid = self.postfix.send(sender, recipients,
                                auth=(sender, password or self.dovecot.password(sender)),
                                **kw)
        tid = wait_for(f"{self.name}'s record of {qid}",
                       lambda: self.pg.scalar("SELECT tracking_id FROM messages "
                                              f"WHERE queue_id = '{qid}'"), timeout=30)
        return qid, tid
