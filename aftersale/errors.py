"""The one error hierarchy of aftersale. Every error carries what is needed to act on it.

AftersaleError
├── StoreError
│   └── StoreLockedError          another process holds the DuckDB file
├── IntakeError                   a whole input file could not be read
├── CarrierError                  carrier, tracking_number
│   ├── CarrierUnavailable        timeout, 5xx, 429: transient, retried
│   │   └── CarrierAnswerError    an answer not to believe (malformed, unmapped, another
│   │                             parcel): retried the same way
│   └── CarrierAuthError          credentials refused: not retried
├── ConfigError                   a setting is missing or malformed
├── RuleSetError                  every problem of every rules file, at once
├── TemplateError                 template, file:line, what is wrong
├── ChannelError                  a channel could not be set up
├── WebhookRejected               provider, reason, HTTP status: a webhook failed verification
└── ShopApiError                  platform, what failed: a shop platform's API (reconcile pulls)
"""

from __future__ import annotations


class AftersaleError(Exception):
    """Base of every error aftersale raises on purpose."""


class StoreError(AftersaleError):
    pass


class StoreLockedError(StoreError):
    def __init__(self, path: str, waited_s: float, detail: str) -> None:
        super().__init__(
            f"{path}: the database is held by another process (waited {waited_s:.0f} s). "
            f"DuckDB allows one writer process per file: wait for the running cycle to "
            f"finish, or stop it. ({detail})"
        )
        self.path = path
        self.waited_s = waited_s


class IntakeError(AftersaleError):
    pass


class CarrierError(AftersaleError):
    def __init__(self, carrier: str, tracking_number: str | None, message: str) -> None:
        where = f"{carrier} {tracking_number}" if tracking_number else carrier
        super().__init__(f"{where}: {message}")
        self.carrier = carrier
        self.tracking_number = tracking_number


class CarrierUnavailable(CarrierError):
    """Transient: the carrier timed out, failed (5xx) or asked us to slow down (429)."""

    def __init__(
        self,
        carrier: str,
        tracking_number: str | None,
        message: str,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(carrier, tracking_number, message)
        self.retry_after_s = retry_after_s


class CarrierAnswerError(CarrierUnavailable):
    """The carrier answered, but not usably: a malformed body, a current status we have not
    mapped, an answer about another parcel. A failed poll, retried like an outage, so a
    short-lived status (out for delivery) is not skipped until the next regular poll;
    a 4xx refusal (`retryable` False) is not asked again within the run."""

    def __init__(
        self, carrier: str, tracking_number: str | None, message: str, retryable: bool = True
    ) -> None:
        super().__init__(carrier, tracking_number, message)
        self.retryable = retryable


class CarrierAuthError(CarrierError):
    pass


class ConfigError(AftersaleError):
    pass


class RuleSetError(AftersaleError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class TemplateError(AftersaleError):
    def __init__(self, template: str, message: str, line: int | None = None) -> None:
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {message}")
        self.template = template
        self.message = message
        self.line = line


class ChannelError(AftersaleError):
    pass


class WebhookRejected(AftersaleError):
    """A webhook request failed verification; `reason` is safe to log (no secrets)."""

    def __init__(self, provider: str, reason: str, status: int = 403) -> None:
        super().__init__(f"{provider} webhook rejected: {reason}")
        self.provider = provider
        self.reason = reason
        self.status = status  # the HTTP answer: 403 bad signature, 400 malformed, 404 off


class ShopApiError(AftersaleError):
    """A shop platform's API could not be read. `transient` (timeouts, 5xx, throttling that
    did not clear) is worth retrying; otherwise (token refused, scope missing, a query
    the API rejects) a person must act, and the message says what to do."""

    def __init__(self, platform: str, message: str, *, transient: bool) -> None:
        super().__init__(f"{platform}: {message}")
        self.platform = platform
        self.transient = transient
