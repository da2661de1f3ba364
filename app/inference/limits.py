"""What one request may send, whatever its protocol: every body size limit derives from these.

The per-image limits are the settings' (``FLOWERS_MAX_UPLOAD_BYTES``,
``FLOWERS_MAX_FILES_PER_REQUEST``); a body is allowed what its encoding adds to that many
images at their largest, and not a byte more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from app.config import MULTIPART_OVERHEAD_BYTES, Settings

# The JSON part of a V2 REST request beyond its base64 data, and a gRPC message's fields beyond
# its images: names, shapes, parameters.
V2_OVERHEAD_BYTES: Final = 64 * 1024
_LENGTH_PREFIX: Final = 4  # a BYTES element's 4-byte length
_JSON_PER_IMAGE: Final = 8  # the quotes and comma around a base64 string, or a length prefix


def size_text(count: int) -> str:
    """A byte count as people read it, exact beside it: "10 MiB (10,485,760 bytes)"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            amount = count / scale
            shown = f"{amount:.0f}" if amount.is_integer() else f"{amount:.1f}"
            return f"{shown} {unit} ({count:,} bytes)"
    return f"{count:,} bytes"


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int
    max_files: int
    idle_timeout_s: float = 15.0  # the longest pause between two chunks of a body
    # the slowest average rate of a body, past its first idle_timeout_s (0: no minimum)
    min_rate_bytes_s: int = 16 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        return cls(
            settings.max_upload_bytes,
            settings.max_files_per_request,
            settings.upload_timeout_s,
            settings.upload_min_rate_bytes_s,
        )

    @property
    def max_body_bytes(self) -> int:
        """A multipart body: every file at its limit, plus boundaries and part headers."""
        return self.max_files * self.max_file_bytes + MULTIPART_OVERHEAD_BYTES

    @property
    def max_v2_rest_bytes(self) -> int:
        """A V2 REST body: every image at its limit, base64 in JSON (the larger encoding)."""
        base64_size = 4 * math.ceil(self.max_file_bytes / 3)
        return self.max_files * (base64_size + _JSON_PER_IMAGE) + V2_OVERHEAD_BYTES

    @property
    def max_grpc_message_bytes(self) -> int:
        """A gRPC ModelInfer message: every image at its limit, each with its length prefix."""
        return self.max_files * (self.max_file_bytes + _LENGTH_PREFIX) + V2_OVERHEAD_BYTES
