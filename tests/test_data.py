import gzip

import numpy as np
import pytest
from synth import csv_rows, synth_faces, write_csv, write_folder

from ferkit.data.fer2013 import DataError, load_fer2013

HEADER = "emotion,pixels,Usage"


def _good_rows(n=5, usage="Training"):
    imgs, labs = synth_faces(n)
    return csv_rows(imgs, labs, usage)


def _write(tmp_path, lines, name="f.csv"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_csv_round_trip_three_splits(tmp_path):
    p = write_csv(tmp_path / "a.csv", {"Training": 21, "PublicTest": 14, "PrivateTest": 7})
    ds = load_fer2013(p)
    assert list(ds.splits) == ["Training", "PublicTest", "PrivateTest"]
    assert [len(s) for s in ds.splits.values()] == [21, 14, 7]
    imgs, labs = synth_faces(21, 0)
    tr = ds.splits["Training"]
    assert tr.images.dtype == np.uint8 and tr.images.shape == (21, 48, 48)
    assert tr.labels.dtype == np.int64
    np.testing.assert_array_equal(tr.images, imgs)
    np.testing.assert_array_equal(tr.labels, labs)
    assert ds.test_splits == ["PublicTest", "PrivateTest"]


def test_gzip_and_crlf_and_quotes(tmp_path):
    rows = _good_rows(3)
    quoted = [r.split(",")[0] + ',"' + r.split(",")[1] + '",' + r.split(",")[2] for r in rows]
    p = tmp_path / "b.csv.gz"
    with gzip.open(p, "wt", newline="") as fh:
        fh.write("\r\n".join([HEADER, *quoted]) + "\r\n")
    ds = load_fer2013(p)
    np.testing.assert_array_equal(ds.splits["Training"].images, synth_faces(3)[0])


def test_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    p = write_csv(tmp_path / "c.csv", {"Training": 7})
    first = load_fer2013(p)
    import ferkit.data.fer2013 as data

    monkeypatch.setattr(data, "_read_csv", lambda *a, **k: pytest.fail("cache not used"))
    again = load_fer2013(p)
    np.testing.assert_array_equal(first.splits["Training"].images, again.splits["Training"].images)
    monkeypatch.undo()
    write_csv(p, {"Training": 14})  # changed size and mtime: the cache must not answer
    assert len(load_fer2013(p).splits["Training"]) == 14


def test_folder_layout(tmp_path):
    root = write_folder(tmp_path / "imgs", n_train=14, n_test=7)
    # A file named PrivateTest_* under test/ belongs to PrivateTest, whatever its folder.
    from PIL import Image

    Image.fromarray(synth_faces(1)[0][0]).save(root / "test" / "happy" / "PrivateTest_99.png")
    ds = load_fer2013(root)
    assert ds.format == "folder"
    assert {k: len(v) for k, v in ds.splits.items()} == {
        "Training": 14,
        "PublicTest": 7,
        "PrivateTest": 1,
    }
    assert ds.splits["PrivateTest"].labels.tolist() == [3]


def test_folder_errors_and_resize(tmp_path):
    from PIL import Image

    root = write_folder(tmp_path / "imgs", n_train=7, n_test=7)
    big = root / "train" / "sad" / "Training_big.png"
    Image.fromarray(np.zeros((60, 50), np.uint8)).save(big)
    with pytest.raises(DataError) as e:
        load_fer2013(root)
    assert e.value.file == str(big) and "50x60, not 48x48" in e.value.reason
    assert len(load_fer2013(root, resize=True).splits["Training"]) == 8
    big.write_bytes(b"not an image at all")
    with pytest.raises(DataError) as e:
        load_fer2013(root, resize=True)
    assert e.value.file == str(big) and "unreadable image" in e.value.reason


def _set_first_pixel(row: str, token: str) -> str:
    label, pixels, usage = row.split(",")
    return ",".join([label, token + " " + pixels.split(" ", 1)[1], usage])


BAD_ROWS = {
    "pixel count": (
        lambda r: r.rsplit(" ", 1)[0] + ",Training",
        "2303 pixel values (expected 2304",
    ),
    "value range": (lambda r: _set_first_pixel(r, "256"), "pixel 1 is 256, outside 0-255"),
    "not integer": (lambda r: _set_first_pixel(r, "1.5"), "pixel 1 is '1.5', not an integer"),
    "label range": (lambda r: "7" + r[1:], "label '7' is not an integer in 0-6"),
    "usage": (lambda r: r.rsplit(",", 1)[0] + ",Validation", "unknown Usage 'Validation'"),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_row_names_file_line_reason(tmp_path, case):
    make_bad, reason = BAD_ROWS[case]
    rows = _good_rows(5)
    rows[2] = make_bad(rows[2])
    p = _write(tmp_path, [HEADER, *rows])
    with pytest.raises(DataError) as e:
        load_fer2013(p)
    assert e.value.file == str(p)
    assert e.value.line == 4  # header is line 1, the bad row is the third data row
    assert reason in e.value.reason
    assert str(e.value).startswith(f"{p}:4: ")


def test_wrong_header(tmp_path):
    p = _write(tmp_path, ["label,pixels,Usage", *_good_rows(2)])
    with pytest.raises(DataError) as e:
        load_fer2013(p)
    assert (e.value.file, e.value.line) == (str(p), 1) and "wrong header" in e.value.reason


def test_missing_header(tmp_path):
    p = _write(tmp_path, _good_rows(2))
    with pytest.raises(DataError) as e:
        load_fer2013(p)
    assert e.value.line == 1 and "wrong header" in e.value.reason


def test_empty_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(DataError) as e:
        load_fer2013(p)
    assert (e.value.file, e.value.line, e.value.reason) == (str(p), 1, "empty file")


def test_header_only(tmp_path):
    p = _write(tmp_path, [HEADER])
    with pytest.raises(DataError, match="no data rows"):
        load_fer2013(p)


def test_skip_reports_count_and_lines(tmp_path):
    rows = _good_rows(6)
    rows[1] = "9" + rows[1][1:]
    rows[4] = rows[4].rsplit(",", 1)[0] + ",Nope"
    p = _write(tmp_path, [HEADER, *rows])
    ds = load_fer2013(p, on_error="skip")
    assert len(ds.splits["Training"]) == 4
    assert ds.n_skipped == 2
    assert [b.line for b in ds.skipped] == [3, 6]


def test_missing_split_lists_present(tmp_path):
    ds = load_fer2013(write_csv(tmp_path / "d.csv", {"Training": 7}))
    with pytest.raises(DataError, match=r"no split 'PublicTest' \(splits present: Training\)"):
        ds.split("PublicTest")


@pytest.mark.slow
def test_real_dev_file(real_fer):
    ds = load_fer2013(real_fer)
    s = ds.summary()["splits"]
    assert s["Training"]["n"] == 28709 and s["PublicTest"]["n"] == 3589
    assert list(s["Training"]["counts"].values()) == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert list(s["PublicTest"]["counts"].values()) == [467, 56, 496, 895, 653, 415, 607]


@pytest.mark.parametrize("name", ["copy.npz", "copy.npz.xz"])
def test_compact_copy_round_trip(tmp_path, name):
    from ferkit.data.fer2013 import save_compact

    src = load_fer2013(write_csv(tmp_path / "a.csv", {"Training": 21, "PublicTest": 7}))
    back = load_fer2013(save_compact(src, tmp_path / name), cache=False)
    assert back.format == "compact" and list(back.splits) == ["Training", "PublicTest"]
    for split in src.splits:
        np.testing.assert_array_equal(back.splits[split].images, src.splits[split].images)
        np.testing.assert_array_equal(back.splits[split].labels, src.splits[split].labels)


def test_compact_copy_bad_files(tmp_path):
    from ferkit.data.fer2013 import save_compact

    ds = load_fer2013(write_csv(tmp_path / "a.csv", {"Training": 7}))
    with pytest.raises(ValueError, match="ends in .npz or .npz.xz"):
        save_compact(ds, tmp_path / "x.zip")
    (tmp_path / "junk.npz.xz").write_bytes(b"not xz at all")
    with pytest.raises(DataError, match="junk.npz.xz: not a ferkit compact data file"):
        load_fer2013(tmp_path / "junk.npz.xz", cache=False)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))  # an npz, but not ours
    with pytest.raises(DataError, match="other.npz: not a ferkit compact data file"):
        load_fer2013(tmp_path / "other.npz", cache=False)


