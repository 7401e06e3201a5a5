"""Unpack and validate an incoming file before any of it is stored or loaded.

The file importer takes files from places it does not control (FTP, SFTP, a folder, S3). This
step runs first, with no database and no network, so a bad file is refused with a typed error
whose ``error_class`` the journal records, instead of being half-loaded. What each check
protects against:

* Container by magic bytes, never by name: ``x.csv`` may be a gzip and ``x.zip`` a CSV; the name
  is what the sender typed, the bytes are what arrived. bzip2/xz/zstd/7z/rar are named and
  refused rather than mistaken for text.
* ``EmptyFile``: a zero-byte file or a header without rows is usually a failed export upstream;
  loading it would read as "nothing happened today".
* ``CorruptArchive``: every member is read to its end, so the gzip CRC and length trailer and the
  zip CRC are checked, and a tar must reach its end-of-archive block. Without that, a file cut
  off in transfer loads silently short.
* ``ArchiveBomb``: the entry count, the unpacked bytes and the unpacked/packed ratio are checked
  while bytes stream (the ratio against the compressed bytes read so far), so a small file that
  inflates to terabytes is stopped after a few MB, not after filling memory or disk.
* ``UnsafeMember``: absolute names, ``..`` components, links and devices, stricter than tarfile's
  ``filter="data"`` (PEP 706), which rewrites absolute names and allows inner links. Member names
  become object keys and, in other tools, paths; a crafted one must reach neither. A name seen
  twice is refused as well, since one copy would shadow the other.
* ``WrongFormat``: encoding, NUL bytes (binary content), header, quoting and a constant column
  count are checked record by record, so COPY cannot fail halfway and the error names the
  member and line.

Memory stays flat whatever the input size: nothing is extracted to disk or read whole. Members
are streams, CSV is decoded incrementally, lines are capped in length, the csv module caps
fields (``csv.field_size_limit``) and tar header records are capped in size.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, ClassVar, TypeVar

_T = TypeVar("_T")

GIB = 1 << 30
_CHUNK = 64 * 1024
# the ratio is only meaningful once some bytes have come out: small text compresses well
_RATIO_GRACE = 1 << 20
# tarfile reads a pax or GNU long-name record whole; a bigger one is an attack, not a header
_MAX_TAR_RECORD = 8 << 20
_HEAD = 512
# the most asked of a decompressor at once: zipfile reads as many compressed bytes as asked, and
# the ratio is measured against the bytes read, so this bounds how far a bomb gets
_INNER_READ = 16 * 1024
# average central-directory bytes per zip entry allowed: a 46-byte record, its name and extras
_MAX_ZIP_DIRECTORY_ENTRY = 4096
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_UNSUPPORTED = (
    (re.compile(rb"BZh[1-9]1AY&SY"), "bzip2"),
    (re.compile(re.escape(b"\xfd7zXZ\x00")), "xz"),
    (re.compile(re.escape(b"\x28\xb5\x2f\xfd")), "zstd"),
    (re.compile(re.escape(b"7z\xbc\xaf\x27\x1c")), "7z"),
    (re.compile(re.escape(b"Rar!\x1a\x07")), "rar"),
)
_CORRUPTION = (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, tarfile.TarError)
_TAR_KINDS = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}
_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- errors -----------------------------------------------------------------------------------


class FileRefused(Exception):
    """An input the importer must not load. ``error_class`` names the kind for the journal."""

    error_class: ClassVar[str] = "refused"
    advice: ClassVar[str] = "inspect the file by hand"

    def __init__(self, file: str, detail: str, member: str | None = None) -> None:
        self.file = file
        self.member = member
        self.detail = detail
        where = repr(file) if member is None else f"{file!r}, member {member!r}"
        super().__init__(_one_line(f"{where}: {detail}; {self.advice}"))


class EmptyFile(FileRefused):
    error_class = "empty"
    advice = "ask the sender to re-export it (an empty file usually means a failed export)"


class CorruptArchive(FileRefused):
    error_class = "corrupt"
    advice = "fetch it again; if it stays damaged, ask the sender to re-send it"


class ArchiveBomb(FileRefused):
    error_class = "bomb"
    advice = "do not unpack it; if it is genuine, raise the importer's limits"


class UnsafeMember(FileRefused):
    error_class = "unsafe_path"
    advice = "do not unpack it; ask the sender for plain files with relative names"


class WrongFormat(FileRefused):
    error_class = "format"
    advice = "ask the sender for the agreed format, or correct the importer's expectation"


def _one_line(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _corrupt_detail(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "is cut off before its end (truncated)"
    return f"is damaged ({exc or type(exc).__name__})"


# --- configuration and results ----------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What an input may expand to. ``max_ratio`` is unpacked bytes per packed byte read."""

    max_entries: int = 1000
    max_unpacked_bytes: int = 20 * GIB
    max_ratio: float = 200
    min_bytes: int = 1


