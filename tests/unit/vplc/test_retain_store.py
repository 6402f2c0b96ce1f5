from __future__ import annotations

from pathlib import Path

from shopfloor_vplc.retain import Checkpointer, FileRetainStore


def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileRetainStore(tmp_path / "state" / "mixer.retain.json")
    assert store.load() == {}
    store.save("sha256:ab", {"Count": 3, "Totals": [1, 2]})
    assert store.load() == {"Count": 3, "Totals": [1, 2]}
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["mixer.retain.json"]


def test_unreadable_checkpoint_restores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    assert FileRetainStore(path).load() == {}


async def test_checkpointer_saves_only_changes(tmp_path: Path) -> None:
    store = FileRetainStore(tmp_path / "r.json")
    values = {"Count": 1}
    checkpointer = Checkpointer(store, lambda: ("rev", dict(values)), interval_s=60)
    await checkpointer.save_if_changed()
    await checkpointer.save_if_changed()
    assert checkpointer.saves == 1
    values["Count"] = 2
    await checkpointer.save_if_changed()
    assert checkpointer.saves == 2
    assert store.load() == {"Count": 2}
