"""E-mail through SMTP (smtplib): plain, STARTTLS or implicit TLS, with optional login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from ..application.notifier import OutgoingMessage


class SmtpTransport:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        username: str | None,
        password: str | None,
        from_address: str,
        from_name: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.from_address = from_address
        self.from_name = from_name
        self.timeout = timeout

    def build(self, message: OutgoingMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = formataddr((self.from_name, self.from_address)) if self.from_name else self.from_address
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        # The outbox id, so a retried send is recognisable as the same message downstream.
        mail["Message-ID"] = make_msgid(idstring=message.id, domain="collections-es")
        mail["X-Collections-Message-Id"] = message.id
        mail.set_content(message.body, charset="utf-8")
        mail["Content-Language"] = message.language  # after set_content, which resets Content-* headers
        return mail

    def send(self, message: OutgoingMessage) -> None:
        context = ssl.create_default_context()
        if self.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.security == "starttls":
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(self.build(message))
