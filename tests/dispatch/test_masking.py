"""Masking keeps recipients distinguishable in logs, never contactable."""

from __future__ import annotations

import pytest

from aftersale.masking import mask_email, mask_phone, mask_recipient, mask_text


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("jan.kowalski@example.com", "j***@example.com"),
        ("a@example.com", "***@example.com"),  # a one-letter local part shows nothing
        (" Anna@Shop.example ", "A***@Shop.example"),
        ("no-at-sign", "n***"),
    ],
)
def test_mask_email(raw, masked):
    assert mask_email(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+48123456789", "+48******789"),
        ("+48 601 234 567", "+48******567"),
        ("+15005550006", "+1*******006"),
        ("+447700900123", "+44*******123"),
        ("601234567", "******567"),
        ("12345", "*****"),
        ("", "***"),
    ],
)
def test_mask_phone(raw, masked):
    assert mask_phone(raw) == masked


def test_mask_recipient_picks_by_shape():
    assert mask_recipient("jan@example.com") == "j***@example.com"
    assert mask_recipient("+48601234567") == "+48******567"
    assert mask_recipient("Northwind") == "N***"


def test_mask_text_masks_addresses_and_numbers_but_not_dates_or_ids():
    text = (
        "The 'To' number +48601234567 is not valid; bounce for jan@example.com "
        "on 2026-11-22, order 100234567"
    )
    assert mask_text(text) == (
        "The 'To' number +48******567 is not valid; bounce for j***@example.com "
        "on 2026-11-22, order 100234567"
    )


@pytest.mark.parametrize(
    "raw", ["jan.kowalski@example.com", "+48601234567", "+1 (415) 555-2345", "x@y.z"]
)
def test_masked_value_never_contains_the_original(raw):
    assert raw not in mask_recipient(raw)
    assert raw not in mask_text(f"to {raw}.")
