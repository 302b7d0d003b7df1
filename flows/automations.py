"""Apply `automations/aftersale.yaml` to the Prefect server named by PREFECT_API_URL.

    python -m flows.automations --webhook-url https://hooks.example.com/…
    python -m flows.automations --block slack-webhook/ops-alerts   # a block made in the UI

Creates or updates the notification block, then replaces each automation of the file by
name (re-running it is safe). The webhook URL is a secret: give it here or through
AFTERSALE_ALERT_WEBHOOK_URL, never in the file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from uuid import UUID

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

    slug, _, name = ref.partition("/")
    with get_client(sync_client=True) as client:
        return client.read_block_document_by_name(name, slug).id  # type: ignore[return-value]


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=AUTOMATIONS_FILE)
    parser.add_argument("--webhook-url", default=os.environ.get("AFTERSALE_ALERT_WEBHOOK_URL"))
    parser.add_argument("--block", default=DEFAULT_BLOCK, help="slug/name of a notification block")
    parser.add_argument(
        "--allow-private-urls", action="store_true", help="the webhook is on a private network"
    )
    args = parser.parse_args(argv)
    if args.webhook_url:
        notify = save_webhook_block(
            args.webhook_url, args.block.partition("/")[2], args.allow_private_urls
        )
    else:
        notify = block_id(args.block)
    for name, automation_id in apply_automations(args.file, notify):
        print(f"automation '{name}': {automation_id}")


if __name__ == "__main__":
    main()