def test_multi_member_gzip_reads_every_member(tmp_path):
    """``cat a.gz b.gz`` is one valid gzip file: all of it is data, not just the first member."""
    rows = _good_rows(6)
    p = tmp_path / "cat.csv.gz"
    p.write_bytes(
        gzip.compress(("\n".join([HEADER, *rows[:2]]) + "\n").encode())
        + gzip.compress(("\n".join(rows[2:]) + "\n").encode())
    )
    ds = load_fer2013(p)
    np.testing.assert_array_equal(ds.splits["Training"].images, synth_faces(6)[0])


@pytest.mark.parametrize(
    "tail, reason",
    [(b"garbage!", "8 bytes of trailing garbage after gzip member 1"), (None, "truncated gzip")],
)
def test_gzip_trailing_garbage_or_truncation_is_refused(tmp_path, tail, reason):
    blob = gzip.compress(("\n".join([HEADER, *_good_rows(3)]) + "\n").encode())
    p = tmp_path / "bad.csv.gz"
    p.write_bytes(blob + tail if tail else blob[: len(blob) // 2])
    with pytest.raises(DataError) as e:
        load_fer2013(p)
    assert e.value.file == str(p) and reason in e.value.reason


def test_gzip_nul_padding_is_accepted(tmp_path):
    blob = gzip.compress(("\n".join([HEADER, *_good_rows(3)]) + "\n").encode())
    p = tmp_path / "padded.csv.gz"
    p.write_bytes(blob + b"\0" * 512)  # tape-style padding, which gzip itself accepts
    assert len(load_fer2013(p).splits["Training"]) == 3


def test_decompression_bomb_in_a_folder_is_a_bad_row(tmp_path, monkeypatch):
    from PIL import Image

    root = write_folder(tmp_path / "imgs", n_train=7, n_test=7)
    bomb = root / "train" / "sad" / "Training_bomb.png"
    Image.fromarray(np.zeros((400, 400), np.uint8)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000)  # 160,000 px: over 2x the limit
    with pytest.raises(DataError) as e:
        load_fer2013(root, resize=True)
    assert e.value.file == str(bomb) and "decompression bomb" in e.value.reason
    ds = load_fer2013(root, resize=True, on_error="skip")
    assert ds.n_skipped == 1 and len(ds.splits["Training"]) == 7
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # 1-2x: PIL only warns
    with pytest.raises(DataError, match="decompression bomb"):
        load_fer2013(root, resize=True)


def test_a_photo_as_data_is_named_not_dumped(tmp_path):
    from PIL import Image

    p = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(p)
    with pytest.raises(DataError) as e:
        load_fer2013(p)
    assert "binary content" in e.value.reason and "ferkit predict" in e.value.reason
    assert "\\x" not in str(e.value) and "JFIF" not in str(e.value)
