"""Idempotent, verifiable PDF uploads.

Keys are deterministic (prefix + permit number + revision), so a retried upload writes the
same key. Each PUT carries the SHA-256 (the store verifies the body against it) and is
create-only (If-None-Match: *). When the key exists already - a retry after a crash between
upload and commit - the stored SHA-256 is compared: equal means done, different is an error a
retry cannot fix.

Fenced: an upload made under a claim carries the claim's LeaseGuard, asked before every PUT
request, botocore's own retries included (a ``before-send`` hook). A worker whose lease is gone,
or too short for the request, sends nothing more: another worker may hold the permit by then.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, unquote

from botocore.exceptions import BotoCoreError, ClientError

from harness.permits.store import ClaimedPermit, Upload
from harness.runtime import failpoints
from harness.s3 import SHA256_METADATA

GUARD_HOOK_ID = "pgferry-permit-lease-guard"


class Guard(Protocol):
    def check(self) -> None:
        """Raise harness.runtime.leases.CallAbandoned unless a request may be sent now."""


class UploadError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        conflict: bool = False,
        stored_sha256: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.conflict = conflict  # the key holds an object with another checksum
        self.stored_sha256 = stored_sha256  # ... this one (None: unknown)


# the guard of the upload running on this thread, asked by the client's before-send hook
_current = threading.local()


def _check_guard(**kwargs: object) -> None:
    guard: Guard | None = getattr(_current, "guard", None)
    if guard is not None:
        guard.check()


class PermitUploader:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        client.meta.events.register(
            "before-send.s3.PutObject", _check_guard, unique_id=GUARD_HOOK_ID
        )

    def object_key(self, permit: ClaimedPermit) -> str:
        number = quote(permit.tps_permit_number or "", safe="-._")
        return f"{self.prefix}{number}/r{permit.revision}.pdf"

    def permit_of(self, key: str) -> tuple[str, int] | None:
        """(permit number, generation) of a key object_key made, or None."""
        name, slash_r, file = key.removeprefix(self.prefix).rpartition("/r")
        revision = file.removesuffix(".pdf")
        if not key.startswith(self.prefix) or not slash_r or not revision.isdigit():
            return None
        return unquote(name), int(revision) + 1

    def upload(self, permit: ClaimedPermit, guard: Guard | None = None) -> Upload:
        """Upload the permit's PDF; with ``guard``, every PUT request is sent only if
        guard.check() lets it (CallAbandoned propagates: nothing was sent)."""
        _current.guard = guard
        try:
            return self._upload(permit)
        finally:
            _current.guard = None

    def _upload(self, permit: ClaimedPermit) -> Upload:
        pdf = permit.pdf or b""
        digest = hashlib.sha256(pdf)
        key = self.object_key(permit)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=pdf,
                ContentType="application/pdf",
                ContentDisposition=f'attachment; filename="{quote(permit.file_name or "")}"',
                ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
                Metadata={SHA256_METADATA: digest.hexdigest()},
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _status(error) != 412:
                raise UploadError(_describe(error, key), retryable=_retryable(error)) from error
            self._verify_existing(key, digest.hexdigest())
        except BotoCoreError as error:  # connection refused, timeouts, ...
            raise UploadError(f"s3://{self.bucket}/{key}: {error}", retryable=True) from error
        failpoints.reach("after_upload")
        return Upload(
            permit.staged_permit_id,
            self.bucket,
            key,
            digest.hexdigest(),
            len(pdf),
            datetime.now(UTC),
        )

    def _verify_existing(self, key: str, sha256: str) -> None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            raise UploadError(f"s3://{self.bucket}/{key}: {error}", retryable=True) from error
        stored = head.get("Metadata", {}).get(SHA256_METADATA)
        if stored != sha256:
            raise UploadError(
                f"s3://{self.bucket}/{key} already exists with sha256 {stored}, "
                f"this PDF has {sha256}; remove the stale object or fix the staged PDF",
                retryable=False,
                conflict=True,
                stored_sha256=stored,
            )


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


# the body was damaged on the way, or the store is misconfigured (an operator fixes it):
# sending it again can succeed
RETRYABLE_CODES = {
    "BadDigest",
    "InvalidDigest",
    "XAmzContentSHA256Mismatch",
    "RequestTimeout",
    "NoSuchBucket",
}


def _retryable(error: ClientError) -> bool:
    """5xx, throttling, conflicts, damaged bodies, auth and bucket problems heal or get fixed;
    other client errors (a malformed request) do not."""
    status = _status(error)
    code = error.response.get("Error", {}).get("Code", "")
    return status >= 500 or status in (0, 401, 403, 408, 409, 429) or code in RETRYABLE_CODES


def _describe(error: ClientError, key: str) -> str:
    details = error.response.get("Error", {})
    code, message = details.get("Code", _status(error)), details.get("Message", "")
    return f"s3 PUT {key}: {code} {message}".strip()
