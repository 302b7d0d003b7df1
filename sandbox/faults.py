"""Faults the sandbox injects into tracking answers, per carrier, on request.

Set in-process (`state.set_fault("dhl", Fault(kind="rate_limit", times=3))`) or over
HTTP (`POST /_sandbox/faults {"carrier": "dhl", "kind": "rate_limit", "times": 3}`).
Key "*" applies to every carrier without its own fault. A fault hits the next `times`
requests (None: all of them), each with probability `fraction` drawn from a generator
seeded with `seed`, so a run is repeatable. A hit request first waits `latency_ms`, then:

    kind=None            answer normally (latency only)
    kind="timeout"       hang for `hang_s` (longer than any client timeout), then answer
    kind="rate_limit"    429 with `Retry-After: retry_after_s`
    kind="server_error"  `status` (500 unless told) with a small JSON error body
    kind="malformed"     200 with the normal body cut in half (not JSON)
    kind="unknown_status" the normal body with a newest status code nobody has mapped
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("timeout", "rate_limit", "server_error", "malformed", "unknown_status")


@dataclass
class Fault:
    kind: str | None = None
    latency_ms: float = 0.0
    times: int | None = None
    fraction: float = 1.0
    seed: int = 0
    retry_after_s: float = 1.0
    hang_s: float = 30.0
    status: int = 500
    hits: int = 0  # requests this fault has hit so far
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}"
            )
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")
        if self.times is not None and self.times < 0:
            raise ValueError(f"times must be >= 0, got {self.times}")
        if self.kind == "server_error" and not 500 <= self.status <= 599:
            raise ValueError(f"server_error status must be 5xx, got {self.status}")
        self._rng = random.Random(self.seed)

    def draw(self) -> bool:
        """Does this request get the fault? Consumes one of `times` when it does."""
        with self._lock:
            if self.times is not None and self.hits >= self.times:
                return False
            if self.fraction < 1.0 and self._rng.random() >= self.fraction:
                return False
            self.hits += 1
            return True

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "latency_ms": self.latency_ms,
            "times": self.times,
            "fraction": self.fraction,
            "seed": self.seed,
            "retry_after_s": self.retry_after_s,
            "hang_s": self.hang_s,
            "status": self.status,
            "hits": self.hits,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """From the JSON of `POST /_sandbox/faults` (without `carrier`); raises ValueError."""
        allowed = {
            "kind",
            "latency_ms",
            "times",
            "fraction",
            "seed",
            "retry_after_s",
            "hang_s",
            "status",
        }
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(
                f"unknown fault field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


def format_retry_after(seconds: float) -> str:
    """Whole seconds as HTTP sends them; fractions kept so tests can stay fast."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
