"""The Source Information System adapter [Hệ thống thông tin nguồn]: docs/upstream.md.

Up: a durable outbox (``enqueue`` inside your transaction; collectors for schedules, proof of
play and cluster status) delivered in order by ``OutboxSender``. Down: bulletins by pull and by
signed webhook into ``BulletinInbox``; the operator places or declines priority bulletins
(``_placement``). What the station did with a bulletin goes back up as ``bulletin_status``
(decisions; an emergency's confirmation, trigger, failure and how many clusters aired it:
``_bulletin_status``). Every exchange is a row of ``upstream_exchanges``.
"""

from ._http_client import HttpUpstream
from ._inbox import (
    TEXT_ONLY_NOTE,
    WAITING_NOTE,
    BulletinInbox,
    EmergencyTrigger,
    InboxOutcome,
    RecordingEmergencyTrigger,
)
from ._outbox import OutboxSender, backoff_s, enqueue, log_exchange, retry_failed, retry_now
from ._protocol import (
    MESSAGE_KINDS,
    BulletinIn,
    BulletinPage,
    Envelope,
    UpstreamAdapter,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ._service import Upstream, build_upstream, upstream_ctx, webhook
from ._webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_PATH, WebhookGuard, sign

__all__ = [
    "MESSAGE_KINDS",
    "SIGNATURE_HEADER",
    "TEXT_ONLY_NOTE",
    "TIMESTAMP_HEADER",
    "WAITING_NOTE",
    "WEBHOOK_PATH",
    "BulletinIn",
    "BulletinInbox",
    "BulletinPage",
    "EmergencyTrigger",
    "Envelope",
    "HttpUpstream",
    "InboxOutcome",
    "OutboxSender",
    "RecordingEmergencyTrigger",
    "Upstream",
    "UpstreamAdapter",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "WebhookGuard",
    "backoff_s",
    "build_upstream",
    "enqueue",
    "log_exchange",
    "retry_failed",
    "retry_now",
    "sign",
    "upstream_ctx",
    "webhook",
]
