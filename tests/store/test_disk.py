"""``store/disk.py`` through the store interface alone (no broker): logs by name, recorded
definitions as plain records, and the end of recovery deleting what nobody reopened."""
from __future__ import annotations

import os

from leveret.store.base import MemoryStore
from leveret.store.disk import DiskStore


def test_first_boot_has_no_recorded_definitions(tmp_path):
    s = DiskStore(str(tmp_path))
    assert s.recorded_definitions() is None and not s.unclean
    s.close()
    assert MemoryStore().recorded_definitions() is None


def test_definitions_come_back_as_plain_records_and_unopened_logs_go(tmp_path):
    s = DiskStore(str(tmp_path))
    s.definitions.put("vhost", ("v",))
    s.definitions.put("queue", ("v", "keep"), auto_delete=False, args="")
    kept = s.open_queue_log("v", "keep", True)
    dropped = s.open_queue_log("v", "drop", True)
    delayed = s.open_exchange_log("v", "dx", True)
    transient = s.open_queue_log("v", "t", False)
    paths = [log.path for log in (kept, dropped, delayed)]
    for p in paths:
        os.makedirs(p, exist_ok=True)     # (a log's directory appears with its first append)
    assert os.path.dirname(transient.path) != os.path.dirname(kept.path)
    s.close()

    s = DiskStore(str(tmp_path))
    st = s.recorded_definitions()
    assert set(st["vhost"]) == {("v",)} and ("v", "keep") in st["queue"]
    s.open_queue_log("v", "keep", True)
    s.open_exchange_log("v", "dx", True)
    s.recovered()
    assert [os.path.exists(p) for p in paths] == [True, False, True]
    s.close()
