"""Opening an input file: plain or gzip, checked, with one-line errors for unreadable files.

Any problem of the file as a whole (missing, a directory, unreadable, a damaged or truncated
gzip stream, UTF-16/32 text) is an InputError (exit 2) naming the file, and for a damaged
stream the line reached. Problems of single rows are the readers' business.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path
from typing import IO

from bookrec.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
_PIECE = 1 << 16
_WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def check_readable(path: Path) -> None:
    """InputError unless path is a regular file this process can open."""
    try:
        os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")


def open_input(path: Path) -> CheckedStream:
    """The decompressed bytes of path (gzip when named .gz or when it starts like gzip)."""
    check_readable(path)
    try:
        raw = path.open("rb")
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    named_gzip = path.suffix.lower() == ".gz"
    if named_gzip and magic != GZIP_MAGIC:
        raw.close()
        raise InputError(f"{path.name}: named .gz but not gzip-compressed")
    stream: IO[bytes] = raw
    if magic == GZIP_MAGIC:
        stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    checked = CheckedStream(stream, raw, path)
    head = checked.peek(4)
    for bom, encoding in _WIDE_BOMS.items():
        if head.startswith(bom):
            checked.close()
            raise InputError(f"{path.name}: the file is {encoding} text; save it as UTF-8")
    return checked


class CheckedStream(io.RawIOBase):
    """A binary stream that turns read failures (truncated or damaged gzip, I/O errors) into
    one InputError naming the file and the line reached. Counts the line feeds it returned."""

    def __init__(self, stream: IO[bytes], raw: IO[bytes], path: Path) -> None:
        self.stream = stream
        self.raw = raw
        self.path = path
        self.newlines = 0
        self._peeked = b""

    def readable(self) -> bool:
        return True

    def peek(self, size: int) -> bytes:
        if len(self._peeked) < size:
            self._peeked += self._read(size - len(self._peeked))
        return self._peeked[:size]

    def read(self, size: int = -1) -> bytes:
        if self._peeked:
            head, self._peeked = self._peeked, b""
            rest = self._read(size - len(head)) if size < 0 or size > len(head) else b""
            data = head + rest
        else:
            data = self._read(size)
        self.newlines += data.count(b"\n")
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> bytes:
        parts = []
        while True:
            data = self.read(8192)
            if not data:
                break
            cut = data.find(b"\n")
            if cut >= 0:
                parts.append(data[: cut + 1])
                self._unread(data[cut + 1 :])
                break
            parts.append(data)
        return b"".join(parts)

    def _unread(self, data: bytes) -> None:
        self.newlines -= data.count(b"\n")
        self._peeked = data + self._peeked

    def position(self) -> int:
        """Bytes of the file on disk read so far (for progress)."""
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        self.stream.close()
        self.raw.close()
        super().close()

    def _read(self, size: int) -> bytes:
        """Reads in pieces, so that a failure can name the last line read whole."""
        pieces: list[bytes] = []
        wanted = size
        try:
            while wanted:
                piece = self.stream.read(_PIECE if wanted < 0 else min(wanted, _PIECE))
                if not piece:
                    break
                pieces.append(piece)
                wanted = wanted if wanted < 0 else wanted - len(piece)
            return b"".join(pieces)
        except EOFError:
            problem = "truncated gzip file (the compressed data ends early)"
        except gzip.BadGzipFile as exc:
            problem = f"damaged gzip file ({exc})"
        except zlib.error as exc:
            problem = f"damaged gzip file ({exc})"
        except OSError as exc:
            problem = f"cannot read: {exc.strerror or exc}"
        lines = self.newlines + sum(piece.count(b"\n") for piece in pieces)
        where = f"after line {lines:,}" if lines else "before the first line ended"
        raise InputError(f"{self.path.name}: {problem}, {where}")
