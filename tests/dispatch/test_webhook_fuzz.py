"""Property: no webhook request makes the receiver answer 500, and in a signed SendGrid
batch every event is either applied or reported as skipped, whatever its neighbours hold
(issue 15: a `1e20` or `Infinity` timestamp, or deep nesting, once cost the whole batch).
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersale.dispatch.inbound import build_webhook_app
from tests.dispatch.channels.test_webhooks import (
    NOW,
    PUBLIC,
    SG_PUBLIC,
    TOKEN,
    AppClient,
    RecordingSink,
    sg_headers,
    tw_headers,
)

#: inputs each property tries (the closing note of issue 15 quotes these)
EXAMPLES = {"sendgrid": 200, "twilio_inbound": 150, "twilio_status": 100}
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))

CALLS = itertools.count()  # a fresh event id per try: the receiver skips ids it has seen
SINK = RecordingSink()
CLIENT = AppClient(
    build_webhook_app(
        SINK,
        twilio_auth_token=TOKEN,
        sendgrid_public_key=SG_PUBLIC,
        public_url=PUBLIC,
        now=lambda: NOW,
    )
)

GOOD_EVENT = {
    "email": "anna@example.pl",
    "event": "bounce",
    "timestamp": int(NOW.timestamp()),
    "sg_event_id": "e1",
    "message_id": "m-1",
    "type": "bounce",
}
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1e20", "Infinity", "-1", "", "0048 600 700 800"]),
)
EVENT = st.one_of(
    st.builds(
        lambda key, value, i: {**GOOD_EVENT, "sg_event_id": f"e{i}", key: value},
        st.sampled_from(["email", "event", "timestamp", "sg_event_id", "message_id", "type", "x"]),
        ODD,
        st.integers(0, 10**9),
    ),
    st.recursive(
        ODD,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=10,
    ),
)
RAW_ITEM = st.one_of(
    EVENT.map(lambda e: json.dumps(e, allow_nan=True)),
    st.sampled_from(
        ['{"timestamp": 1e20}', '{"timestamp": Infinity}', "[" * 5000 + "]" * 5000, "7" * 5000]
    ),
)


@settings(FUZZ, max_examples=EXAMPLES["sendgrid"])
@given(st.lists(RAW_ITEM, max_size=6), st.integers(0, 6))
def test_a_signed_sendgrid_batch_keeps_every_good_event(items: list[str], at: int) -> None:
    good = json.dumps({**GOOD_EVENT, "sg_event_id": f"good-{next(CALLS)}"})
    batch = list(items)
    batch.insert(min(at, len(batch)), good)
    payload = ("[" + ",".join(batch) + "]").encode()
    answer = CLIENT.post("/sendgrid/events", content=payload, headers=sg_headers(payload))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["applied"] >= 1  # the good one, whatever surrounds it
    assert body["applied"] + body["skipped"] + body.get("repeated", 0) == len(batch)


FORM_VALUE = st.one_of(
    st.text(max_size=40), st.sampled_from(["STOP", "0048 600 700 800", "+48601234567", ""])
)


@settings(FUZZ, max_examples=EXAMPLES["twilio_inbound"])
@given(
    st.dictionaries(
        st.sampled_from(["From", "Body", "MessageSid", "OptOutType", "To", "x"]), FORM_VALUE
    )
)
def test_a_signed_inbound_sms_never_fails_the_receiver(form: dict[str, str]) -> None:
    body = urlencode(form)
    answer = CLIENT.post(
        "/twilio/inbound", content=body, headers=tw_headers("/twilio/inbound", form)
    )
    assert answer.status_code in (200, 400), answer.text


@settings(FUZZ, max_examples=EXAMPLES["twilio_status"])
@given(
    st.dictionaries(
        st.sampled_from(["MessageStatus", "MessageSid", "ErrorCode", "To", "x"]), FORM_VALUE
    ),
    st.text(max_size=20),
)
def test_a_signed_status_callback_never_fails_the_receiver(form: dict[str, str], msg: str) -> None:
    path = "/twilio/status?" + urlencode({"msg": msg})
    answer = CLIENT.post(path, content=urlencode(form), headers=tw_headers(path, form))
    assert answer.status_code in (204, 400), answer.text
