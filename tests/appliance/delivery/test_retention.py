"""Retention policy: oldest first, kept and live ones never, disk cap and max age."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.delivery.retention import RetentionItem, run_retention, select_for_deletion

DAY = 86400.0


def test_max_age_deletes_only_old_unkept_finished_ones() -> None:
    items = [
        RetentionItem("old", ended_at=0.0, bytes=10, max_age=7 * DAY),
        RetentionItem("kept", ended_at=0.0, bytes=10, kept=True, max_age=7 * DAY),
        RetentionItem("new", ended_at=9 * DAY, bytes=10, max_age=7 * DAY),
        RetentionItem("live", ended_at=None, bytes=10, max_age=1.0),
        RetentionItem("forever", ended_at=0.0, bytes=10),
    ]
    assert select_for_deletion(items, now=10 * DAY) == ["old"]


def test_disk_cap_deletes_oldest_first_until_under() -> None:
    items = [RetentionItem(f"r{i}", ended_at=float(i), bytes=100) for i in (3, 1, 2, 4)]
    items.append(RetentionItem("kept", ended_at=0.0, bytes=100, kept=True))
    assert select_for_deletion(items, now=10.0, disk_cap=250) == ["r1", "r2", "r3"]
    assert select_for_deletion(items, now=10.0, disk_cap=500) == []


def test_disk_cap_counts_kept_ones_but_never_deletes_them() -> None:
    items = [RetentionItem("k1", 1.0, 1000, kept=True), RetentionItem("a", 2.0, 10)]
    assert select_for_deletion(items, now=3.0, disk_cap=5) == ["a"]


@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 1e6)), st.integers(0, 10**9),
                          st.booleans(), st.one_of(st.none(), st.floats(0, 1e6))),
                max_size=30),
       st.one_of(st.none(), st.integers(0, 10**10)))
def test_policy_properties(raw: list[tuple[float | None, int, bool, float | None]],
                           cap: int | None) -> None:
    items = [RetentionItem(f"r{i}", e, b, k, a) for i, (e, b, k, a) in enumerate(raw)]
    now = 2e6
    chosen = select_for_deletion(items, now, cap)
    by_id = {i.broadcast_id: i for i in items}
    assert len(set(chosen)) == len(chosen)
    for bid in chosen:
        assert not by_id[bid].kept and by_id[bid].ended_at is not None
    ends = [by_id[b].ended_at for b in chosen]
    assert ends == sorted(ends)  # type: ignore[type-var]
    if cap is not None:
        left = sum(i.bytes for i in items if i.broadcast_id not in chosen)
        undeletable = sum(i.bytes for i in items if i.kept or i.ended_at is None)
        assert left <= cap or left == undeletable


async def test_run_retention_deletes_with_reasons() -> None:
    deleted: list[tuple[str, str]] = []

    async def items() -> list[RetentionItem]:
        return [RetentionItem("a", 0.0, 10, max_age=1.0), RetentionItem("b", 5.0, 10)]

    async def delete(bid: str, reason: str) -> None:
        deleted.append((bid, reason))

    assert await run_retention(items, delete, now=10.0, disk_cap=5) == ["a", "b"]
    assert deleted == [("a", "older than the channel's retention"),
                       ("b", "the recordings disk cap was reached")]