@dataclass(frozen=True)
class CsvExpectation:
    """What every data member must look like. ``header``, when given, is compared to the first
    line case-insensitively after stripping whitespace and a BOM; ``columns`` defaults to the
    width of the first line."""

    encoding: str = "utf-8"
    delimiter: str = ","
    header: Sequence[str] | None = None
    has_header: bool = True
    columns: int | None = None
    quotechar: str = '"'
    max_line_chars: int = 1 << 20

    def __post_init__(self) -> None:
        codecs.lookup(self.encoding)  # an unknown encoding fails at configuration, not per file
        if self.header is not None:
            object.__setattr__(self, "header", tuple(self.header))
            if not self.has_header:
                raise ValueError("header given but has_header is False")
            if self.columns is not None and self.columns != len(self.header):
                raise ValueError("columns differs from the number of header columns")


class Container(StrEnum):
    PLAIN = "plain"
    GZIP = "gzip"
    ZIP = "zip"
    TAR = "tar"
    TAR_GZ = "tar.gz"


@dataclass(frozen=True)
class Member:
    """One data file inside the input. ``stream`` enforces the limits while read and raises
    CorruptArchive at its end on a CRC mismatch or truncation; it is valid until the iterator
    that yielded it advances."""

    name: str
    stream: io.BufferedReader
    _counter: _MemberStream = field(repr=False, compare=False)

    @property
    def unpacked_bytes(self) -> int:
        return self._counter.count


@dataclass(frozen=True)
class MemberFacts:
    name: str
    unpacked_bytes: int
    rows: int | None  # data lines (records), without the header; None without a CsvExpectation
    header: tuple[str, ...] | None


@dataclass(frozen=True)
class Validated:
    path: Path
    container: Container
    members: tuple[MemberFacts, ...]

    @property
    def unpacked_bytes(self) -> int:
        return sum(m.unpacked_bytes for m in self.members)

    @property
    def rows(self) -> int | None:
        counts = [m.rows for m in self.members]
        return None if None in counts else sum(c or 0 for c in counts)


# --- byte accounting --------------------------------------------------------------------------


class _CountingFile(io.RawIOBase):
    """The input on disk, counting the bytes actually read: the packed side of the ratio."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._raw = io.FileIO(path, "r")
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = self._raw.readinto(buffer) or 0
        self.count += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass
class _Budget:
    """Unpacked bytes so far across the whole input, held against the limits."""

    limits: Limits
    packed: _CountingFile
    file: str
    unpacked: int = 0

    def allowance(self, wanted: int) -> int:
        # one byte past the limit is enough to know it is exceeded; never decompress more
        return min(wanted, self.limits.max_unpacked_bytes - self.unpacked + 1)

    def charge(self, n: int, member: str | None) -> None:
        self.unpacked += n
        limits = self.limits
        if self.unpacked > limits.max_unpacked_bytes:
            detail = f"unpacks to more than {limits.max_unpacked_bytes} bytes"
            raise ArchiveBomb(self.file, detail, member)
        ceiling = limits.max_ratio * max(self.packed.count, 1)
        if self.unpacked > _RATIO_GRACE and self.unpacked > ceiling:
            detail = (
                f"unpacks to more than {limits.max_ratio:g} times its size "
                f"({self.unpacked} bytes from {self.packed.count})"
            )
            raise ArchiveBomb(self.file, detail, member)


class _MemberStream(io.RawIOBase):
    """A member's bytes, charged to the budget as read; corruption becomes CorruptArchive."""

    def __init__(self, inner: IO[bytes], name: str | None, budget: _Budget) -> None:
        super().__init__()
        self._inner = inner
        self._name = name
        self._budget = budget
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            data = self._inner.read(self._budget.allowance(min(len(buffer), _INNER_READ)))
        except _CORRUPTION as exc:
            raise CorruptArchive(self._budget.file, _corrupt_detail(exc), self._name) from exc
        n = len(data)
        buffer[:n] = data
        self.count += n
        self._budget.charge(n, self._name)
        return n


