"""How the demo finds or makes its history and test parts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from demo.dataset import read_events, resolve

HEADER = "SessionId\tItemId\tCatId\tTime\n"
DAY_S = 86_400


def test_folder_pair_is_used_as_is(tmp_path):
    (tmp_path / "shop_train_full.txt").write_text(HEADER)
    (tmp_path / "shop_test.txt").write_text(HEADER)

    data = resolve(tmp_path, tmp_path / "work")

    assert data.history == tmp_path / "shop_train_full.txt"
    assert data.test == tmp_path / "shop_test.txt"


def test_folder_without_pair_names_the_files(tmp_path):
    (tmp_path / "shop_train_full.txt").write_text(HEADER)

    with pytest.raises(FileNotFoundError, match="NAME_train_full.txt and NAME_test.txt"):
        resolve(tmp_path, tmp_path / "work")


def test_single_file_split_by_session_end(tmp_path):
    # Session 1 ends 2 days before the last event and session 2 inside the last
    # day. Session 3 starts before the cut and ends after it, so it is a test session.
    rows = [
        (1, 10, 0.0), (1, 11, 60.0),
        (3, 12, DAY_S + 100.0), (3, 13, 2 * DAY_S + 10.0),
        (2, 14, 2 * DAY_S + 50.0), (2, 15, 3 * DAY_S),
    ]
    start = 1_600_000_000
    lines = [f"{session}\t{item}\t0\t{start + seconds:.3f}\n" for session, item, seconds in rows]
    path = tmp_path / "clicks.txt"
    path.write_text(HEADER + "".join(lines) + "not\ta\tvalid row\n")

    data = resolve(path, tmp_path / "work", test_span=timedelta(days=1))

    history, history_rejected = read_events(data.history, data.format, data.reader_options)
    test, test_rejected = data.test_events()
    assert [(e.session_id, e.item_id) for e in history] == [("1", "10"), ("1", "11")]
    assert [(e.session_id, e.item_id) for e in test] == [("3", "12"), ("3", "13"), ("2", "14"), ("2", "15")]
    assert history_rejected == {}
    assert test_rejected == {}


def test_unparseable_rows_are_counted_by_reason(tmp_path):
    path = tmp_path / "shop_test.txt"
    path.write_text(HEADER + "1\t10\t0\t1600000000.0\n" + "1\t11\n")

    events, rejected = read_events(path)

    assert [event.item_id for event in events] == ["10"]
    assert sum(rejected.values()) == 1
