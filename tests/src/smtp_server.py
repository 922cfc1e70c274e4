"""A real SMTP server on loopback for Stepwise's delivery tests (aiosmtpd).

Usage: python3 smtp_server.py DIRECTORY [--login USERNAME PASSWORD]
                              [--starttls CERT KEY | --tls CERT KEY]

Binds 127.0.0.1 on a free port and prints the port on the first line of
stdout. Every message accepted is written to DIRECTORY/NNNNNN.json (atomically,
before the 250 reply): the envelope, the login that sent it, the TLS version
it came over (null for plain text), the client's port, how many connections
were open then, the headers as received and decoded, the text and HTML parts,
and the raw message.

Recipients steer the server:
  bounce*@...  550 to RCPT TO: a hard bounce
  busy*@...    451 to the first RCPT TO of that address, 250 afterwards
  slow*@...    the message is written, then the 250 reply to the content
               waits 120 s (a server that takes it and then goes silent)

With USERNAME and PASSWORD, AUTH (PLAIN, LOGIN) is required: offered over
plain text, or only after STARTTLS with --starttls.
With --starttls, CERT (a PEM chain) and KEY (its PEM key) are offered through
STARTTLS, which is required before anything else. With --tls they are used
from the first byte (SMTPS).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import socket
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("directory")
parser.add_argument("--login", nargs=2, metavar=("USERNAME", "PASSWORD"))
secured = parser.add_mutually_exclusive_group()
secured.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
secured.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
ARGS = parser.parse_args()

DIRECTORY = ARGS.directory
CREDENTIALS = tuple(value.encode() for value in ARGS.login) if ARGS.login else None
deferred = set()
count = 0
# Connections open now, and the most ever open at once.
open_now = 0


def part(message, kind):
    body = message.get_body(preferencelist=(kind,))
    return None if body is None else body.get_content()


def tls_version(server):
    transport = server.transport
    secured = transport.get_extra_info("ssl_object") if transport is not None else None
    return None if secured is None else secured.version()


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 <%s>: Recipient address rejected: no such user here" % address
        if local.startswith("busy") and address not in deferred:
            deferred.add(address)
            return "451 4.2.1 <%s>: mailbox busy, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        raw = envelope.original_content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            "tls": tls_version(server),
            "peer": server.transport.get_extra_info("peername")[1],
            "open": open_now,
            "headers": [[name, str(value)] for name, value in message.items()],
            "text": part(message, "plain"),
            "html": part(message, "html"),
            "raw": raw.decode("utf-8", errors="replace"),
        }
        path = os.path.join(DIRECTORY, "%06d.json" % count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        if any(rcpt.split("@", 1)[0].lower().startswith("slow") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(120)
        return "250 2.0.0 Ok: queued as %06d" % count


class CountingSMTP(SMTP):
    """An SMTP session that counts the connections open at once."""

    def connection_made(self, transport):
        global open_now
        open_now += 1
        super().connection_made(transport)

    def connection_lost(self, error):
        global open_now
        open_now -= 1
        super().connection_lost(error)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == CREDENTIALS
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def server_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def main():
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    options = {}
    if CREDENTIALS:
        # Over STARTTLS, AUTH only once the connection is encrypted.
        options.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(ARGS.starttls))
    if ARGS.starttls:
        options.update(tls_context=server_context(*ARGS.starttls), require_starttls=True)
    wrapped = server_context(*ARGS.tls) if ARGS.tls else None
    server = await loop.create_server(
        lambda: CountingSMTP(Handler(), hostname="smtp.test", loop=loop, **options), sock=sock, ssl=wrapped
    )
    print(sock.getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
