"""The driver-level writer's column lists match the tables it writes."""

from __future__ import annotations

from gateway.store.bulk_rows import COLUMNS, ORDER
from gateway.store.schema import metadata


def test_columns_are_every_column_but_the_generated_id() -> None:
    for table, columns in COLUMNS.items():
        names = [c.name for c in metadata.tables[table].columns]
        expected = [n for n in names if not (n == "id" and table != "processed_messages")]
        assert sorted(columns) == sorted(expected), table


def test_the_feed_is_written_last() -> None:
    assert "changes" in COLUMNS
    assert "changes" not in ORDER
    assert set(ORDER) | {"changes"} == set(COLUMNS)
