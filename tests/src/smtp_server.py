"""A real SMTP server on loopback for Stepwise's delivery tests (aiosmtpd).

Usage: python3 smtp_server.py DIRECTORY [USERNAME PASSWORD]

Binds 127.0.0.1 on a free port and prints the port on the first line of
stdout. Every message accepted is written to DIRECTORY/NNNNNN.json (atomically,
before the 250 reply): the envelope, the login that sent it, the headers as
received and decoded, the text and HTML parts, and the raw message.

Recipients steer the server:
  bounce*@...  550 to RCPT TO: a hard bounce
  busy*@...    451 to the first RCPT TO of that address, 250 afterwards
  slow*@...    the message is written, then the 250 reply to the content
               waits 120 s (a server that takes it and then goes silent)
With USERNAME and PASSWORD, AUTH (PLAIN, LOGIN) is offered over plain text
and required.
"""

import asyncio
import email
import email.policy
import json
import os
import socket
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

DIRECTORY = sys.argv[1]
CREDENTIALS = (sys.argv[2].encode(), sys.argv[3].encode()) if len(sys.argv) > 3 else None
deferred = set()
count = 0


def part(message, kind):
    body = message.get_body(preferencelist=(kind,))
    return None if body is None else body.get_content()


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


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == CREDENTIALS
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


async def main():
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    auth = {}
    if CREDENTIALS:
        auth = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    server = await loop.create_server(
        lambda: SMTP(Handler(), hostname="smtp.test", loop=loop, **auth), sock=sock
    )
    print(sock.getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
