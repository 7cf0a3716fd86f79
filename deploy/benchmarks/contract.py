"""Event contract: encode and decode speed of envelopes (JSON via orjson), and schema validation."""
from __future__ import annotations

import statistics
import sys
import time

from routing.contract import Envelope, decode, deterministic_id, encode
from routing.contract.schemas import RecordSchema


def _sample(i: int) -> Envelope:
    # A channel_parked record the size of a real one (~40 raw headers kept).
    headers = {f"variable_sip_h_X-Header-{n}": f"value-{n}-{i}" for n in range(40)}
    return Envelope(
        event_id=deterministic_id("core-uuid", i), type="channel_parked", version=1,
        occurred_at=1_763_800_000_000_000 + i, tenant="acme", source="core-uuid", seq=i,
        call_id=f"call-{i}",
        payload={"fs_event": "CHANNEL_PARK", "leg_id": f"call-{i}", "leg": "a",
                 "direction": "inbound", "caller": "+84912345678", "callee": "19001234",
                 "queue": "support", "did": "+842873001234", "priority": 0, "vip": False,
                 "skills": {"billing": 5}, "language": "vi", "headers": headers})


def run(quick: bool = False) -> dict[str, float]:
    n = 20_000 if quick else 200_000
    samples = [_sample(i) for i in range(1000)]
    wires = [encode(e) for e in samples]
    size = statistics.mean(len(w) for w in wires)

    t0 = time.perf_counter()
    for i in range(n):
        encode(samples[i % 1000])
    enc_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(n):
        decode(wires[i % 1000])
    dec_s = time.perf_counter() - t0

    schema = RecordSchema()
    m = max(n // 20, 1000)
    t0 = time.perf_counter()
    for i in range(m):
        schema.validate(samples[i % 1000].to_dict())
    val_s = time.perf_counter() - t0

    figures = {
        "encode_per_s": round(n / enc_s),
        "decode_per_s": round(n / dec_s),
        "validate_per_s": round(m / val_s),
        "encode_us": round(enc_s / n * 1e6, 2),
        "decode_us": round(dec_s / n * 1e6, 2),
        "record_bytes": round(size),
        "records_count": n,
    }
    print(f"contract: {n} records of ~{size:.0f} B: encode {figures['encode_per_s']}/s, "
          f"decode {figures['decode_per_s']}/s, full schema validation "
          f"{figures['validate_per_s']}/s", file=sys.stderr)
    return figures
