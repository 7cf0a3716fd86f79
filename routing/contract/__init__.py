"""The event contract: envelope, payload schemas, topics, upcasters, wire codec.

Lives inside `routing/` so every deployable can import it without pulling in I/O:
everything here is pure (marshmallow validates, orjson serializes; neither does I/O), but
for `edge` (the deployables' clock, dead letters and JSON logs), which this package does not
import. The routing policy itself never imports this package (see
tests/unit/test_dependencies.py).
"""
from .codec import DecodeError, decode, encode
from .envelope import Envelope, click_to_call_leg, deterministic_id
from .upcasters import UpcastError, upcast

__all__ = ["DecodeError", "Envelope", "UpcastError", "click_to_call_leg", "decode",
           "deterministic_id", "encode",
           "upcast"]
