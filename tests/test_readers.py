"""Tests for the dataset readers in seqrec.readers.

Each test writes a small file in the exact layout of the public dataset and
checks values worked out by hand: epoch milliseconds come from counting days
since 1970-01-01, e.g. 2014-04-07 is day 16167, so 2014-04-07T10:51:09.277Z is
(16167 * 86400 + 10 * 3600 + 51 * 60 + 9) * 1000 + 277 = 1396867869277.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec.events import InvalidEvent, Reason, validate_event
from seqrec.readers import FORMATS, detect_format, read_records
from seqrec.readers import generic
from seqrec.readers.base import SourceRecord
from seqrec.readers.diginetica import read_diginetica
from seqrec.readers.generic import read_generic
from seqrec.readers.movielens import read_movielens
from seqrec.readers.rees46 import read_rees46
from seqrec.readers.retailrocket import read_retailrocket
from seqrec.readers.session_rec import read_session_rec
from seqrec.readers.times import iso_to_ms, seconds_to_ms
from seqrec.readers.yoochoose import read_yoochoose, sniff_yoochoose_kind

NOW_MS = 1_700_000_000_000
"""Fixed wall clock for validation: 2023-11-14T22:13:20Z, later than every fixture time."""

MINUTE_MS = 60_000
DAY_MS = 86_400_000

CLICKS = (
    "1,2014-04-07T10:51:09.277Z,214536502,0\n"
    "1,2014-04-07T10:54:09.868Z,214536500,S\n"
    "\n"
    "2,2014-04-07T13:56:37.614Z,214662742\n"
    "2,2014-04-07 noon,214662742,0\n"
    "3,2014-04-07T13:56:37.614Z,214662742,2053013555\n"
)
BUYS = (
    "420374,2014-04-06T18:44:58.314Z,214537888,12462,1\n"
    "420374,2014-04-06T18:44:58.314Z,214537850,10471,x\n"
    "420375,2014-04-06T18:44:58.314Z,214537850,ten,1\n"
)
SESSION_REC = (
    "SessionId\tItemId\tCatId\tTime\n"
    "11272202\t214568124\t7\t1411462780.513\n"
    "11272202\t214853848\t\t1411462790.659\n"
    "11272203\t214680682\t1\t1411542474.94\n"
    "11272203\t214680682\t1\tnoon\n"
    "11272203\t214680682\t1411542474.94\n"
)
DIGINETICA = (
    "session_id;user_id;item_id;timeframe;eventdate\n"
    "1;NA;81766;526309;2016-05-09\n"
    "2;5;31331;0;2016-05-10\n"
    "3;;32118;86400001;2016-05-09\n"
    "4;NA;9654;75848;2016-13-01\n"
    "5;NA;9654;1.5;2016-05-09\n"
    "6;NA;9654;75848\n"
)
RR_T0 = 1433221332117
"""First RetailRocket time, 2015-06-02T05:02:12.117Z."""

RETAILROCKET = (
    "timestamp,visitorid,event,itemid,transactionid\n"
    f"{RR_T0 + 30 * MINUTE_MS},7,view,100,\n"
    f"{RR_T0},7,view,101,\n"
    f"{RR_T0 + 60 * MINUTE_MS + 1},7,addtocart,102,\n"
    f"{RR_T0 + 5 * MINUTE_MS},8,transaction,103,4000\n"
    "2015-06-02,7,view,104,\n"
    f"{RR_T0 + 90 * MINUTE_MS + 1},7,view,105,\n"
)
REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)
REES46 = REES46_HEADER + (
    "2019-12-01 00:00:05 UTC,view,5848413,1487580007675986893,,freedecor,0.79,348405118,"
    "722ffea5-73c0-4924-8e8f-371ff8031af4\n"
    "2019-12-01 00:01:47 UTC,cart,5732026,1487580011970953351,furniture.bathroom.bath,domix,"
    "4.16,509445281,91e9d610-759a-4831-b89a-22f2ab5fbc0f\n"
    "2019-12-01 00:01:47 UTC,purchase,5732026,1487580011970953351,,,,,"
    "91e9d610-759a-4831-b89a-22f2ab5fbc0f\n"
    "2019-12-01 25:00:00 UTC,view,5848413,1487580007675986893,,freedecor,0.79,348405118,"
    "722ffea5-73c0-4924-8e8f-371ff8031af4\n"
    "2019-12-01 00:00:05 UTC,view,5848413,1487580007675986893,,freedecor,0.79,348405118\n"
    "2019-12-01 00:00:05 UTC,view,5848413,1487580007675986893,,freedecor,cheap,348405118,"
    "722ffea5-73c0-4924-8e8f-371ff8031af4\n"
)
MOVIELENS_DAT = "1::1193::5::978300760\n1::661::3::978302109\n1::914::3\n2::914::3::soon\n"
MOVIELENS_CSV = (
    "userId,movieId,rating,timestamp\r\n1,296,5.0,1147880044\r\n1,306,3.5,1147868817\r\n"
)
GENERIC_CSV = (
    "sid;sku;ts;action;who;cat;cost\n"
    '"s;1";A-1;1411462780.513;view;u1;shoes;19.99\n'
    "s2;B-2;1411462790;purchase;;;\n"
    "s3;C-3;soon;view;u3;x;1\n"
)
GENERIC_COLUMNS = {
    "session_id": "sid",
    "item_id": "sku",
    "event_time": "ts",
    "event_type": "action",
    "user_id": "who",
    "category": "cat",
    "price": "cost",
}


def write_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def by_line(records: list[SourceRecord]) -> dict[int, SourceRecord]:
    return {record.line: record for record in records}


def good_fields(records: list[SourceRecord]) -> dict[int, dict]:
    return {record.line: record.fields for record in records if record.fields is not None}


def error_of(records: list[SourceRecord], line: int) -> InvalidEvent:
    record = by_line(records)[line]
    assert record.fields is None
    assert record.error is not None
    return record.error


def event(**fields) -> dict:
    """Return the full field dict a reader yields, with None for absent optional fields."""
    full = dict.fromkeys(
        ("event_id", "session_id", "user_id", "item_id", "event_type", "event_time",
         "category", "price")
    )
    full.update(fields)
    return full


# YooChoose


def test_yoochoose_clicks_fields(tmp_path):
    records = list(read_yoochoose(write_file(tmp_path, "clicks.dat", CLICKS)))

    fields = good_fields(records)
    assert fields[1] == event(
        event_id="clicks:1", session_id="1", item_id="214536502", event_type="click",
        event_time=1396867869277, category="0",
    )
    assert fields[2] == event(
        event_id="clicks:2", session_id="1", item_id="214536500", event_type="click",
        event_time=1396868049868, category="S",
    )
    assert fields[6]["event_time"] == 1396878997614
    assert fields[6]["category"] == "2053013555"


def test_yoochoose_line_numbers_skip_blank(tmp_path):
    records = list(read_yoochoose(write_file(tmp_path, "clicks.dat", CLICKS)))

    assert [record.line for record in records] == [1, 2, 4, 5, 6]
    assert {record.source for record in records} == {"clicks.dat"}
    assert by_line(records)[2].raw == "1,2014-04-07T10:54:09.868Z,214536500,S"


def test_yoochoose_malformed_rows(tmp_path):
    records = list(read_yoochoose(write_file(tmp_path, "clicks.dat", CLICKS)))

    short = error_of(records, 4)
    assert short.reason == Reason.UNPARSEABLE
    assert "3 comma-separated columns instead of 4" in short.message
    assert "session,ISO-8601 time,item,category" in short.message
    assert by_line(records)[4].raw == "2,2014-04-07T13:56:37.614Z,214662742"

    bad_time = error_of(records, 5)
    assert bad_time.reason == Reason.UNPARSEABLE
    assert bad_time.field == "event_time"
    assert "'2014-04-07 noon'" in bad_time.message


def test_yoochoose_buys_fields(tmp_path):
    records = list(read_yoochoose(write_file(tmp_path, "buys.dat", BUYS)))

    assert good_fields(records)[1] == event(
        event_id="buys:1", session_id="420374", item_id="214537888", event_type="purchase",
        event_time=1396809898314, price=12462.0,
    )
    # The quantity is dropped unparsed, so a bad quantity does not reject the row.
    assert good_fields(records)[2]["price"] == 10471.0
    bad_price = error_of(records, 3)
    assert bad_price.field == "price"
    assert "'ten' is not a number" in bad_price.message


def test_yoochoose_kind_sniffed_from_columns(tmp_path):
    assert sniff_yoochoose_kind(write_file(tmp_path, "clicks.dat", CLICKS)) == "clicks"
    assert sniff_yoochoose_kind(write_file(tmp_path, "buys.dat", BUYS)) == "buys"
    with pytest.raises(ValueError, match="3 comma-separated columns"):
        sniff_yoochoose_kind(write_file(tmp_path, "odd.dat", "1,2,3\n"))


def test_yoochoose_explicit_kind_wins(tmp_path):
    records = list(read_yoochoose(write_file(tmp_path, "buys.dat", BUYS), kind="clicks"))

    assert len(records) == 3
    assert all(record.error is not None for record in records)
    assert "5 comma-separated columns instead of 4" in records[0].error.message
    with pytest.raises(ValueError, match="unknown YooChoose kind 'views'"):
        read_yoochoose(write_file(tmp_path, "buys.dat", BUYS), kind="views")


# session-rec


def test_session_rec_fields(tmp_path):
    records = list(read_session_rec(write_file(tmp_path, "rec15_test.txt", SESSION_REC)))

    fields = good_fields(records)
    assert fields[2] == event(
        event_id="rec15_test:2", session_id="11272202", item_id="214568124",
        event_type="click", event_time=1411462780513, category="7",
    )
    assert fields[3]["category"] is None
    assert fields[4]["event_time"] == 1411542474940
    assert [record.line for record in records] == [2, 3, 4, 5, 6]


def test_session_rec_malformed_rows(tmp_path):
    records = list(read_session_rec(write_file(tmp_path, "rec15_test.txt", SESSION_REC)))

    bad_time = error_of(records, 5)
    assert bad_time.reason == Reason.UNPARSEABLE
    assert bad_time.field == "event_time"
    assert "column 'Time': 'noon' is not unix seconds" in bad_time.message
    assert "SessionId<TAB>ItemId[<TAB>CatId]<TAB>Time" in bad_time.message

    short = error_of(records, 6)
    assert "3 tab-separated columns instead of 4" in short.message


def test_session_rec_without_category_and_event_type(tmp_path):
    text = "SessionId\tItemId\tTime\n1\t214536502\t1396860669.277\n"
    path = write_file(tmp_path, "yoochoose-clicks-100k_test.txt", text)

    [record] = list(read_session_rec(path, event_type="view"))

    assert record.line == 2
    assert record.fields == event(
        event_id="yoochoose-clicks-100k_test:2", session_id="1", item_id="214536502",
        event_type="view", event_time=1396860669277,
    )


def test_session_rec_columns_found_by_name(tmp_path):
    text = "Time\tItemId\tSessionId\n1411462780.513\t9\t3\n"

    [record] = list(read_session_rec(write_file(tmp_path, "reordered.tsv", text)))

    assert record.fields["session_id"] == "3"
    assert record.fields["item_id"] == "9"
    assert record.fields["event_time"] == 1411462780513


def test_session_rec_missing_header_column(tmp_path):
    path = write_file(tmp_path, "bad.tsv", "Session\tItemId\tTime\n1\t2\t1411462780.513\n")

    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['SessionId'\]"):
        list(read_session_rec(path))


@pytest.mark.parametrize(
    ("seconds", "expected_ms"),
    [
        ("1411462780.513", 1411462780513),
        ("1411542474.94", 1411542474940),
        ("1411462780", 1411462780000),
        ("1411462780.5125", 1411462780512),
        ("1411462780.5135", 1411462780514),
        ("1411462780.5125000001", 1411462780513),
        ("1.001", 1001),
        (" 1411462780.513 ", 1411462780513),
    ],
)
def test_seconds_to_ms_exact(seconds, expected_ms):
    assert seconds_to_ms(seconds) == expected_ms


@pytest.mark.parametrize("text", ["", "noon", "1e9", "1411462780,513", "nan", "1_000"])
def test_seconds_to_ms_rejects(text):
    with pytest.raises(ValueError, match="is not unix seconds"):
        seconds_to_ms(text)


def test_session_rec_decimal_seconds(tmp_path):
    text = "SessionId\tItemId\tTime\n1\t2\t1.001\n1\t2\t1411462780.5125000001\n"

    records = list(read_session_rec(write_file(tmp_path, "exact.tsv", text)))

    # float("1.001") * 1000 is 1000.9999999999999, which int() would cut to 1000.
    assert [record.fields["event_time"] for record in records] == [1001, 1411462780513]


def test_iso_to_ms_rounds_microseconds():
    assert iso_to_ms("2014-04-07T10:51:09.2775Z") == 1396867869278
    assert iso_to_ms("2014-04-07T10:51:09.2765Z") == 1396867869276
    assert iso_to_ms("2014-04-07T12:51:09.277+02:00") == 1396867869277
    assert iso_to_ms("2014-04-07T10:51:09.277") == 1396867869277


# Diginetica


def test_diginetica_time_arithmetic(tmp_path):
    records = list(read_diginetica(write_file(tmp_path, "train-item-views.csv", DIGINETICA)))

    fields = good_fields(records)
    day_2016_05_09_ms = 16930 * DAY_MS
    assert day_2016_05_09_ms == 1462752000000
    assert fields[2] == event(
        event_id="train-item-views:2", session_id="1", item_id="81766", event_type="view",
        event_time=day_2016_05_09_ms + 526309,
    )
    assert fields[3]["event_time"] == day_2016_05_09_ms + DAY_MS
    assert fields[4]["event_time"] == day_2016_05_09_ms + DAY_MS + 1


def test_diginetica_user_ids(tmp_path):
    records = list(read_diginetica(write_file(tmp_path, "train-item-views.csv", DIGINETICA)))

    fields = good_fields(records)
    assert fields[2]["user_id"] is None
    assert fields[3]["user_id"] == "5"
    assert fields[4]["user_id"] is None


def test_diginetica_malformed_rows(tmp_path):
    records = list(read_diginetica(write_file(tmp_path, "train-item-views.csv", DIGINETICA)))

    bad_date = error_of(records, 5)
    assert bad_date.reason == Reason.UNPARSEABLE
    assert "column 'eventdate': '2016-13-01' is not an ISO-8601 date" in bad_date.message
    assert "session_id;user_id;item_id;timeframe;eventdate" in bad_date.message

    bad_timeframe = error_of(records, 6)
    assert "column 'timeframe': '1.5' is not unix milliseconds" in bad_timeframe.message

    short = error_of(records, 7)
    assert "4 semicolon-separated columns instead of 5" in short.message


# RetailRocket


def test_retailrocket_session_split_at_gap(tmp_path):
    records = list(read_retailrocket(write_file(tmp_path, "events.csv", RETAILROCKET)))

    sessions = {line: fields["session_id"] for line, fields in good_fields(records).items()}
    # Line 3 (T0) -> line 2 (T0 + 30 min) is exactly the gap: same session.
    # Line 2 -> line 4 (T0 + 60 min + 1 ms) is 30 min + 1 ms: a new session.
    # Line 4 -> line 7 (T0 + 90 min + 1 ms) is exactly the gap again.
    assert sessions == {2: "7-1", 3: "7-1", 4: "7-2", 5: "8-1", 7: "7-2"}


def test_retailrocket_fields_and_order(tmp_path):
    records = list(read_retailrocket(write_file(tmp_path, "events.csv", RETAILROCKET)))

    assert [record.line for record in records] == [2, 3, 4, 5, 6, 7]
    fields = good_fields(records)
    assert fields[4] == event(
        event_id="events:4", session_id="7-2", user_id="7", item_id="102",
        event_type="add_to_cart", event_time=RR_T0 + 60 * MINUTE_MS + 1,
    )
    assert fields[5]["event_type"] == "purchase"
    assert fields[5]["event_time"] == 1433221632117
    assert fields[3]["event_type"] == "view"


def test_retailrocket_malformed_row(tmp_path):
    records = list(read_retailrocket(write_file(tmp_path, "events.csv", RETAILROCKET)))

    error = error_of(records, 6)
    assert error.reason == Reason.UNPARSEABLE
    assert error.field == "event_time"
    assert "column 'timestamp': '2015-06-02' is not unix milliseconds" in error.message
    assert "timestamp,visitorid,event,itemid,transactionid" in error.message


def test_retailrocket_custom_gap(tmp_path):
    path = write_file(tmp_path, "events.csv", RETAILROCKET)

    records = list(read_retailrocket(path, session_gap=timedelta(minutes=10)))

    sessions = {line: fields["session_id"] for line, fields in good_fields(records).items()}
    assert sessions == {3: "7-1", 2: "7-2", 4: "7-3", 7: "7-4", 5: "8-1"}
    with pytest.raises(ValueError, match="session_gap must be positive"):
        read_retailrocket(path, session_gap=timedelta(0))


def test_retailrocket_unknown_event_passes_through(tmp_path):
    text = "timestamp,visitorid,event,itemid,transactionid\n1433221332117,9,refund,5,\n"

    [record] = list(read_retailrocket(write_file(tmp_path, "events.csv", text)))

    assert record.fields["event_type"] == "refund"
    assert record.fields["session_id"] == "9-1"
    with pytest.raises(InvalidEvent) as caught:
        validate_event(record.fields, now_ms=NOW_MS)
    assert caught.value.reason == Reason.UNKNOWN_EVENT_TYPE


# REES46


def test_rees46_fields(tmp_path):
    records = list(read_rees46(write_file(tmp_path, "2019-Dec.csv", REES46)))

    fields = good_fields(records)
    assert fields[2] == event(
        event_id="2019-Dec:2", session_id="722ffea5-73c0-4924-8e8f-371ff8031af4",
        user_id="348405118", item_id="5848413", event_type="view",
        event_time=1575158405000, category="1487580007675986893", price=0.79,
    )
    assert fields[3]["event_type"] == "add_to_cart"
    assert fields[3]["category"] == "furniture.bathroom.bath"
    assert fields[3]["event_time"] == 1575158507000
    assert fields[4]["event_type"] == "purchase"
    assert fields[4]["price"] is None
    assert fields[4]["user_id"] is None


def test_rees46_malformed_rows(tmp_path):
    records = list(read_rees46(write_file(tmp_path, "2019-Dec.csv", REES46)))

    bad_time = error_of(records, 5)
    assert bad_time.reason == Reason.UNPARSEABLE
    assert bad_time.field == "event_time"
    assert "'2019-12-01 25:00:00 UTC' is not an ISO-8601 time" in bad_time.message

    short = error_of(records, 6)
    assert "8 comma-separated columns instead of 9" in short.message

    bad_price = error_of(records, 7)
    assert bad_price.field == "price"
    assert "column 'price': 'cheap' is not a number" in bad_price.message


def test_rees46_pass_through_for_validator(tmp_path):
    text = REES46_HEADER + (
        "2019-12-01 00:00:00 UTC,remove_from_cart,5712790,1487580005268456287,,f.o.x,6.27,"
        "576802932,51d85cb0-897f-48d2-918b-ad63965c12dc\n"
        "2019-12-01 00:00:00 UTC,view,5712790,1487580005268456287,,f.o.x,6.27,576802932,\n"
    )
    records = list(read_rees46(write_file(tmp_path, "2019-Dec.csv", text)))

    removed, no_session = records
    assert removed.fields["event_type"] == "remove_from_cart"
    assert no_session.fields["session_id"] is None
    with pytest.raises(InvalidEvent) as caught:
        validate_event(removed.fields, now_ms=NOW_MS)
    assert caught.value.reason == Reason.UNKNOWN_EVENT_TYPE
    with pytest.raises(InvalidEvent) as caught:
        validate_event(no_session.fields, now_ms=NOW_MS)
    assert caught.value.reason == Reason.MISSING_FIELD
    assert caught.value.field == "session_id"


# MovieLens


def test_movielens_dat_fields(tmp_path):
    records = list(read_movielens(write_file(tmp_path, "ratings.dat", MOVIELENS_DAT)))

    assert good_fields(records)[1] == event(
        event_id="ratings:1", session_id="1", user_id="1", item_id="1193",
        event_type="view", event_time=978300760000,
    )
    assert good_fields(records)[2]["event_time"] == 978302109000
    assert "3 '::'-separated columns instead of 4" in error_of(records, 3).message
    assert "'soon' is not unix seconds" in error_of(records, 4).message


def test_movielens_csv_with_crlf(tmp_path):
    records = list(read_movielens(write_file(tmp_path, "ratings.csv", MOVIELENS_CSV)))

    assert [record.line for record in records] == [2, 3]
    assert records[0].raw == "1,296,5.0,1147880044"
    assert records[0].fields == event(
        event_id="ratings:2", session_id="1", user_id="1", item_id="296",
        event_type="view", event_time=1147880044000,
    )


def test_movielens_time_before_2000_passes_through(tmp_path):
    path = write_file(tmp_path, "ratings.dat", "6::1::4::956703932\n7::1::4::900000000\n")

    records = list(read_movielens(path))

    assert records[1].fields["event_time"] == 900000000000
    with pytest.raises(InvalidEvent) as caught:
        validate_event(records[1].fields, now_ms=NOW_MS)
    assert caught.value.reason == Reason.TIME_TOO_EARLY


# Generic CSV and Parquet


def test_generic_csv_mapping(tmp_path):
    path = write_file(tmp_path, "shop.csv", GENERIC_CSV)

    records = list(read_generic(path, GENERIC_COLUMNS, time_unit="s", delimiter=";"))

    fields = good_fields(records)
    assert fields[2] == event(
        event_id="shop:2", session_id="s;1", user_id="u1", item_id="A-1", event_type="view",
        event_time=1411462780513, category="shoes", price=19.99,
    )
    assert fields[3] == event(
        event_id="shop:3", session_id="s2", item_id="B-2", event_type="purchase",
        event_time=1411462790000,
    )
    error = error_of(records, 4)
    assert error.field == "event_time"
    assert "column 'ts': 'soon' is not unix seconds" in error.message


def test_generic_csv_ms_and_constant_event_type(tmp_path):
    text = "id,session,item,when\ne-1,s1,i1,1433221332117\ne-2,s1,i2,1433221332117.5\n"
    columns = {"event_id": "id", "session_id": "session", "item_id": "item", "event_time": "when"}

    records = list(read_generic(write_file(tmp_path, "x.csv", text), columns, "ms", "click"))

    assert records[0].fields == event(
        event_id="e-1", session_id="s1", item_id="i1", event_type="click",
        event_time=1433221332117,
    )
    assert "is not unix milliseconds" in error_of(records, 3).message


def test_generic_csv_iso_time(tmp_path):
    text = "session,item,when\ns1,i1,2014-04-07T10:51:09.277Z\n"
    columns = {"session_id": "session", "item_id": "item", "event_time": "when"}

    [record] = list(read_generic(write_file(tmp_path, "x.csv", text), columns, "iso", "view"))

    assert record.fields["event_time"] == 1396867869277
    assert record.fields["event_id"] == "x:2"


@pytest.mark.parametrize(
    ("columns", "time_unit", "event_type", "message"),
    [
        ({"session_id": "a", "item_id": "b", "event_time": "c", "when": "d"}, "s", "view",
         "unknown field"),
        ({"item_id": "b", "event_time": "c"}, "s", "view", "lacks \\['session_id'\\]"),
        ({"session_id": "a", "item_id": "b", "event_time": "c"}, "s", None, "exactly once"),
        ({"session_id": "a", "item_id": "b", "event_time": "c", "event_type": "d"}, "s",
         "view", "exactly once"),
        ({"session_id": "a", "item_id": "b", "event_time": "c"}, "us", "view",
         "time_unit 'us' is not one of"),
    ],
)
def test_generic_rejects_bad_arguments(tmp_path, columns, time_unit, event_type, message):
    path = write_file(tmp_path, "x.csv", "a,b,c\n1,2,3\n")

    with pytest.raises(ValueError, match=message):
        read_generic(path, columns, time_unit, event_type)


def test_generic_csv_missing_column(tmp_path):
    path = write_file(tmp_path, "x.csv", "a,b\n1,2\n")
    columns = {"session_id": "a", "item_id": "b", "event_time": "c"}

    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['c'\]"):
        list(read_generic(path, columns, "s", "view"))


def test_generic_parquet_typed_columns(tmp_path):
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "sid": pa.array(["s1", "s2"]),
            "item": pa.array([214536502, 7], pa.int64()),
            "ts": pa.array([1411462780.513, 1411462790.0], pa.float64()),
            "cost": pa.array([1.5, None], pa.float64()),
        }
    )
    pq.write_table(table, path)
    columns = {"session_id": "sid", "item_id": "item", "event_time": "ts", "price": "cost"}

    records = list(read_generic(path, columns, "s", "click"))

    assert [record.line for record in records] == [1, 2]
    assert records[0].fields == event(
        event_id="events:1", session_id="s1", item_id="214536502", event_type="click",
        event_time=1411462780513, price=1.5,
    )
    assert records[1].fields["price"] is None
    assert json.loads(records[0].raw) == {
        "sid": "s1", "item": 214536502, "ts": 1411462780.513, "cost": 1.5,
    }


def test_generic_parquet_timestamp_column(tmp_path):
    path = tmp_path / "events.parquet"
    moment = datetime(2014, 4, 7, 10, 51, 9, 277000, tzinfo=timezone.utc)
    table = pa.table(
        {"sid": ["s1"], "item": ["i1"], "at": pa.array([moment], pa.timestamp("ms", tz="UTC"))}
    )
    pq.write_table(table, path)
    columns = {"session_id": "sid", "item_id": "item", "event_time": "at"}

    [record] = list(read_generic(path, columns, "s", "view"))

    assert record.fields["event_time"] == 1396867869277


def test_generic_parquet_rows_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(generic, "PARQUET_BATCH_ROWS", 2)
    path = tmp_path / "events.parquet"
    times = ["2014-04-07T10:51:09.277Z"] * 3 + ["noon", "2014-04-07T10:51:09.277Z"]
    pq.write_table(pa.table({"sid": ["s"] * 5, "item": ["i"] * 5, "at": times}), path)
    columns = {"session_id": "sid", "item_id": "item", "event_time": "at"}

    records = list(read_generic(path, columns, "iso", "view"))

    assert [record.line for record in records] == [1, 2, 3, 4, 5]
    error = error_of(records, 4)
    assert error.reason == Reason.UNPARSEABLE
    assert "column 'at': 'noon' is not an ISO-8601 time" in error.message
    assert json.loads(records[3].raw) == {"sid": "s", "item": "i", "at": "noon"}


def test_generic_parquet_number_with_iso_unit(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"sid": ["s"], "item": ["i"], "at": [1433221332117]}), path)
    columns = {"session_id": "sid", "item_id": "item", "event_time": "at"}

    [record] = list(read_generic(path, columns, "iso", "view"))

    assert "use time_unit 's' or 'ms'" in record.error.message


def test_generic_parquet_missing_column(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"sid": ["s"], "item": ["i"]}), path)
    columns = {"session_id": "sid", "item_id": "item", "event_time": "at"}

    with pytest.raises(ValueError, match=r"lack \['at'\]"):
        list(read_generic(path, columns, "s", "view"))


# Shared line handling


def test_non_utf8_line_is_error_record(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes(
        b"SessionId\tItemId\tTime\n1\t\xe9t\xe9\t1411462780.513\n2\t5\t1411462780.513\n"
    )

    records = list(read_session_rec(path))

    assert [record.line for record in records] == [2, 3]
    assert records[0].error.reason == Reason.UNPARSEABLE
    assert "not UTF-8" in records[0].error.message
    assert records[0].raw == "1\t\\xe9t\\xe9\t1411462780.513"
    assert records[1].fields["session_id"] == "2"


def test_byte_order_mark_before_header(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbfSessionId\tItemId\tTime\n1\t2\t1411462780.513\n")

    assert detect_format(path) == "session-rec"
    [record] = list(read_session_rec(path))
    assert record.fields["event_time"] == 1411462780513


def test_empty_file_yields_nothing(tmp_path):
    path = write_file(tmp_path, "empty.tsv", "\n\n")

    assert list(read_session_rec(path)) == []


# Format detection and registry


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("clicks.dat", CLICKS, "yoochoose"),
        ("buys.dat", BUYS, "yoochoose"),
        ("rec15_test.txt", SESSION_REC, "session-rec"),
        ("train-item-views.csv", DIGINETICA, "diginetica"),
        ("events.csv", RETAILROCKET, "retailrocket"),
        ("2019-Dec.csv", REES46, "rees46"),
        ("ratings.dat", MOVIELENS_DAT, "movielens"),
        ("ratings.csv", MOVIELENS_CSV, "movielens"),
    ],
)
def test_detect_format(tmp_path, name, text, expected):
    assert detect_format(write_file(tmp_path, name, text)) == expected


def test_detect_format_unknown(tmp_path):
    path = write_file(tmp_path, "mystery.csv", "a,b,c\n1,2,3\n")

    with pytest.raises(ValueError) as caught:
        detect_format(path)

    message = str(caught.value)
    assert str(path) in message
    assert "--format" in message
    for name in FORMATS:
        assert name in message


def test_detect_format_parquet(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"sid": ["s"]}), path)

    with pytest.raises(ValueError, match="--format generic"):
        detect_format(path)


def test_read_records_detects_and_passes_options(tmp_path):
    path = write_file(tmp_path, "events.csv", RETAILROCKET)

    records = list(read_records(path, session_gap=timedelta(minutes=10)))

    assert good_fields(records)[7]["session_id"] == "7-4"
    with pytest.raises(ValueError, match="unknown format 'csv'; choose one of: yoochoose"):
        read_records(path, format="csv")


# Every reader's good records are valid events


def write_every_fixture(tmp_path: Path) -> list[tuple[Path, str, dict]]:
    generic_path = write_file(tmp_path, "shop.csv", GENERIC_CSV)
    return [
        (write_file(tmp_path, "clicks.dat", CLICKS), "yoochoose", {}),
        (write_file(tmp_path, "buys.dat", BUYS), "yoochoose", {}),
        (write_file(tmp_path, "rec15_test.txt", SESSION_REC), "session-rec", {}),
        (write_file(tmp_path, "train-item-views.csv", DIGINETICA), "diginetica", {}),
        (write_file(tmp_path, "events.csv", RETAILROCKET), "retailrocket", {}),
        (write_file(tmp_path, "2019-Dec.csv", REES46), "rees46", {}),
        (write_file(tmp_path, "ratings.dat", MOVIELENS_DAT), "movielens", {}),
        (write_file(tmp_path, "ratings.csv", MOVIELENS_CSV), "movielens", {}),
        (generic_path, "generic",
         {"columns": GENERIC_COLUMNS, "time_unit": "s", "delimiter": ";"}),
    ]


def test_good_records_pass_validation(tmp_path):
    checked = 0
    for path, format_name, options in write_every_fixture(tmp_path):
        for record in read_records(path, format_name, **options):
            if record.fields is None:
                continue
            event_ = validate_event(record.fields, now_ms=NOW_MS)
            assert event_.to_dict() == record.fields, (path.name, record.line)
            checked += 1

    assert checked == 25
