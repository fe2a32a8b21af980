"""k2trial.report.index_hashes: the index takes an ADaM file's sha256 from define.json only while the file is as
it was when define.json was written; a file edited (same size, even with its modification time set back),
touched, resized or not listed is hashed again."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from k2trial.core.io import sha256_file
from k2trial.report.index_hashes import RecordedHashes

#: A sha256 no file here has: when `recorded` returns it, the record was used, not the file.
RECORDED = "f" * 64


def _delivery(folder: Path) -> Path:
    """adsl.xpt, adsl.json and adlb.xpt, and a define.json (the layout k2trial.adam.write writes) recording
    adsl.xpt with a made-up sha256, adsl.json with its true one; adlb.xpt is not listed."""
    folder.mkdir()
    (folder / "adsl.xpt").write_bytes(b"x" * 100)
    (folder / "adsl.json").write_bytes(b'{"rows":[]}\n')
    (folder / "adlb.xpt").write_bytes(b"y" * 10)
    true = hashlib.sha256((folder / "adsl.json").read_bytes()).hexdigest()
    files = {
        "xpt": {"name": "adsl.xpt", "bytes": 100, "sha256": RECORDED},
        "json": {"name": "adsl.json", "bytes": 12, "sha256": true},
    }
    time.sleep(0.05)  # file times advance in steps of a clock tick: define.json is written after the files
    define = folder / "define.json"
    define.write_text(json.dumps({"datasets": [{"name": "ADSL", "files": files}]}))
    time.sleep(0.05)
    return define


def test_an_unchanged_file_is_taken_from_the_record(tmp_path):
    define = _delivery(tmp_path / "adam")
    recorded = RecordedHashes.from_defines([define])
    assert recorded.recorded(tmp_path / "adam" / "adsl.xpt") == (100, RECORDED)
    assert recorded.recorded(str(tmp_path / "adam" / ".." / "adam" / "adsl.json"))[0] == 12  # any spelling
    assert recorded.recorded(tmp_path / "adam" / "adlb.xpt") is None  # not in define.json
    assert recorded.recorded(define) is None  # define.json itself is always hashed
    assert RecordedHashes.from_defines([]).recorded(tmp_path / "adam" / "adsl.xpt") is None
    # what the record vouched for is this process's sha256 of the file (the job's provenance record takes it), what
    # it did not is read
    assert sha256_file(tmp_path / "adam" / "adsl.xpt") == RECORDED
    assert sha256_file(tmp_path / "adam" / "adlb.xpt") == hashlib.sha256(b"y" * 10).hexdigest()


def test_an_edited_touched_or_resized_file_is_hashed_again(tmp_path):
    define = _delivery(tmp_path / "adam")
    xpt = tmp_path / "adam" / "adsl.xpt"
    before = xpt.stat()
    xpt.write_bytes(b"z" * 100)  # same size, other bytes, and the modification time set back
    os.utime(xpt, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert xpt.stat().st_mtime_ns == before.st_mtime_ns
    assert RecordedHashes.from_defines([define]).recorded(xpt) is None  # its status-change time moved

    define = _delivery(tmp_path / "again")
    json_file = tmp_path / "again" / "adsl.json"
    os.utime(json_file)  # touched: newer than the record
    assert RecordedHashes.from_defines([define]).recorded(json_file) is None

    define = _delivery(tmp_path / "third")
    xpt = tmp_path / "third" / "adsl.xpt"
    recorded = RecordedHashes.from_defines([define])
    assert recorded.recorded(xpt) == (100, RECORDED)
    with open(xpt, "ab") as handle:
        handle.write(b"more")
    assert recorded.recorded(xpt) is None  # checked when asked, not when define.json was read


def test_a_define_rewritten_after_the_files_vouches_for_them_again(tmp_path):
    """A new delivery (write_adam writes the datasets, then define.json): the new record is in force."""
    define = _delivery(tmp_path / "adam")
    xpt = tmp_path / "adam" / "adsl.xpt"
    xpt.write_bytes(b"w" * 100)
    assert RecordedHashes.from_defines([define]).recorded(xpt) is None
    time.sleep(0.05)
    content = json.loads(define.read_text())
    true = hashlib.sha256(xpt.read_bytes()).hexdigest()
    content["datasets"][0]["files"]["xpt"]["sha256"] = true
    define.write_text(json.dumps(content))
    assert RecordedHashes.from_defines([define]).recorded(xpt) == (100, true)
