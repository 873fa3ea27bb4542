"""SMS through a webhook: an HTTP POST of JSON to the configured URL (httpx).

Body: {"id", "to", "text", "language"}; header Idempotency-Key: the message id,
so the SMS gateway can drop a retried duplicate. Any non-2xx answer is a failure.
"""

from __future__ import annotations

import httpx

from ..application.notifier import OutgoingMessage


class SmsWebhookTransport:
    def __init__(self, *, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def send(self, message: OutgoingMessage) -> None:
        headers = {"Idempotency-Key": message.id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = httpx.post(
            self.url,
            json={"id": message.id, "to": message.recipient, "text": message.body, "language": message.language},
            headers=headers,
            timeout=self.timeout,
        )
        response.raise_for_status()
