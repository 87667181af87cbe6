"""Sample values in the text exposition, written exactly as prometheus-client writes them."""

from __future__ import annotations

from prometheus_client.utils import floatToGoString


def format_sample(value: float) -> str:
    """A sample value exactly as prometheus_client writes it (Go's float formatting)."""
    kind = value.__class__
    if kind is int and -1_000_000 < value < 1_000_000:
        return f"{value}.0"  # what repr(float(n)) gives, without the detour
    if kind is float:
        text = repr(value)
        dot = text.find(".")
        # NaN, Inf and numbers Python already writes with an exponent take the library's path.
        if dot != -1 and "e" not in text:
            if dot <= 6 or value < 0:
                return text
            # Go writes an exponent from 1e6 up where Python does not (timestamps, bytes).
            mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
    return floatToGoString(value)