def _drain(stream: IO[bytes]) -> None:
    while stream.read(_CHUNK):
        pass


# --- detection --------------------------------------------------------------------------------


def detect(path: Path) -> Container:
    """The container of ``path`` by its first bytes (for gzip, by its first unpacked bytes)."""
    with _CountingFile(path) as f:
        return _detect(f, path.name)


def _detect(f: _CountingFile, file: str) -> Container:
    head = f.read(_HEAD) or b""
    if head.startswith(_GZIP_MAGIC):
        f.seek(0)
        return Container.TAR_GZ if _is_tar(_gunzip_head(f, file)) else Container.GZIP
    if head.startswith(_ZIP_MAGICS):
        return Container.ZIP
    if _is_tar(head):
        return Container.TAR
    for pattern, kind in _UNSUPPORTED:
        if pattern.match(head):
            raise WrongFormat(file, f"is {kind}-compressed, which is not supported")
    return Container.PLAIN


def _is_tar(block: bytes) -> bool:
    """The ustar magic, or an end-of-archive block first: an empty tar."""
    return block[257:262] == b"ustar" or block == bytes(tarfile.BLOCKSIZE)


def _gunzip_head(f: IO[bytes], file: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            return gz.read(_HEAD)
    except _CORRUPTION as exc:
        raise CorruptArchive(file, _corrupt_detail(exc)) from exc


# --- members ----------------------------------------------------------------------------------


def members(path: Path, limits: Limits | None = None) -> Iterator[Member]:
    """Yield the data members of ``path`` as streams, in order, without extracting anything.

    Plain and gzip inputs give one member (gzip: the file name without ``.gz``); directories are
    skipped. A member's stream lives until the iterator advances or is dropped; whatever the
    caller leaves unread is read before the next member, so the limits and the CRCs hold
    whatever the caller does.
    """
    limits = limits or Limits()
    file = path.name
    size = path.stat().st_size
    if size < limits.min_bytes:
        raise EmptyFile(file, f"has {size} bytes")
    with _CountingFile(path) as packed:
        container = _detect(packed, file)
        packed.seek(0)
        packed.count = 0
        found = 0
        for member in _OPENERS[container](packed, file, _Budget(limits, packed, file)):
            found += 1
            yield member
        if not found:
            raise EmptyFile(file, "contains no data files")


def _one(inner: IO[bytes], name: str, budget: _Budget) -> Iterator[Member]:
    counter = _MemberStream(inner, name, budget)
    member = Member(name, io.BufferedReader(counter, _CHUNK), counter)
    yield member
    _drain(member.stream)


def _gzip(f: _CountingFile, file: str, budget: _Budget) -> Iterator[Member]:
    name = file[:-3] if file.lower().endswith(".gz") else file
    with gzip.GzipFile(fileobj=f, mode="rb") as gz:
        yield from _one(gz, name, budget)


def _check_entries(count: int, file: str, limits: Limits) -> None:
    if count > limits.max_entries:
        raise ArchiveBomb(file, f"has more than {limits.max_entries} entries")


def _name_problem(name: str) -> str | None:
    if not name:
        return "has an empty name"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "has a '..' component that may escape the destination"
    return None


def _check_name(name: str, file: str) -> None:
    if problem := _name_problem(name):
        raise UnsafeMember(file, problem, name)


def _check_unique(name: str, file: str, seen: set[str]) -> None:
    key = posixpath.normpath(name.replace("\\", "/"))
    if key in seen:
        raise UnsafeMember(file, "appears twice; one copy would shadow the other", name)
    seen.add(key)


# zip


def _zip(f: _CountingFile, file: str, budget: _Budget) -> Iterator[Member]:
    _check_zip_directory(f, file, budget.limits)
    try:
        archive = zipfile.ZipFile(f)
    except (*_CORRUPTION, ValueError) as exc:
        raise CorruptArchive(file, f"has a bad zip structure ({exc})") from exc
    with archive:
        infos = archive.infolist()
        _check_entries(len(infos), file, budget.limits)
        declared = sum(info.file_size for info in infos)
        if declared > budget.limits.max_unpacked_bytes:
            raise ArchiveBomb(file, f"declares {declared} unpacked bytes")
        seen: set[str] = set()
        for info in infos:
            _check_zip_entry(info, file)
            if not info.is_dir():
                _check_unique(info.filename, file, seen)
                yield from _zip_member(archive, info, file, budget)


def _check_zip_directory(f: _CountingFile, file: str, limits: Limits) -> None:
    """zipfile reads the central directory whole and makes an object per entry: bound both
    from the end record (zipfile's own reader of it, zip64 included) before it does."""
    try:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except OSError as exc:
        raise CorruptArchive(file, f"has a bad zip structure ({exc})") from exc
    if end is None:
        raise CorruptArchive(file, "has no zip end-of-central-directory record (truncated?)")
    _check_entries(end[zipfile._ECD_ENTRIES_TOTAL], file, limits)  # type: ignore[attr-defined]
    size = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if size > limits.max_entries * _MAX_ZIP_DIRECTORY_ENTRY:
        raise ArchiveBomb(file, f"has a zip central directory of {size} bytes")


def _check_zip_entry(info: zipfile.ZipInfo, file: str) -> None:
    _check_name(info.filename, file)
    kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix mode, when the creator stored one
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeMember(file, "is a link or special file, not a regular file", info.filename)
    if info.flag_bits & 0x1:
        raise WrongFormat(file, "is encrypted", info.filename)


def _zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, file: str, budget: _Budget
) -> Iterator[Member]:
    try:
        inner = archive.open(info)
    except _CORRUPTION as exc:
        raise CorruptArchive(file, _corrupt_detail(exc), info.filename) from exc
    except NotImplementedError as exc:
        raise WrongFormat(file, f"cannot be unpacked ({exc})", info.filename) from exc
    with inner:
        yield from _one(inner, info.filename, budget)


