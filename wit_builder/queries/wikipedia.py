"""Stream pages out of a MediaWiki pages-articles XML export, never holding the dump in memory.

Two layouts (https://meta.wikimedia.org/wiki/Data_dumps/Dump_format):
- plain `*.xml.bz2`: one bz2 stream; one reader walks it with a streaming XML parser (iter_pages);
- multistream `*-multistream.xml.bz2` + `*-multistream-index.txt.bz2`: concatenated bz2 streams of ~100 pages each,
  the index lists `offset:page_id:title` per page. Each stream decompresses on its own, so workers
  take byte ranges (stream_ranges) and parse their pages independently (iter_range_pages). The first stream holds
  the <siteinfo> header (read_header), the last one the closing tag.

Bad input is an error that names the file and the fix (truncated bz2, malformed XML, bytes that are not UTF-8, a bad
index line) or a counted skip (a page in a namespace the header does not declare, a page without id/title/ns).
"""

from __future__ import annotations

import bz2
import io
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from wit_builder.errors import WitError

log = logging.getLogger(__name__)

ARTICLE_NS = 0
CHUNK = 1 << 20


@dataclass(frozen=True)
class Page:
    page_id: int
    title: str
    ns: int
    redirect: str | None  # the target title for a redirect page, else None
    text: str


def open_binary(uri: str) -> BinaryIO:
    """A local path or s3:// URI opened for binary reading (seekable)."""
    from wit_builder import storage

    if storage.is_s3(uri):
        return storage.fsspec_s3().open(uri[len("s3://") :], "rb")
    try:
        return open(uri, "rb")
    except OSError as err:
        raise WitError(f"cannot open the Wikipedia dump {uri}: {err.strerror}") from err


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespaces(siteinfo: ET.Element) -> dict[int, str]:
    found = {}
    for el in siteinfo.iter():
        if _local(el.tag) == "namespace" and el.get("key") is not None:
            found[int(el.get("key"))] = (el.text or "").strip()
    return found


def _page(el: ET.Element, namespaces: dict[int, str] | None, stats: Counter) -> Page | None:
    """One <page> element -> Page, or None with a counted reason."""
    fields = {"title": None, "ns": None, "id": None, "text": None, "redirect": None}
    for child in el:
        name = _local(child.tag)
        if name == "revision":
            for sub in child:
                if _local(sub.tag) == "text":
                    fields["text"] = sub.text or ""
        elif name == "redirect":
            fields["redirect"] = child.get("title") or ""
        elif name in fields:
            fields[name] = child.text
    try:
        page_id, ns = int(fields["id"]), int(fields["ns"])
    except (TypeError, ValueError):
        stats["skipped_malformed_page"] += 1
        log.warning("skipped a <page> without a numeric id/ns (title %r)", fields["title"])
        return None
    if not fields["title"]:
        stats["skipped_malformed_page"] += 1
        log.warning("skipped page %s without a title", page_id)
        return None
    if namespaces is not None and ns not in namespaces:
        stats["skipped_unknown_namespace"] += 1
        log.warning(
            "skipped page %s %r: namespace %s is not declared in the dump's <siteinfo>", page_id, fields["title"], ns
        )
        return None
    return Page(page_id, fields["title"], ns, fields["redirect"], fields["text"] or "")


def _parse_error(err: Exception, name: str) -> WitError:
    detail = str(err)
    hint = "bytes that are not UTF-8" if "invalid token" in detail or "encoding" in detail else "malformed XML"
    return WitError(f"{name}: {hint} ({detail}); the dump is damaged: download it again (and check its checksum)")


def _decompress_error(err: Exception, name: str) -> WitError:
    return WitError(f"{name}: the bz2 data is truncated or corrupt ({err}); download the dump again")


def iter_pages(fileobj: BinaryIO, name: str, stats: Counter, header: dict | None = None) -> Iterator[Page]:
    """Every page of a complete export (one bz2 stream, or plain XML when `name` does not end in .bz2).

    The <siteinfo> namespaces are stored in header["namespaces"] when a dict is given. Memory stays flat: each page
    element is cleared once read, and the root forgets it."""
    stream = bz2.BZ2File(fileobj) if name.endswith(".bz2") else fileobj
    namespaces = None
    root = None
    try:
        for event, el in ET.iterparse(stream, events=("start", "end")):
            if event == "start":
                if root is None:
                    root = el
                continue
            tag = _local(el.tag)
            if tag == "siteinfo":
                namespaces = _namespaces(el)
                if header is not None:
                    header["namespaces"] = namespaces
            elif tag == "page":
                stats["pages_read"] += 1
                page = _page(el, namespaces, stats)
                el.clear()
                root.clear()
                if page is not None:
                    yield page
    except ET.ParseError as err:
        raise _parse_error(err, name) from err
    except (EOFError, OSError) as err:
        raise _decompress_error(err, name) from err


