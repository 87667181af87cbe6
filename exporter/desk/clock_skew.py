"""A probed service's clock against ours, from its HTTP `Date` header and its body's time.

Positive skew: the service's clock is ahead of the sidecar's. The reference moment is the
middle of the wait for the answer, so network time mostly cancels out. `Date` has whole
seconds, so it is read as the middle of its second (±0.5 s). A body time (`time` or
`last_check`) is precise but may be older than the answer (a cached health result), so it
is used when it agrees with `Date` to within its second, or when it is ahead of `Date`
(caching cannot make a clock look ahead); otherwise `Date` wins. Standard library only:
the http prober imports this.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

BODY_TIME_FIELDS = ("time", "last_check")
MAX_TEXT = 64


def header_time(value: str | None) -> float | None:
    """Unix seconds of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), else None."""
    if not value or len(value) > MAX_TEXT:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None  # RFC 9110 dates are GMT; one without a zone says nothing reliable
    return moment.timestamp()


def body_time(document: Any) -> float | None:
    """Unix seconds of the body's top-level `time` or `last_check` (ISO-8601 with offset)."""
    if not isinstance(document, dict):
        return None
    for name in BODY_TIME_FIELDS:
        value = document.get(name)
        if isinstance(value, str) and len(value) <= MAX_TEXT:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is not None:
                return moment.timestamp()
    return None


def estimate_skew(date_header: str | None, body: float | None, sent: float, received: float
                  ) -> float | None:
    """Seconds the service's clock is ahead of ours (negative: behind), or None.

    `sent` and `received` are our wall-clock times around the wait for the answer.
    """
    reference = (sent + received) / 2.0
    margin = 0.5 + max(0.0, received - sent) / 2.0
    stamped = header_time(date_header)
    from_date = None if stamped is None else stamped + 0.5 - reference
    from_body = None if body is None else body - reference
    if from_date is None:
        return None if from_body is None else round(from_body, 3)
    if from_body is not None and (abs(from_body - from_date) <= margin or from_body > from_date):
        return round(from_body, 3)
    return round(from_date, 3)
