"""A second, plain mail site: a private Postfix that delivers its domain by LMTP to a
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
from .dovecot import Dovecot
from .postfix import Postfix


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

    def route(self, domain, target):
        """Send domain's mail to target (a next hop, an SmtpSink or a Postfix): reload."""
        self.postfix.set_transport(domain, target)

    def messages(self, user, mailbox="INBOX"):
        """The raw messages in a user's mailbox at this site, over IMAP."""
        return self.dovecot.messages(user, mailbox)
