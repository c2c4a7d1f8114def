"""Mail through the packaged site (tests/packaging/run, inside the Debian root): alice submits
on 587 with STARTTLS and SASL to bob (local, LMTP into Dovecot) and carol (remote: the
relayhost, an smtp-sink); bob reads the message over IMAP; the status API, with alice's
token, must then show bob delivered and read and carol relayed.
usage: site.py TOKEN"""
import email.utils
import imaplib
import json
import smtplib
import ssl
import sys
import time
import urllib.parse
import urllib.request

token = sys.argv[1]
msgid = email.utils.make_msgid(domain="example.org")
msg = ("From: alice@example.org\r\nTo: bob@example.org, carol@remote.example\r\n"
       "Subject: packaged\r\nMessage-ID: %s\r\nDate: %s\r\n\r\nhello from the packages\r\n"
       % (msgid, email.utils.formatdate()))

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # Debian's snakeoil certificate
with smtplib.SMTP("127.0.0.1", 587, timeout=30) as s:
    s.starttls(context=ctx)
    s.login("alice@example.org", "alice-secret")
    s.sendmail("alice@example.org", ["bob@example.org", "carol@remote.example"], msg)
print("site: sent", msgid)


def status():
    url = "http://127.0.0.1:8025/api/v1/messages/%s/status" % urllib.parse.quote(msgid, safe="")
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return {x["recipient"]: x["status"] for x in json.load(r)["recipients"]}
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {}
        raise


def wait(want, what):
    got = {}
    for _ in range(150):
        got = status()
        if all(got.get(k) == v for k, v in want.items()):
            print("site: %s: %s" % (what, got))
            return
        time.sleep(0.2)
    sys.exit("site: %s: got %s, want %s" % (what, got, want))


wait({"bob@example.org": "delivered", "carol@remote.example": "relayed"}, "delivered and relayed")

imap = imaplib.IMAP4("127.0.0.1", 143)
imap.login("bob@example.org", "bob-secret")
imap.select("INBOX")
typ, data = imap.search(None, "HEADER", "Message-ID", msgid)
nums = data[0].split()
if len(nums) != 1:
    sys.exit("site: bob's INBOX has %d copies of %s" % (len(nums), msgid))
typ, data = imap.fetch(nums[0], "(BODY[])")
body = data[0][1].decode()
if "Msgstatus-Id:" not in body or "hello from the packages" not in body:
    sys.exit("site: bob's copy lacks the tracking header or the text:\n" + body)
imap.logout()
print("site: bob read it over IMAP")

wait({"bob@example.org": "read", "carol@remote.example": "relayed"}, "read")