# tar


class _TarSource:
    """The bytes under tarfile: refuses oversized records (tarfile reads a pax or GNU long-name
    record whole) and remembers the last read, to check the end-of-archive block, since tarfile
    takes a missing or truncated header after the first as a normal end."""

    def __init__(self, inner: IO[bytes], file: str) -> None:
        self._inner = inner
        self._file = file
        self.last: tuple[int, bytes] = (-1, b"")

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > _MAX_TAR_RECORD:
            raise ArchiveBomb(self._file, f"has a tar record of {size} bytes")
        offset = self._inner.tell()
        data = self._inner.read(size)
        self.last = (offset, data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def ended_at(self, offset: int) -> bool:
        return self.last == (offset, bytes(tarfile.BLOCKSIZE))


def _tar_gz(f: _CountingFile, file: str, budget: _Budget) -> Iterator[Member]:
    with gzip.GzipFile(fileobj=f, mode="rb") as gz:
        yield from _tar_entries(gz, file, budget)
        _drain(_MemberStream(gz, None, budget))  # tar padding, then the gzip CRC and length


def _tar_entries(f: IO[bytes], file: str, budget: _Budget) -> Iterator[Member]:
    source = _TarSource(f, file)
    archive = _tar_call(lambda: tarfile.TarFile(fileobj=source, mode="r"), file)  # type: ignore
    with archive:
        seen: set[str] = set()
        for count, info in enumerate(_tar_infos(archive, file), 1):
            _check_entries(count, file, budget.limits)
            _check_tar_entry(info, file)
            if not info.isdir():
                _check_unique(info.name, file, seen)
                yield from _tar_member(archive, info, file, budget)
        if not source.ended_at(archive.offset):
            raise CorruptArchive(file, "ends without the tar end-of-archive block (truncated)")


def _tar_call(call: Callable[[], _T], file: str) -> _T:
    try:
        return call()
    except _CORRUPTION as exc:
        raise CorruptArchive(file, _corrupt_detail(exc)) from exc


def _tar_infos(archive: tarfile.TarFile, file: str) -> Iterator[tarfile.TarInfo]:
    while (info := _tar_call(archive.next, file)) is not None:
        yield info


def _check_tar_entry(info: tarfile.TarInfo, file: str) -> None:
    _check_name(info.name, file)
    if not (info.isreg() or info.isdir()):
        kind = _TAR_KINDS.get(info.type, f"entry of type {info.type!r}")
        raise UnsafeMember(file, f"is a {kind}; only files and directories are accepted", info.name)


def _tar_member(
    archive: tarfile.TarFile, info: tarfile.TarInfo, file: str, budget: _Budget
) -> Iterator[Member]:
    inner = _tar_call(lambda: archive.extractfile(info), file)
    if inner is None:  # isreg() members always have data; kept for the type checker
        return
    with inner:
        yield from _one(inner, info.name, budget)


_OPENERS: dict[Container, Callable[[_CountingFile, str, _Budget], Iterator[Member]]] = {
    Container.PLAIN: _one,
    Container.GZIP: _gzip,
    Container.ZIP: _zip,
    Container.TAR: _tar_entries,
    Container.TAR_GZ: _tar_gz,
}


# --- validation -------------------------------------------------------------------------------


Write = Callable[[bytes], object]
# (member name, its header) -> a context in which each of the member's bytes is written on
Sink = Callable[[str, tuple[str, ...]], AbstractContextManager[Write]]


def validate(
    path: Path,
    limits: Limits | None = None,
    expect: CsvExpectation | None = None,
    sink: Sink | None = None,
) -> Validated:
    """Read every member of ``path`` to its end and check it; raise a FileRefused on the first
    problem. Without ``expect`` only the container is checked (no rows, no header).

    With a ``sink``, every byte of a CSV member, header line included, is written on as the
    check reads it (one pass of the file: a loader COPYs what is being checked); the sink is
    opened once the member's header is read, and an exception, a refusal included, leaves it
    through its context."""
    limits = limits or Limits()
    if sink is not None and (expect is None or not expect.has_header):
        raise ValueError("a sink needs a CSV expectation with a header line")
    facts = tuple(
        _validate_member(m, path.name, limits, expect, sink) for m in members(path, limits)
    )
    return Validated(path=path, container=detect(path), members=facts)


def _validate_member(
    member: Member,
    file: str,
    limits: Limits,
    expect: CsvExpectation | None,
    sink: Sink | None,
) -> MemberFacts:
    rows: int | None = None
    header: tuple[str, ...] | None = None
    with ExitStack() as stack:
        relay = _Relay(member.name, sink, stack)
        if expect is None:
            _drain(member.stream)
        else:
            try:
                rows, header = _check_csv(member, file, expect, relay)
            except WrongFormat:
                # a damaged container garbles the text: report the cause (corrupt), not the
                # symptom
                _drain(member.stream)
                raise
    if member.unpacked_bytes < limits.min_bytes:
        raise EmptyFile(file, f"unpacks to {member.unpacked_bytes} bytes", member.name)
    if rows == 0:
        raise EmptyFile(file, "has no data rows", member.name)
    return MemberFacts(member.name, member.unpacked_bytes, rows, header)


class _Relay:
    """A member's bytes as the check reads them: held until its header is read, then written
    on to the sink (nowhere without one)."""

    def __init__(self, member: str, sink: Sink | None, stack: ExitStack) -> None:
        self._member = member
        self._sink = sink
        self._stack = stack
        self._held: list[bytes] = []
        self.write: Write = self._held.append if sink else _discard

    def open(self, header: tuple[str, ...]) -> None:
        if self._sink is None:
            return
        write = self._stack.enter_context(self._sink(self._member, header))
        for chunk in self._held:
            write(chunk)
        self._held.clear()
        self.write = write


def _discard(chunk: bytes) -> None:
    return None


def _check_csv(
    member: Member, file: str, expect: CsvExpectation, relay: _Relay
) -> tuple[int, tuple[str, ...] | None]:
    """Rows and header of one member; every record must have the same number of fields.
    Quoted fields may hold delimiters and span lines; a record is named by its first line."""
    lines = itertools.chain.from_iterable(_line_batches(member, file, expect, relay))
    reader = csv.reader(lines, delimiter=expect.delimiter, quotechar=expect.quotechar, strict=True)
    end = 0  # the line the last good record ended on
    try:
        first = next(reader, None)
        if first is None:
            return 0, None
        header = _check_header(first, file, member.name, expect) if expect.has_header else None
        width = expect.columns or len(first) or 1
        _check_width(1, first, width, file, member.name)
        if header is not None:
            relay.open(header)
        rows = 0 if expect.has_header else 1
        end = reader.line_num
        for fields in reader:  # the hot loop: one comparison per record
            if len(fields) != width:
                _check_width(end + 1, fields, width, file, member.name)
            rows += 1
            end = reader.line_num
    except csv.Error as exc:
        raise WrongFormat(file, f"line {end + 1}: not valid CSV ({exc})", member.name) from exc
    return rows, header


def _check_header(
    fields: list[str], file: str, member: str, expect: CsvExpectation
) -> tuple[str, ...]:
    found = tuple(f.strip() for f in fields)
    if expect.header is not None:
        want = tuple(c.strip().lstrip("\ufeff") for c in expect.header)
        if problem := _header_mismatch(found, want):
            raise WrongFormat(file, f"line 1: the header {problem}", member)
    return found


def _header_mismatch(found: tuple[str, ...], want: tuple[str, ...]) -> str | None:
    for i, (got, wanted) in enumerate(zip(found, want, strict=False), 1):
        if got.casefold() != wanted.casefold():
            return f"column {i} is {got!r}, expected {wanted!r}"
    if len(found) != len(want):
        return f"has {len(found)} columns, expected {len(want)}"
    return None


def _check_width(line: int, fields: list[str], width: int, file: str, member: str) -> None:
    """A blank line is one empty field, as COPY reads it."""
    if fields and len(fields) != width:
        raise WrongFormat(file, f"line {line}: {len(fields)} fields, expected {width}", member)
    if not fields and width != 1:
        raise WrongFormat(file, f"line {line} is blank, expected {width} fields", member)


class _Decoder:
    """An incremental decoder that names the line of an undecodable byte sequence."""

    def __init__(self, encoding: str, file: str, member: str) -> None:
        self._factory = codecs.getincrementaldecoder(encoding)
        self._decoder = self._factory()
        self._where = (file, member)
        self._encoding = encoding

    def decode(self, chunk: bytes, final: bool, line: int) -> str:
        state = self._decoder.getstate()
        try:
            return self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            line += self._before(state, chunk, exc.start).count("\n")
            detail = f"line {line}: bytes that are not {self._encoding} ({exc.reason})"
            raise WrongFormat(self._where[0], detail, self._where[1]) from exc

    def _before(self, state: tuple[bytes, int], chunk: bytes, start: int) -> str:
        # exc.start counts from the bytes the decoder held back, then the chunk
        decoder = self._factory()
        decoder.setstate(state)
        try:
            return decoder.decode(chunk[: max(start - len(state[0]), 0)])
        except UnicodeDecodeError:
            return ""


def _line_batches(
    member: Member, file: str, expect: CsvExpectation, relay: _Relay
) -> Iterator[list[str]]:
    """The member's text as lists of lines, newline kept, split on '\\n' only (csv handles
    '\\r\\n'); one list per chunk read, so the csv reader pulls lines at C speed. Each chunk
    goes to the relay before its lines are checked."""
    decoder = _Decoder(expect.encoding, file, member.name)
    pending = ""
    done = 0
    while True:
        chunk = member.stream.read(_CHUNK)
        if chunk:
            relay.write(chunk)
        text = decoder.decode(chunk, not chunk, done + 1)
        if done == 0 and not pending:
            text = text.removeprefix("\ufeff")
        *complete, pending = (pending + text).split("\n")
        batch = [line + "\n" for line in complete]
        if not chunk and pending:
            batch.append(pending)
        _check_lines(text, [*batch, pending], done, file, member.name, expect)
        done += len(batch)
        yield batch
        if not chunk:
            return


def _check_lines(
    text: str, lines: list[str], done: int, file: str, member: str, expect: CsvExpectation
) -> None:
    """NUL bytes and overlong lines; the per-line loop runs only once something is wrong."""
    if "\x00" not in text and max(map(len, lines)) <= expect.max_line_chars:
        return
    for i, line in enumerate(lines, done + 1):
        if "\x00" in line:
            raise WrongFormat(file, f"line {i}: a NUL byte, so binary content, not text", member)
        if len(line) > expect.max_line_chars:
            detail = f"line {i}: longer than {expect.max_line_chars} characters"
            raise WrongFormat(file, detail, member)