def read_header(fileobj: BinaryIO, name: str) -> dict:
    """The <siteinfo> of a multistream dump (its first stream): {'namespaces': {key: name}}."""
    data, _ = _stream_at(fileobj, 0, name)
    end = data.find(b"</siteinfo>")
    if not data.lstrip().startswith(b"<mediawiki") or end < 0:
        raise WitError(
            f"{name}: the first bz2 stream holds no <mediawiki><siteinfo> header; is this a "
            "pages-articles-multistream dump?"
        )
    try:
        root = ET.fromstring(data[: end + len(b"</siteinfo>")] + b"</mediawiki>")
    except ET.ParseError as err:
        raise _parse_error(err, name + " (header)") from err
    siteinfo = next((el for el in root if _local(el.tag) == "siteinfo"), None)
    return {"namespaces": _namespaces(siteinfo) if siteinfo is not None else {}}


def iter_block_pages(data: bytes, namespaces: dict[int, str] | None, stats: Counter, name: str) -> Iterator[Page]:
    """The pages of one multistream block (a run of <page> elements, possibly followed by the closing </mediawiki>)."""
    body = io.BytesIO(b"<pages>" + data.replace(b"</mediawiki>", b"") + b"</pages>")
    try:
        for _, el in ET.iterparse(body, events=("end",)):
            if _local(el.tag) == "page":
                stats["pages_read"] += 1
                page = _page(el, namespaces, stats)
                el.clear()
                if page is not None:
                    yield page
    except ET.ParseError as err:
        raise _parse_error(err, name) from err


def read_index(fileobj: BinaryIO, name: str) -> list[int]:
    """Sorted distinct stream offsets from a multistream index (`offset:page_id:title` lines, bz2 or plain)."""
    stream = bz2.BZ2File(fileobj) if name.endswith(".bz2") else fileobj
    offsets: set[int] = set()
    try:
        for number, raw in enumerate(stream, 1):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if not line:
                continue
            head, sep, rest = line.partition(":")
            page_id, sep2, _title = rest.partition(":")
            if not (sep and sep2 and head.isdigit() and page_id.isdigit()):
                raise WitError(f"{name} line {number}: expected `offset:page_id:title`, got {line[:80]!r}")
            offsets.add(int(head))
    except (EOFError, OSError) as err:
        raise _decompress_error(err, name) from err
    if not offsets:
        raise WitError(f"{name}: the multistream index is empty")
    return sorted(offsets)


def stream_ranges(offsets: list[int], file_size: int, streams_per_task: int) -> list[tuple[int, int]]:
    """Byte ranges [start, end) covering `streams_per_task` consecutive streams each; the last ends at the file end."""
    bounds = offsets + [file_size]
    return [
        (bounds[i], bounds[min(i + streams_per_task, len(offsets))]) for i in range(0, len(offsets), streams_per_task)
    ]


def iter_range_pages(
    fileobj: BinaryIO, start: int, end: int, namespaces: dict[int, str] | None, stats: Counter, name: str
) -> Iterator[Page]:
    """The pages of every stream in the byte range [start, end) (streams are read one at a time)."""
    offset = start
    while offset < end:
        data, consumed = _stream_at(fileobj, offset, name)
        stats["compressed_bytes"] += consumed
        stats["streams"] += 1
        yield from iter_block_pages(data, namespaces, stats, f"{name}@{offset}")
        offset += consumed


def _stream_at(fileobj: BinaryIO, offset: int, name: str) -> tuple[bytes, int]:
    """(decompressed bytes, compressed length) of the stream at `offset`."""
    fileobj.seek(offset)
    decomp = bz2.BZ2Decompressor()
    out = io.BytesIO()
    consumed = 0
    try:
        while not decomp.eof:
            chunk = fileobj.read(CHUNK)
            if not chunk:
                raise EOFError(f"the stream at byte {offset} ends before its end-of-stream marker")
            consumed += len(chunk)
            out.write(decomp.decompress(chunk))
        consumed -= len(decomp.unused_data)
    except (EOFError, OSError) as err:
        raise _decompress_error(err, name) from err
    return out.getvalue(), consumed
