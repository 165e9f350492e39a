"""Command-line parsing and the checkpoint lookup behind `seqrec features submit --from-checkpoint`."""

import os

import pytest

from cli.features_command import latest_checkpoint
from cli.main import build_parser


def test_latest_checkpoint_picks_newest_completed(tmp_path):
    for job, number, mtime in (("job1", 3, 100), ("job1", 7, 300), ("job2", 2, 200)):
        folder = tmp_path / job / f"chk-{number}"
        folder.mkdir(parents=True)
        (folder / "_metadata").write_bytes(b"x")
        os.utime(folder, (mtime, mtime))
    # A newer checkpoint without _metadata is still being written.
    (tmp_path / "job2" / "chk-9").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "job1" / "chk-7"


def test_latest_checkpoint_without_any_exits(tmp_path):
    with pytest.raises(SystemExit) as caught:
        latest_checkpoint(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_features_options_pass_through():
    args = build_parser().parse_args(["features", "submit", "--from-checkpoint", "latest", "--", "--bounded", "--top-k", "5"])
    assert args.action == "submit"
    assert args.from_checkpoint == "latest"
    assert args.options == ["--", "--bounded", "--top-k", "5"]


def test_replay_rejects_bad_column_mapping(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "f.csv", "--columns", "session_id"])
    assert "FIELD=COLUMN" in capsys.readouterr().err
