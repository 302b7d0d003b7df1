"""`aftersale preview` and `aftersale send-test`, registered on a throwaway Typer app the way
aftersale/cli/app.py registers them."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aftersale.cli.templates import preview, send_test
from carriers.registry import DIRECTORY


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("preview")(preview)
    app.command("send-test")(send_test)
    return app


def test_preview_sms_shows_segments(app: typer.Typer, tmp_path: Path) -> None:
    env = {"AFTERSALE_DB": str(tmp_path / "none.duckdb"), "COLUMNS": "200"}
    result = CliRunner().invoke(
        app, ["preview", "shipped", "--channel", "sms", "--order", "no_phone"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "Bestellung NW-1048 ist unterwegs mit DHL." in result.output
    assert "1 segment(s), GSM-7" in result.output


def test_preview_email_to_html_file_in_another_locale(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "mail.html"
    env = {"AFTERSALE_DB": str(tmp_path / "none.duckdb"), "COLUMNS": "200"}
    result = CliRunner().invoke(
        app, ["preview", "delivered", "--locale", "de", "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "Subject: Ihre Bestellung NW-1047 wurde zugestellt" in result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_preview_unknown_order_and_template(app: typer.Typer, tmp_path: Path) -> None:
    env = {"AFTERSALE_DB": str(tmp_path / "none.duckdb"), "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["preview", "shiped"], env=env)
    assert result.exit_code == 1
    assert "(did you mean 'shipped'?)" in result.output
    result = CliRunner().invoke(app, ["preview", "shipped", "--order", "NW-9"], env=env)
    assert result.exit_code == 1
    assert "no sample or stored order 'NW-9'" in result.output


def test_send_test_goes_to_the_outbox_marked_as_test(app: typer.Typer, tmp_path: Path) -> None:
    env = {
        "AFTERSALE_OUTBOX": str(tmp_path / "outbox"),
        "AFTERSALE_DB": str(tmp_path / "none.duckdb"),
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["send-test", "delayed", "--to", "+48601000200"], env=env)
    assert result.exit_code == 0, result.output
    (line,) = (tmp_path / "outbox" / "sms.jsonl").read_text().splitlines()
    sms = json.loads(line)
    assert sms["to"] == "+48601000200" and sms["test"] is True and sms["template"] == "delayed"
    result = CliRunner().invoke(app, ["send-test", "setup_tip", "--to", "me@example.com"], env=env)
    assert result.exit_code == 0, result.output
    (eml,) = (tmp_path / "outbox" / "email").glob("*.eml")
    sent = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert sent["X-Aftersale-Test"] == "yes"
    assert sent["Subject"].startswith("[TEST] ")  # marked where every inbox shows it
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # setup tips: marketing
    result = CliRunner().invoke(app, ["send-test", "shipped", "--to", "601000200"], env=env)
    assert result.exit_code == 1
    assert "neither an email address nor a phone number" in result.output


def test_preview_an_order_from_the_store(app: typer.Typer, tmp_path: Path) -> None:
    from dataclasses import replace

    from aftersale.render.samples import SAMPLE_NOW, build_samples
    from aftersale.store import open_store

    db = tmp_path / "aftersale.duckdb"
    order = replace(build_samples(DIRECTORY)[2].order, order_id="SHOP-77")
    with open_store(db) as store:
        store.save_orders([order], source="test", now=SAMPLE_NOW)
    env = {"AFTERSALE_DB": str(db), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["preview", "shipped", "--order", "SHOP-77"], env=env)
    assert result.exit_code == 0, result.output
    assert "Subject: Your order SHOP-77 is on its way" in result.output
    assert "Emily" in result.output
