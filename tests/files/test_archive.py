"""Unpack and validate: every container read right, every bad input refused with its typed error
before anything is uploaded, and memory flat whatever the input size. Real files in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import time
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.files.archive import (
    ArchiveBomb,
    Container,
    CorruptArchive,
    CsvExpectation,
    EmptyFile,
    FileRefused,
    Limits,
    UnsafeMember,
    WrongFormat,
    detect,
    members,
    validate,
)

CSV = b'id,name,qty\n1,apple,3\n2,"pear, green",5\n3,"plum\nred",7\n'
HEADER = ("id", "name", "qty")
EXPECT = CsvExpectation(header=["ID", " Name ", "qty"])


# --- writers ----------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def tar_bytes(entries: list[tarfile.TarInfo | tuple[str, bytes]], gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as t:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                t.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                t.addfile(info, io.BytesIO(entry[1]))
    return buffer.getvalue()


def zip_bytes(entries: list[zipfile.ZipInfo | tuple[str, bytes]], stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression=method) as z:
        warnings.simplefilter("ignore")  # a duplicate name is one of the cases under test
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                z.writestr(entry, b"x")
            else:
                z.writestr(entry[0], entry[1])
    return buffer.getvalue()


def tar_entry(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def refused(kind: type[FileRefused], path: Path, expect: CsvExpectation | None = EXPECT,
            limits: Limits | None = None) -> FileRefused:  # fmt: skip
    with pytest.raises(kind) as caught:
        validate(path, limits, expect)
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return caught.value


# --- good inputs, every container -------------------------------------------------------------

GOOD: dict[str, tuple[str, Callable[[], bytes], Container, str]] = {
    "plain": ("in.csv", lambda: CSV, Container.PLAIN, "in.csv"),
    "gzip": ("in.csv.gz", lambda: gzip.compress(CSV), Container.GZIP, "in.csv"),
    "gzip-multi": (
        "in.csv.gz",
        lambda: gzip.compress(CSV[:30]) + gzip.compress(CSV[30:]),
        Container.GZIP,
        "in.csv",
    ),
    "zip": (
        "in.zip",
        lambda: zip_bytes([("dir/", b""), ("dir/a.csv", CSV)]),
        Container.ZIP,
        "dir/a.csv",
    ),
    "tar": (
        "in.tar",
        lambda: tar_bytes([tar_entry("d", tarfile.DIRTYPE), ("d/a.csv", CSV)]),
        Container.TAR,
        "d/a.csv",
    ),
    "tar.gz": ("in.tgz", lambda: tar_bytes([("a.csv", CSV)], gz=True), Container.TAR_GZ, "a.csv"),
}


@pytest.mark.parametrize("case", GOOD.values(), ids=GOOD.keys())
def test_a_good_csv_validates_in_every_container(tmp_path: Path, case: tuple) -> None:
    name, make, container, member = case
    result = validate(write(tmp_path / name, make()), expect=EXPECT)
    assert result.container is container
    assert [(m.name, m.rows, m.header, m.unpacked_bytes) for m in result.members] == [
        (member, 3, HEADER, len(CSV))
    ]
    assert result.rows == 3


def test_directories_are_skipped_and_every_file_is_a_member(tmp_path: Path) -> None:
    path = write(tmp_path / "two.zip", zip_bytes([("a/", b""), ("a/1.csv", CSV), ("2.csv", CSV)]))
    assert [m.name for m in validate(path, expect=EXPECT).members] == ["a/1.csv", "2.csv"]
    assert [m.name for m in members(path, Limits())] == ["a/1.csv", "2.csv"]


def test_the_container_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    lying = write(tmp_path / "data.csv", gzip.compress(CSV))
    assert detect(lying) is Container.GZIP
    [facts] = validate(lying, expect=EXPECT).members
    assert (facts.name, facts.rows) == ("data.csv", 3)
    assert detect(write(tmp_path / "data.zip", CSV)) is Container.PLAIN
    assert detect(write(tmp_path / "x.gz", tar_bytes([("a.csv", CSV)]))) is Container.TAR


def test_header_matches_ignoring_case_whitespace_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbf Id ,NAME,Qty\r\n1,a,2\r\n")
    [facts] = validate(path, expect=EXPECT).members
    assert (facts.header, facts.rows) == (("Id", "NAME", "Qty"), 1)


def test_quoted_delimiter_and_newline_make_one_row_and_lines_stay_counted(tmp_path: Path) -> None:
    data = b'a,b\n1,"x,\ny\nz"\n2,"q""r"\n3\n'
    error = refused(WrongFormat, write(tmp_path / "q.csv", data), CsvExpectation())
    assert "line 6: 1 fields, expected 2" in str(error)
    [facts] = validate(write(tmp_path / "ok.csv", data[:-2]), expect=CsvExpectation()).members
    assert facts.rows == 2


def test_without_expectation_only_the_container_is_checked(tmp_path: Path) -> None:
    result = validate(write(tmp_path / "blob.gz", gzip.compress(b"\x00\x01binary")))
    assert [(m.name, m.unpacked_bytes, m.rows) for m in result.members] == [("blob", 8, None)]


# --- empty ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,data",
    [
        ("zero.csv", b""),
        ("header-only.csv", b"id,name,qty\n"),
        ("zero.csv.gz", gzip.compress(b"")),
        ("dirs-only.zip", zip_bytes([("d/", b"")])),
        ("empty.zip", zip_bytes([])),
        ("empty.tar", tar_bytes([])),
    ],
)
def test_empty_inputs_are_refused(tmp_path: Path, name: str, data: bytes) -> None:
    assert refused(EmptyFile, write(tmp_path / name, data)).error_class == "empty"


# --- corrupt ----------------------------------------------------------------------------------

BIG_CSV = b"id,name,qty\n" + b"".join(b"%d,name-%d,%d\n" % (i, i * 7, i % 13) for i in range(20000))


@pytest.mark.parametrize("cut", [1, 4, 8, 100, 5000])
def test_a_truncated_gzip_is_corrupt(tmp_path: Path, cut: int) -> None:
    packed = gzip.compress(BIG_CSV)
    error = refused(CorruptArchive, write(tmp_path / "cut.csv.gz", packed[:-cut]))
    assert error.error_class == "corrupt"


def test_a_gzip_cut_only_in_its_trailer_fails_at_its_end(tmp_path: Path) -> None:
    path = write(tmp_path / "trailer.csv.gz", gzip.compress(BIG_CSV)[:-4])
    iterator = members(path, Limits())  # held: the streams live as long as their iterator
    member = next(iterator)
    got = 0
    with pytest.raises(CorruptArchive, match="truncated"):
        while chunk := member.stream.read(4096):
            got += len(chunk)
    assert len(BIG_CSV) - 64 * 1024 < got <= len(BIG_CSV)  # the data read, the trailer missing


@pytest.mark.parametrize("where", ["deflate", "crc", "size"])
def test_a_gzip_with_a_flipped_byte_is_corrupt(tmp_path: Path, where: str) -> None:
    packed = bytearray(gzip.compress(BIG_CSV))
    index = {"deflate": len(packed) // 2, "crc": -8, "size": -1}[where]
    packed[index] ^= 0x55
    refused(CorruptArchive, write(tmp_path / "flip.csv.gz", bytes(packed)))


def test_a_zip_member_with_a_bad_crc_is_corrupt(tmp_path: Path) -> None:
    packed = bytearray(zip_bytes([("a.csv", CSV)], stored=True))
    packed[packed.index(b"apple")] ^= 0x01  # 'apple' -> '`pple': same length, different CRC
    error = refused(CorruptArchive, write(tmp_path / "crc.zip", bytes(packed)))
    assert "CRC" in str(error) and error.member == "a.csv"


def test_an_unread_zip_member_is_still_crc_checked(tmp_path: Path) -> None:
    packed = bytearray(zip_bytes([("a.csv", CSV), ("b.csv", CSV)], stored=True))
    packed[packed.index(b"apple")] ^= 0x01
    path = write(tmp_path / "crc.zip", bytes(packed))
    with pytest.raises(CorruptArchive):
        for _member in members(path, Limits()):
            pass  # the caller reads nothing; the iterator reads and checks it anyway


@pytest.mark.parametrize("cut", [10, 200])
def test_a_zip_without_its_central_directory_is_corrupt(tmp_path: Path, cut: int) -> None:
    packed = zip_bytes([("a.csv", CSV), ("b.csv", BIG_CSV)])
    refused(CorruptArchive, write(tmp_path / "cut.zip", packed[:-cut]))


def test_a_tar_cut_inside_a_member_is_corrupt(tmp_path: Path) -> None:
    packed = tar_bytes([("a.csv", BIG_CSV)])
    refused(CorruptArchive, write(tmp_path / "cut.tar", packed[: len(packed) // 2]))


def test_a_tar_cut_between_members_is_corrupt(tmp_path: Path) -> None:
    # tarfile itself takes a missing header after the first member as a normal end
    packed = tar_bytes([("a.csv", CSV), ("b.csv", CSV)])
    with tarfile.open(fileobj=io.BytesIO(packed)) as whole:
        second = whole.getmembers()[1].offset  # where the second member's header starts
    error = refused(CorruptArchive, write(tmp_path / "cut.tar", packed[:second]))
    assert "end-of-archive" in str(error)


def test_a_truncated_tar_gz_is_corrupt(tmp_path: Path) -> None:
    packed = tar_bytes([("a.csv", BIG_CSV)], gz=True)
    refused(CorruptArchive, write(tmp_path / "cut.tar.gz", packed[:-6]))


# --- bombs ------------------------------------------------------------------------------------


ZEROS = 50 << 20


def bomb(path: Path, container: str) -> Path:
    if container == "gzip":  # written a block at a time, as a real bomb would be made
        with gzip.open(path, "wb", compresslevel=9) as out:
            out.write(b"id,name\n")
            for _ in range(ZEROS >> 20):
                out.write(bytes(1 << 20))
        return path
    if container == "zip":
        return write(path, zip_bytes([("zeros.csv", bytes(ZEROS))]))
    return write(path, tar_bytes([("zeros.csv", bytes(ZEROS))], gz=True))


@pytest.mark.parametrize("container", ["gzip", "zip", "tar.gz"])
def test_a_ratio_bomb_is_stopped_early(tmp_path: Path, container: str) -> None:
    path = bomb(tmp_path / "bomb.bin", container)
    assert detect(path).value == container
    delivered = 0
    started = time.perf_counter()
    with pytest.raises(ArchiveBomb, match="times its size") as caught:
        for member in members(path, Limits()):
            while chunk := member.stream.read(64 * 1024):
                delivered += len(chunk)
    assert caught.value.error_class == "bomb"
    assert delivered < 8 << 20  # of 50 MiB
    assert time.perf_counter() - started < 2


def test_the_unpacked_byte_limit_stops_the_stream_at_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "big.csv.gz", gzip.compress(BIG_CSV))
    limit = 100_000
    iterator = members(path, Limits(max_unpacked_bytes=limit))
    member = next(iterator)
    delivered = 0
    with pytest.raises(ArchiveBomb, match=f"more than {limit} bytes"):
        while chunk := member.stream.read(4096):
            delivered += len(chunk)
    assert delivered <= limit < len(BIG_CSV)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_too_many_entries_is_a_bomb(tmp_path: Path, kind: str) -> None:
    entries: list = [(f"{i}.csv", CSV) for i in range(5)]
    data = zip_bytes(entries) if kind == "zip" else tar_bytes(entries)
    path = write(tmp_path / f"many.{kind}", data)
    error = refused(ArchiveBomb, path, limits=Limits(max_entries=4))
    assert "more than 4 entries" in str(error)
    assert len(validate(path, Limits(max_entries=5), EXPECT).members) == 5


# --- unsafe members ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry,problem",
    [
        (("../evil.csv", CSV), "'..'"),
        (("ok/../../evil.csv", CSV), "'..'"),
        (("/etc/evil.csv", CSV), "absolute"),
        (tar_entry("link.csv", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (tar_entry("hard.csv", tarfile.LNKTYPE, "a.csv"), "hard link"),
        (tar_entry("dev", tarfile.CHRTYPE), "character device"),
        (tar_entry("fifo", tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path: Path, entry: object, problem: str) -> None:
    path = write(tmp_path / "bad.tar", tar_bytes([("a.csv", CSV), entry]))  # type: ignore[list-item]
    error = refused(UnsafeMember, path)
    assert error.error_class == "unsafe_path" and problem in str(error)


def zip_symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize(
    "entry,problem",
    [
        (("../evil.csv", CSV), "'..'"),
        (("..\\evil.csv", CSV), "'..'"),
        (("/evil.csv", CSV), "absolute"),
        (("C:/evil.csv", CSV), "absolute"),
        (zip_symlink("link.csv"), "link"),
        (("a.csv", CSV), "twice"),
    ],
)
def test_unsafe_zip_members_are_refused(tmp_path: Path, entry: object, problem: str) -> None:
    data = zip_bytes([("a.csv", CSV), entry])  # type: ignore[list-item]
    error = refused(UnsafeMember, write(tmp_path / "bad.zip", data))
    assert problem in str(error)


# --- format -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,data,detail",
    [
        ("png.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not utf-8"),
        ("nul.csv", b"id,name,qty\n1,a\x00b,2\n", "line 2: a NUL byte"),
        ("data.csv", b"BZh91AY&SY" + b"\x00" * 40, "bzip2"),
        ("data.csv", b"\xfd7zXZ\x00" + b"\x00" * 40, "xz"),
    ],
)
def test_binary_content_where_csv_is_expected_is_wrong_format(
    tmp_path: Path, name: str, data: bytes, detail: str
) -> None:
    error = refused(WrongFormat, write(tmp_path / name, data))
    assert error.error_class == "format" and detail in str(error)


def test_a_wrong_header_names_the_column(tmp_path: Path) -> None:
    error = refused(WrongFormat, write(tmp_path / "h.csv", b"id,title,qty\n1,a,2\n"))
    assert "column 2 is 'title', expected 'Name'" in str(error)
    error = refused(WrongFormat, write(tmp_path / "h2.csv", b"id,name\n1,a\n"))
    assert "has 2 columns, expected 3" in str(error)


def test_a_line_with_another_column_count_is_named(tmp_path: Path) -> None:
    data = gzip.compress(b"id,name,qty\n1,a,2\n2,b\n")
    error = refused(WrongFormat, write(tmp_path / "w.csv.gz", data))
    assert "line 3: 2 fields, expected 3" in str(error) and error.member == "w.csv"
    blank = refused(WrongFormat, write(tmp_path / "b.csv", b"id,name,qty\n1,a,2\n\n"))
    assert "line 3 is blank" in str(blank)


@pytest.mark.parametrize("line", [2, 7000])
def test_invalid_utf8_is_named_by_line(tmp_path: Path, line: int) -> None:
    rows = [b"%d,name,1\n" % i for i in range(1, 9000)]
    rows[line - 2] = b"%d,caf\xe9,1\n" % line  # latin-1, not utf-8
    data = b"id,name,qty\n" + b"".join(rows)
    error = refused(WrongFormat, write(tmp_path / "latin.csv", data))
    assert f"line {line}: bytes that are not utf-8" in str(error)
    latin = CsvExpectation(encoding="latin-1", header=HEADER)
    assert validate(tmp_path / "latin.csv", expect=latin).rows == 8999


def test_an_unterminated_quote_is_wrong_format(tmp_path: Path) -> None:
    error = refused(WrongFormat, write(tmp_path / "q.csv", b'id,name,qty\n1,"open,2\n3,b,4\n'))
    assert "line 2: not valid CSV" in str(error)


# --- memory -----------------------------------------------------------------------------------


def test_memory_stays_flat_for_a_large_gzip(tmp_path: Path) -> None:
    # wide rows: the bytes are what must not pile up, and tracemalloc slows every allocation
    rows_per_block = 2000
    digests = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(rows_per_block)]
    block = b"".join(
        b'%d,"%s, %s",%s\n' % (i, d.encode(), d[::-1].encode() * 4, d[:8].encode())
        for i, d in enumerate(digests)
    )
    copies = (50 << 20) // len(block)
    path = tmp_path / "large.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:  # written a block at a time
        out.write(b"id,name,qty\n")
        for _ in range(copies):
            out.write(block)
    tracemalloc.start()
    try:
        result = validate(path, Limits(), EXPECT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.rows == rows_per_block * copies
    assert result.unpacked_bytes > 48 << 20
    assert peak < 20 << 20, f"peak {peak} bytes"
