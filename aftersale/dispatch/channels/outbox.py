"""The local outbox: the safe default channel when no provider is configured.

Email becomes one RFC 5322 `.eml` file per send attempt, text and HTML alternatives
(composed by `mime`): `outbox/email/<message id>.eml`, and `<message id>.2.eml`, `.3.eml`…
when the same message is sent again (an operator's release, a test send). A file is
never replaced: people count the outbox to see what was sent. A text message (SMS) becomes
one JSON line in `outbox/<channel>.jsonl` (`sms.jsonl`), appended with a single write.
Which of the two a channel gets is its render format (channels/kinds.py).

The outbox settles its own doubt (`reconcile`, a `Reconciler`): each file or line says
which attempt of its message it is (`X-Aftersale-Attempt`, `"attempt"`), and a write
either happened whole or left nothing (a file is linked into place complete; a line is
one write, a torn one is taken back), so after a crash it tells for certain whether the
attempt in doubt was written (the hidden temporary file a crash may leave beside the
`.eml` files is removed then). A message it has is recorded as sent; one it has not goes
out again at once. This holds for the folder this process writes to: workers sharing a
store share one outbox folder.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path

from aftersale.dispatch.channels import mime
from aftersale.dispatch.channels.base import InDoubt, RenderFormat
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.models import ChannelKind, OutgoingMessage, SendResult

log = logging.getLogger(__name__)

#: Characters `str.splitlines` breaks on that JSON leaves unescaped: escaped here, so one
#: message stays one line for every reader.
_LINE_BREAKS = {ord("\x85"): "\\u0085", ord("\u2028"): "\\u2028", ord("\u2029"): "\\u2029"}
#: The header that says which attempt of its message an `.eml` file is.
ATTEMPT_HEADER = "X-Aftersale-Attempt"


class OutboxChannel:
    name = "outbox"
    #: What it wrote is on disk when it is asked: no wait (Reconciler).
    reconcile_after = timedelta(0)
    #: Messages claimed per batch: a crash's doubt is settled at the next run, so a batch
    #: may be large; rendered messages wait in memory until their batch is sent.
    batch_size = 500

    def __init__(
        self,
        outbox_dir: Path,
        kind: ChannelKind,
        *,
        sender: str = "Shop <orders@shop.invalid>",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.kind = kind
        self._from = mime.parse_sender(sender)  # checked and encoded once, not per message
        self._clock = clock
        # worked out once, not per message: which writer, and where
        self._write = {
            RenderFormat.EMAIL: self._write_email,
            RenderFormat.TEXT: self._append_text,
        }[spec_of(kind).render_format]
        self._email_dir = os.path.join(self.outbox_dir, kind.value)
        self._lines_path = os.path.join(self.outbox_dir, f"{kind.value}.jsonl")

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.content.channel is not self.kind:
            return SendResult(
                ok=False,
                error_code="wrong_channel",
                error_text=f"{self.kind} outbox got a {message.content.channel} message",
            )
        try:
            name = self._write(message)
        except mime.AddressError as exc:
            return SendResult(ok=False, error_code="bad_address", error_text=str(exc))
        except OSError as exc:
            return SendResult(ok=False, error_code="outbox_io", error_text=str(exc), transient=True)
        return SendResult(ok=True, provider_id=f"outbox:{name}:{message.message_id}")

    def _write_email(self, message: OutgoingMessage) -> str:
        content = message.content
        headers = [
            ("Subject", mime.header_text("Subject", content.subject or "")),
            ("From", self._from),
            ("To", mime.check_address(content.to)),
            ("Date", mime.date_header(self._clock())),
            ("Message-ID", make_msgid(idstring=message.message_id, domain="aftersale.local")),
            (
                "X-Aftersale-Message-Id",
                mime.header_text("X-Aftersale-Message-Id", message.message_id),
            ),
            ("X-Aftersale-Rule", mime.header_text("X-Aftersale-Rule", message.rule_id)),
            ("X-Aftersale-Template", mime.header_text("X-Aftersale-Template", message.template)),
            (ATTEMPT_HEADER, str(message.attempt)),
        ]
        if message.marketing:
            headers.extend(mime.list_unsubscribe_headers(content.list_unsubscribe))
        if message.test:
            headers.append(("X-Aftersale-Test", "yes"))
        data = mime.compose(headers, content.text, content.html)
        try:
            return write_new(self._email_dir, message.message_id, data)
        except FileNotFoundError:  # the first message (or someone moved the folder away)
            os.makedirs(self._email_dir, mode=0o700, exist_ok=True)
            return write_new(self._email_dir, message.message_id, data)

    def _append_text(self, message: OutgoingMessage) -> str:
        record = {
            "message_id": message.message_id,
            "to": message.content.to,
            "text": message.content.text,
            "segments": message.content.sms_segments,
            "rule": message.rule_id,
            "template": message.template,
            "test": message.test,
            "attempt": message.attempt,
            "written_at": self._clock().isoformat(),
        }
        line = json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"
        try:
            append_line(self._lines_path, line.encode("utf-8"))
        except FileNotFoundError:  # the first message (or someone moved the folder away)
            os.makedirs(self.outbox_dir, mode=0o700, exist_ok=True)
            append_line(self._lines_path, line.encode("utf-8"))
        return os.path.basename(self._lines_path)

    def reconcile(self, messages: Sequence[InDoubt]) -> dict[str, str | None]:
        """Whether each attempt in doubt was written (Reconciler): its provider id when its
        file or line is here, None when it surely is not; left out when a file or line of
        the message predates the attempt marks, or the folder cannot be read."""
        if not messages:
            return {}
        find = {
            RenderFormat.EMAIL: self._emails_written,
            RenderFormat.TEXT: self._lines_written,
        }[spec_of(self.kind).render_format]
        try:
            return find(messages)
        except OSError as exc:
            log.warning("outbox: cannot read %s to settle sends in doubt: %s", self.outbox_dir, exc)
            return {}

    def _emails_written(self, messages: Sequence[InDoubt]) -> dict[str, str | None]:
        folder = self.outbox_dir / self.kind.value
        _remove_leftovers(folder, {doubt.message_id for doubt in messages})
        answers: dict[str, str | None] = {}
        for doubt in messages:
            # Attempt N finds at most N-1 files of its message (one per earlier attempt that
            # wrote), so its own, if written, is among the first N names.
            names = [f"{doubt.message_id}.eml"]
            names += [f"{doubt.message_id}.{n}.eml" for n in range(2, doubt.attempt + 1)]
            unmarked = False
            for name in names:
                try:
                    attempt = attempt_of(folder / name)
                except FileNotFoundError:
                    continue
                if attempt == doubt.attempt:
                    answers[doubt.message_id] = f"outbox:{name}:{doubt.message_id}"
                    break
                unmarked = unmarked or attempt is None
            else:
                if not unmarked:
                    answers[doubt.message_id] = None
        return answers

    def _lines_written(self, messages: Sequence[InDoubt]) -> dict[str, str | None]:
        path = self.outbox_dir / f"{self.kind.value}.jsonl"
        wanted = {d.message_id: d.attempt for d in messages}
        found: dict[str, str] = {}
        unmarked: set[str] = set()
        try:
            lines = path.open("rb")
        except FileNotFoundError:
            return dict.fromkeys(wanted)
        with lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:  # not a whole record: no send wrote it
                    continue
                message_id = record.get("message_id")
                if message_id not in wanted:
                    continue
                attempt = record.get("attempt")
                if attempt == wanted[message_id]:
                    found[message_id] = f"outbox:{path.name}:{message_id}"
                elif attempt is None:
                    unmarked.add(message_id)
        return {
            message_id: found.get(message_id)
            for message_id in wanted
            if message_id in found or message_id not in unmarked
        }


def _remove_leftovers(folder: Path, message_ids: set[str]) -> None:
    """Remove the temporary files (`write_new`'s) of these messages' attempts in doubt: a
    run killed between writing one and linking or removing it left it behind, and nothing
    else ever would. The messages are in doubt, so no live run is writing them now. One
    listing of the folder, only when a crash left sends in doubt; a file that cannot be
    removed is logged and left, never in the way of settling the doubt."""
    try:
        names = os.listdir(folder)
    except OSError:  # no folder yet, or unreadable: `_emails_written` says which
        return
    for name in names:
        if stem_of_temporary(name) not in message_ids:
            continue
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("outbox: cannot remove %s, left by a crashed run: %s", name, exc)
            continue
        log.info("outbox: removed %s, left by a run that crashed while writing it", name)


def attempt_of(path: Path) -> int | None:
    """The attempt an `.eml` file's header names (None: a file written before they did)."""
    prefix = f"{ATTEMPT_HEADER}:".encode("ascii")
    with path.open("rb") as eml:
        for line in eml:
            if not line.strip():  # the end of the header
                break
            if line.startswith(prefix):
                value = line[len(prefix) :].strip()
                return int(value) if value.isdigit() else None
    return None


def temporary_name(stem: str) -> str:
    """`write_new`'s hidden file for `stem`, unique to this process and thread."""
    return f".{stem}.{os.getpid()}.{threading.get_ident()}.tmp"


def stem_of_temporary(name: str) -> str | None:
    """The stem (message id) of a `temporary_name`, None for any other name."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    return name[1:].rsplit(".", 3)[0]


def write_new(folder: str, stem: str, data: bytes) -> str:
    """Write `data` as `stem.eml`, or `stem.2.eml`, `stem.3.eml`… whichever is free first,
    in `folder`; return the name taken.

    The bytes go to a hidden temporary file that is then hard-linked under the final
    name: linking fails if the name exists (so nothing is replaced, even by a run writing
    the same message at the same moment) and a reader never sees half a message. A write
    that fails (a full disk) leaves nothing behind. One write on the bare descriptor: a
    file object would add system calls (fstat, ioctl, lseek) and buffering for nothing."""
    tmp = f"{folder}/{temporary_name(stem)}"
    # private: a message holds the customer's name and address
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(f"{tmp}: wrote {written} of {len(data)} bytes (disk full?)")
        name, number = f"{stem}.eml", 1
        while True:
            try:
                os.link(tmp, f"{folder}/{name}")
                return name
            except FileExistsError:
                number += 1
                name = f"{stem}.{number}.eml"
    finally:
        os.unlink(tmp)


def append_line(path: str, line: bytes) -> None:
    """Append one line with one write to a file opened for appending: the kernel places
    each such write whole at the end, so lines from threads or overlapping runs never mix.
    A write cut short (a full disk) is taken back when nothing was appended after it, so
    the file holds whole lines only and a reader never takes a torn one for a send."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line)
        if written != len(line):
            end = os.lseek(fd, 0, os.SEEK_CUR)
            if os.fstat(fd).st_size == end:
                os.ftruncate(fd, end - written)
            raise OSError(f"{path}: wrote {written} of {len(line)} bytes (disk full?)")
    finally:
        os.close(fd)
