"""A real SMTP server for the email notifier's tests (Debian's python3-aiosmtpd).

Listens on 127.0.0.1:PORT with STARTTLS required (--mode starttls) or implicit
TLS (--mode tls), requires AUTH with --user/--password (mechanisms less the
--exclude ones), and writes each message it accepts to OUT/N.eml with OUT/N.json
beside it: envelope sender, recipients, whether the session was encrypted and
the AUTH mechanism used. Prints READY once it listens; runs until killed.
"""
import argparse
import json
import logging
import os
import ssl
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
p.add_argument("--mode", choices=["starttls", "tls"], default="starttls")
p.add_argument("--user", required=True)
p.add_argument("--password", required=True)
p.add_argument("--exclude", action="append", default=[])
p.add_argument("--out", required=True)
a = p.parse_args()
warnings.simplefilter("ignore")  # aiosmtpd's deprecation and no-TLS-AUTH warnings
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(a.cert, a.key)
lock = threading.Lock()
count = [0]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == a.user and auth_data.password.decode() == a.password
    if ok:
        session.ferry_mechanism = mechanism
    return AuthResult(success=ok, handled=False)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            count[0] += 1
            n = count[0]
        base = os.path.join(a.out, str(n))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth": getattr(session, "ferry_mechanism", None),
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery as %d" % n


kw = dict(hostname="127.0.0.1", port=a.port, authenticator=authenticator,
          auth_required=True, auth_exclude_mechanism=a.exclude)
if a.mode == "starttls":
    c = Controller(Handler(), tls_context=ctx, require_starttls=True, **kw)
else:
    # Implicit TLS: the whole session is encrypted, there is no STARTTLS
    # for aiosmtpd to see, so its STARTTLS-only AUTH guard is off.
    c = Controller(Handler(), ssl_context=ctx, auth_require_tls=False, **kw)
c.start()
print("READY", flush=True)
threading.Event().wait()
