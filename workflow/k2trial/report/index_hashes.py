"""The sha256 and size of each file the index lists, without reading again the files whose hash the job that wrote
them recorded: the ADaM datasets (define.json states the bytes and sha256 of every dataset file beside it,
computed as the files were written; 5.5 GB at 100,000 subjects).

A recorded hash is used only for a file that has not changed since the record was written: its size is the
recorded one, and neither its modification time nor its status-change time (which no one can set back: a copy,
rename, rewrite or `touch` moves it) is later than define.json's own. Any other file, and define.json itself, is
hashed. So a dataset file edited, replaced or touched after its delivery is hashed again and shown with its real
sha256; the one case a record cannot tell is a dataset file changed and define.json rewritten afterwards by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from k2trial.core.io import remember_sha256


class RecordedHashes:
    """What define.json files record about the files beside them: resolved path -> (bytes, sha256), and the status
    of the record file (its modification and status-change times bound those of the files it vouches for)."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[int, str, os.stat_result]] = {}

    @classmethod
    def from_defines(cls, defines: Iterable[str | Path]) -> RecordedHashes:
        """What the given define.json files record."""
        out = cls()
        for define in defines:
            out.add_define(define)
        return out

    def add_define(self, define: str | Path) -> None:
        """The dataset files (name, bytes, sha256) that a delivery's define.json lists, in its folder."""
        define = Path(define)
        status = define.stat()  # before reading: a rewrite while it is read leaves it newer than the files
        content = json.loads(define.read_text(encoding="utf-8"))
        for dataset in content.get("datasets", []):
            for entry in (dataset.get("files") or {}).values():
                path = (define.parent / str(entry["name"])).resolve()
                self._files[str(path)] = (int(entry["bytes"]), str(entry["sha256"]), status)

    def recorded(self, path: str | Path) -> tuple[int, str] | None:
        """(bytes, sha256) of a file as recorded, when the file is still as it was recorded (and then the sha256 is
        this process's for the file: core.io.remember_sha256); None otherwise."""
        known = self._files.get(str(Path(path).resolve()))
        if known is None:
            return None
        size, digest, record = known
        status = os.stat(path)
        unchanged = (
            status.st_size == size
            and status.st_mtime_ns <= record.st_mtime_ns
            and status.st_ctime_ns <= record.st_ctime_ns
        )
        if not unchanged:
            return None
        remember_sha256(path, digest, status)  # the job's provenance record, which hashes its inputs, takes it too
        return size, digest
