"""A real SMTP server (aiosmtpd) for the alerting tests.

Usage: smtp_sink.py CERT_PEM KEY_PEM USER PASSWORD

Starts two servers on loopback: one that accepts mail in the clear, and one
that requires STARTTLS (with CERT_PEM/KEY_PEM) and then AUTH as USER with
PASSWORD. Prints `READY <plain port> <starttls port>`, then one JSON line
per accepted message: the port, whether the session was under TLS, the
authenticated login, the envelope and the message text. Runs until stdin
closes.
"""

import json
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self, port):
        self.port = port

    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "port": self.port,
                    "tls": session.ssl is not None,
                    "login": session.auth_data.login.decode()
                    if isinstance(session.auth_data, LoginPassword)
                    else None,
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf8", errors="replace"),
                }
            ),
            flush=True,
        )
        return "250 Message accepted for delivery"


def main():
    cert, key, user, password = sys.argv[1:5]

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd answers 535 itself on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    plain_port, tls_port = free_port(), free_port()
    plain = Controller(Sink(plain_port), hostname="127.0.0.1", port=plain_port)
    secure = Controller(
        Sink(tls_port),
        hostname="127.0.0.1",
        port=tls_port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    plain.start()
    secure.start()
    print(f"READY {plain_port} {tls_port}", flush=True)
    sys.stdin.read()
    plain.stop()
    secure.stop()


if __name__ == "__main__":
    main()
