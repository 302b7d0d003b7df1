"""Apply `automations/aftersale.yaml` to the Prefect server named by PREFECT_API_URL.

    python -m flows.automations --webhook-url https://hooks.example.com/…
    python -m flows.automations --webhook-url http://127.0.0.1:9000/hook --allow-private-urls
    python -m flows.automations --block slack-webhook/ops-alerts   # a block made in the UI

Creates or updates the notification block, then replaces each automation of the file by
name (re-running it is safe). The webhook URL is a secret: give it here or through
AFTERSALE_ALERT_WEBHOOK_URL, never in the file. A URL on a private or loopback address
is refused unless `--allow-private-urls` says it is meant (a catcher on this machine):
Prefect would otherwise refuse every notification to it, in the server's log only.
Then check the whole path with `aftersale alerts test`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID

import httpx
import yaml

from aftersale.settings import PROJECT_ROOT

AUTOMATIONS_FILE = PROJECT_ROOT / "automations" / "aftersale.yaml"
DEFAULT_BLOCK = "custom-webhook/aftersale-alerts"


def load_automations(path: Path, notify_block_id: UUID) -> list[dict[str, Any]]:
    """The file's automations with the block id filled in (nothing else is rendered)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = data["automations"] if isinstance(data, dict) else data
    for item in items:
        for action in item.get("actions", []):
            if action.get("block_document_id") == "{{ notify_block_id }}":
                action["block_document_id"] = str(notify_block_id)
    return items


def save_webhook_block(
    url: str, name: str = "aftersale-alerts", allow_private: bool = False
) -> UUID:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url=url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=allow_private,
    )
    return block.save(name, overwrite=True)


def block_id(ref: str) -> UUID:
    """`slug/name` (e.g. `slack-webhook/ops-alerts`) -> the block document's id."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    slug, _, name = ref.partition("/")
    if not slug or not name:
        fail(f"--block {ref!r}: give it as block-type-slug/block-name, like custom-webhook/alerts")
    with get_client(sync_client=True) as client:
        try:
            return client.read_block_document_by_name(name, slug).id  # type: ignore[return-value]
        except ObjectNotFound:
            fail(
                f"there is no notification block {ref!r} on this Prefect server: give "
                "--webhook-url URL to create it, or make one in the UI (Blocks) and name it "
                "with --block"
            )


def check_webhook_url(url: str, allow_private: bool) -> None:
    """Refuse what Prefect would refuse at send time, now, with what to do instead."""
    from prefect.utilities.urls import validate_restricted_url

    if not url.strip():
        fail(
            "--webhook-url is empty (is AFTERSALE_ALERT_WEBHOOK_URL set?): give the URL the "
            "notifications go to, or --block slug/name for a block made in the UI"
        )
    if not url.startswith(("http://", "https://")):
        fail(f"--webhook-url {url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        validate_restricted_url(url)
    except ValueError as exc:
        fail(
            f"--webhook-url {url}: Prefect refuses to notify private and loopback addresses "
            f"({exc}). For a webhook catcher on this machine or your network, add "
            "--allow-private-urls"
        )


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def apply_automations(path: Path, notify_block_id: UUID) -> list[tuple[str, UUID]]:
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    created = []
    with get_client(sync_client=True) as client:
        for item in load_automations(path, notify_block_id):
            automation = AutomationCore.model_validate(item)
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            created.append((automation.name, client.create_automation(automation)))
    return created


def main(argv: list[str] | None = None) -> None:
    from prefect.settings import PREFECT_API_URL

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=AUTOMATIONS_FILE)
    parser.add_argument(
        "--webhook-url", help="where notifications go (default: AFTERSALE_ALERT_WEBHOOK_URL)"
    )
    parser.add_argument("--block", default=DEFAULT_BLOCK, help="slug/name of a notification block")
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="the webhook is on a private or loopback address (a local catcher)",
    )
    args = parser.parse_args(argv)
    api = PREFECT_API_URL.value()
    if not api:
        fail(
            "PREFECT_API_URL is not set: automations live on the Prefect server; export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api first"
        )
    url = args.webhook_url
    if url is None:
        url = os.environ.get("AFTERSALE_ALERT_WEBHOOK_URL")
    try:
        if url is not None:
            check_webhook_url(url, args.allow_private_urls)
            notify = save_webhook_block(
                url, args.block.partition("/")[2] or "aftersale-alerts", args.allow_private_urls
            )
        else:
            notify = block_id(args.block)
            print(f"notifications go to the existing block {args.block}")
        created = apply_automations(args.file, notify)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the Prefect server at {api}: {exc}")
    for name, automation_id in created:
        print(f"automation '{name}': {automation_id}")
    print("check that a notification arrives: `aftersale alerts test`")


if __name__ == "__main__":
    main()
