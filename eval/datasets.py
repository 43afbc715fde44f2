"""Evaluation sets in memory (`EvalSet`) and their loaders: a task written by `wit eval data`, a CLIP_benchmark-style
WebDataset folder, an ImageFolder tree, or a Parquet/CSV table of (path | url, label). `write_eval_set` writes the
WebDataset layout CLIP_benchmark's `build_wds_dataset` reads, so our tasks run there too:

```
DIR/classnames.txt                              one class per line (classification)
DIR/zeroshot_classification_templates.txt       one template per line, `{c}` marks the class name
DIR/dataset_type.txt                            "classification" or "retrieval"
DIR/SPLIT/nshards.txt, DIR/SPLIT/0.tar ...      samples KEY.png|jpg|webp + KEY.cls (label index as text)
                                                or + KEY.txt (retrieval: one caption per line)
```
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wit_builder.errors import WitError

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")  # the members CLIP_benchmark decodes, in its order of preference
FOLDER_EXTS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's list
SPLIT_NAMES = ("train", "val", "test")
TABLE_FORMATS = (".parquet", ".csv")
META_FILE = "wit_eval.json"  # our own extra file beside CLIP_benchmark's: name, kind, note
URL_TIMEOUT_S = 20.0
URL_MAX_BYTES = 20_000_000
ACCEPTED = (
    "a task name written by `wit eval data`, a WebDataset folder (SPLIT/nshards.txt + SPLIT/N.tar), an ImageFolder "
    "(ROOT[/SPLIT]/CLASS/*.png|jpg|...), or a .parquet/.csv file with columns (path|url, label)"
)


@dataclass
class EvalSet:
    """One split of an evaluation set, images still encoded; labels (classification) or captions (retrieval)."""

    name: str
    split: str
    keys: list[str]
    images: list[bytes]
    labels: np.ndarray | None
    captions: list[list[str]] | None
    classnames: list[str] | None
    templates: list[str] | None
    skipped: dict[str, int] = field(default_factory=dict)
    source: str = ""
    note: str = ""

    @property
    def kind(self) -> str:
        """'retrieval' when the set carries captions, else 'classification'."""
        return "retrieval" if self.captions is not None else "classification"

    def __len__(self) -> int:
        return len(self.keys)


# --- user files: class names and templates ------------------------------------------------------------------------


def read_classnames(path: str) -> list[str]:
    """Class names from a .txt file (one per line) or a .json list / {index: name} dict."""
    p = Path(path)
    if not p.is_file():
        raise WitError(f"classnames file {path} does not exist: pass a .txt (one name per line) or .json file")
    if p.suffix.lower() == ".json":
        value = _read_json(p)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if isinstance(value, dict):
            try:
                items = sorted((int(k), str(v)) for k, v in value.items())
            except ValueError as err:
                raise WitError(f"{path}: a classnames dict needs integer keys (index -> name)") from err
            if [i for i, _ in items] != list(range(len(items))):
                raise WitError(f"{path}: classnames dict keys must be 0..{len(items) - 1} without gaps")
            return [v for _, v in items]
        raise WitError(f"{path}: a JSON classnames file must hold a list of names or an {{index: name}} dict")
    if p.suffix.lower() not in ("", ".txt"):
        raise WitError(f"classnames file {path}: unknown format; use .txt (one name per line) or .json (list or dict)")
    return _lines(p)


def read_templates(path: str) -> list[str]:
    """Prompt templates from a .txt file (one per line) or a .json list; `{}` is accepted for `{c}`."""
    p = Path(path)
    if not p.is_file():
        raise WitError(f"templates file {path} does not exist: pass a .txt (one template per line) or .json list")
    if p.suffix.lower() == ".json":
        value = _read_json(p)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise WitError(f"{path}: a JSON templates file must hold a list of strings")
        templates = value
    elif p.suffix.lower() in ("", ".txt"):
        templates = _lines(p)
    else:
        raise WitError(f"templates file {path}: unknown format; use .txt (one template per line) or .json (list)")
    out = [t.replace("{}", "{c}") for t in templates]
    bad = [t for t in out if "{c}" not in t]
    if bad or not out:
        raise WitError(f"{path}: every template needs a {{c}} (or {{}}) placeholder for the class name, e.g. {bad[:1]}")
    return out


def _read_json(p: Path):
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as err:
        raise WitError(f"{p} is not valid JSON ({err})") from err


def _lines(p: Path) -> list[str]:
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- dispatch ---------------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """Where `wit eval data` writes tasks by default: $WIT_CACHE/eval."""
    from wit_builder.paths import cache_dir

    return cache_dir() / "eval"


def _resolve(spec: str, data_dir: str | None) -> tuple[str, Path]:
    """(format, path) of a spec: wds | folder | parquet | csv."""
    p = Path(spec).expanduser()
    if p.is_dir():
        return ("wds" if _is_wds(p) else "folder"), p
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in TABLE_FORMATS:
            return suffix[1:], p
        raise WitError(f"{spec}: unknown evaluation data format {suffix or '(none)'}; accepted: {ACCEPTED}")
    if os.sep in spec or p.suffix:
        raise WitError(f"{spec} does not exist; accepted: {ACCEPTED}")
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    task = root / spec
    if not task.is_dir():
        raise WitError(f"no evaluation task {spec!r} under {root}: run `wit eval data --out {root}` (or pass a path)")
    return "wds", task


def _is_wds(p: Path) -> bool:
    return (p / "classnames.txt").exists() or (p / "dataset_type.txt").exists() or any(p.glob("*/nshards.txt"))


def _ordered(splits) -> list[str]:
    known = [s for s in SPLIT_NAMES if s in splits]
    return known + sorted(set(splits) - set(known))


def available_splits(spec: str, *, data_dir: str | None = None) -> list[str]:
    """The splits a spec holds (train/val/test first); a set without splits is all 'test'."""
    kind, p = _resolve(spec, data_dir)
    if kind == "wds":
        return _ordered([q.parent.name for q in p.glob("*/nshards.txt")])
    if kind == "folder":
        return _ordered(_folder_splits(p)) or ["test"]
    table = _read_table(kind, p)
    if "split" in table.column_names:
        return _ordered({str(s) for s in table.column("split").to_pylist() if s is not None})
    return ["test"]


def load_eval_set(
    spec: str,
    split: str = "test",
    *,
    data_dir: str | None = None,
    classnames: str | None = None,
    templates: str | None = None,
    allow_hosts: tuple[str, ...] = (),
) -> EvalSet:
    """Load one split of an evaluation set from any accepted spec; user class names / templates files override."""
    kind, p = _resolve(spec, data_dir)
    names = read_classnames(classnames) if classnames else None
    if kind == "wds":
        out = _load_wds(p, split)
    elif kind == "folder":
        out = _load_folder(p, split)
    else:
        out = _load_table(kind, p, split, names, allow_hosts)
    if names is not None:
        if out.classnames is not None and len(out.classnames) != len(names):
            raise WitError(f"{classnames} names {len(names)} classes but {spec} has {len(out.classnames)}")
        out.classnames = names
    if templates:
        out.templates = read_templates(templates)
    if out.labels is not None and out.classnames is not None:
        _count_empty_classes(out)
    return out


def _count_empty_classes(out: EvalSet) -> None:
    present = set(np.unique(out.labels).tolist()) if len(out.labels) else set()
    for i, name in enumerate(out.classnames):
        if i not in present:
            out.skipped[f"empty_class:{name}"] = out.skipped.get(f"empty_class:{name}", 0) + 1


def _bump(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _readable(data: bytes) -> bool:
    from wit_builder.download.guard import check_image

    return check_image(data) is None


def _unique(keys: list[str]) -> list[str]:
    """Keys made unique by a numbered suffix on repeats (first occurrence unchanged)."""
    seen: Counter = Counter()
    out = []
    for key in keys:
        seen[key] += 1
        out.append(key if seen[key] == 1 else f"{key}-{seen[key]}")
    return out


# --- WebDataset (CLIP_benchmark) ----------------------------------------------------------------------------------


def tar_samples(url: str):
    """Samples {__key__, ext: bytes, ...} of one tar (local or s3://), grouped by key as `webdataset` does."""
    from webdataset import tariterators

    from wit_builder import storage

    fs, path = storage.filesystem(url)
    with fs.open_input_stream(path) as stream:
        files = tariterators.tar_file_expander([{"stream": stream, "url": url}])
        yield from tariterators.group_by_keys(files)


def _load_wds(root: Path, split: str) -> EvalSet:
    nshards_file = root / split / "nshards.txt"
    if not nshards_file.exists():
        have = available_splits(str(root))
        raise WitError(f"{root} has no split {split!r} (no {split}/nshards.txt); it has: {', '.join(have) or 'none'}")
    try:
        nshards = int(nshards_file.read_text().strip())
    except ValueError as err:
        raise WitError(f"{nshards_file} must hold the number of shards: rewrite it or rebuild the set") from err
    kind_file = root / "dataset_type.txt"
    retrieval = kind_file.exists() and kind_file.read_text().strip().lower() == "retrieval"
    meta = json.loads((root / META_FILE).read_text()) if (root / META_FILE).exists() else {}
    names = _lines(root / "classnames.txt") if (root / "classnames.txt").exists() else None
    tmpl_file = root / "zeroshot_classification_templates.txt"
    templates = _lines(tmpl_file) if tmpl_file.exists() else None
    skipped: dict[str, int] = {}
    keys, images, labels, captions = [], [], [], []
    for i in range(nshards):
        shard = root / split / f"{i}.tar"
        if not shard.exists():
            _bump(skipped, "missing_shard")
            continue
        for sample in tar_samples(str(shard)):
            ext = next((e for e in IMAGE_EXTS if e in sample), None)
            if ext is None:
                _bump(skipped, "no_image")
                continue
            if not _readable(sample[ext]):
                _bump(skipped, "unreadable_image")
                continue
            if retrieval:
                if "txt" not in sample:
                    _bump(skipped, "no_caption")
                    continue
                captions.append(sample["txt"].decode("utf-8", "replace").splitlines())
            else:
                label = _wds_label(sample.get("cls"), names)
                if label is None:
                    _bump(skipped, "unknown_label")
                    continue
                labels.append(label)
            keys.append(sample["__key__"])
            images.append(sample[ext])
    return EvalSet(
        name=meta.get("name", root.name),
        split=split,
        keys=keys,
        images=images,
        labels=None if retrieval else np.asarray(labels, dtype=np.int64),
        captions=captions if retrieval else None,
        classnames=None if retrieval else names,
        templates=None if retrieval else templates,
        skipped=skipped,
        source=str(root),
        note=meta.get("note", ""),
    )


def _wds_label(raw: bytes | None, names: list[str] | None) -> int | None:
    try:
        label = int(raw.decode().strip()) if raw is not None else None
    except ValueError:
        return None
    if label is None or label < 0 or (names is not None and label >= len(names)):
        return None
    return label


def _image_ext(data: bytes) -> tuple[str, bytes]:
    """(extension, bytes) to store: PNG/JPEG/WebP as they are, any other format re-encoded to PNG."""
    if data.startswith(b"\x89PNG"):
        return "png", data
    if data.startswith(b"\xff\xd8"):
        return "jpg", data
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", data
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(io.BytesIO(data)) as im:
        im.save(buf, format="PNG")
    return "png", buf.getvalue()


def _tar_key(key: str) -> str:
    """A key webdataset splits back intact: no dot in its last path component (it starts the extension)."""
    head, _, tail = key.rpartition("/")
    return f"{head}/{tail.replace('.', '_')}" if head else tail.replace(".", "_")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_eval_set(out_dir: str, sets: list[EvalSet], shard_size: int = 1000) -> None:
    """Write the splits of one dataset to out_dir in CLIP_benchmark's WebDataset layout (deterministic tars).

    Keys keep their text except dots in the last component (-> '_'); images other than PNG/JPEG/WebP become PNG."""
    if not sets:
        raise ValueError("write_eval_set needs at least one split")
    if len({s.split for s in sets}) != len(sets) or len({s.kind for s in sets}) != 1:
        raise ValueError("write_eval_set: give each split once, all of one kind (classification or retrieval)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = sets[0]
    names = next((s.classnames for s in sets if s.classnames), None)
    templates = next((s.templates for s in sets if s.templates), None)
    (out / "dataset_type.txt").write_text(first.kind + "\n")
    if names:
        (out / "classnames.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    if templates:
        text = "".join(f"{t}\n" for t in templates)
        (out / "zeroshot_classification_templates.txt").write_text(text, encoding="utf-8")
    (out / META_FILE).write_text(json.dumps({"name": first.name, "kind": first.kind, "note": first.note}) + "\n")
    for s in sets:
        _write_split(out / s.split, s, max(1, shard_size))


def _write_split(folder: Path, s: EvalSet, shard_size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.tar"):
        old.unlink()
    keys = [_tar_key(k) for k in s.keys]
    if len(set(keys)) != len(keys):
        raise ValueError(
            f"{s.name}/{s.split}: keys are not unique (after replacing dots): {len(keys) - len(set(keys))}"
        )
    nshards = (len(keys) + shard_size - 1) // shard_size
    for n in range(nshards):
        with tarfile.open(folder / f"{n}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(n * shard_size, min(len(keys), (n + 1) * shard_size)):
                ext, data = _image_ext(s.images[i])
                _add(tar, f"{keys[i]}.{ext}", data)
                if s.captions is not None:
                    _add(tar, f"{keys[i]}.txt", "\n".join(c.replace("\n", " ") for c in s.captions[i]).encode())
                else:
                    _add(tar, f"{keys[i]}.cls", str(int(s.labels[i])).encode())
    (folder / "nshards.txt").write_text(f"{nshards}\n")


# --- ImageFolder --------------------------------------------------------------------------------------------------


def _folder_splits(root: Path) -> list[str]:
    return [d.name for d in root.iterdir() if d.is_dir() and d.name in SPLIT_NAMES]


def _load_folder(root: Path, split: str) -> EvalSet:
    splits = _folder_splits(root)
    if splits:
        if split not in splits:
            raise WitError(f"{root} has no split folder {split!r}; it has: {', '.join(_ordered(splits))}")
        base = root / split
        names = sorted({d.name for s in splits for d in (root / s).iterdir() if d.is_dir()})
    else:
        if split != "test":
            raise WitError(f"{root} has no split folders (train/val/test), so it holds only the 'test' split")
        base = root
        names = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not names:
        raise WitError(f"{root} holds no class folders: expected ROOT[/SPLIT]/CLASS/*.png|jpg|...")
    skipped: dict[str, int] = {}
    keys, images, labels = [], [], []
    for label, name in enumerate(names):
        class_dir = base / name
        if not class_dir.is_dir():
            continue
        for dirpath, dirnames, filenames in sorted(os.walk(class_dir, followlinks=True)):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if path.suffix.lower() not in FOLDER_EXTS:
                    continue
                data = path.read_bytes()
                if not _readable(data):
                    _bump(skipped, "unreadable_image")
                    continue
                keys.append(path.relative_to(base).with_suffix("").as_posix())
                images.append(data)
                labels.append(label)
    return _classification_set(root.name, split, keys, images, labels, names, skipped, str(root))


def _classification_set(name, split, keys, images, labels, names, skipped, source) -> EvalSet:
    """A labelled set read from a user's files (no templates of its own: the evaluation picks them)."""
    return EvalSet(
        name=name,
        split=split,
        keys=_unique(keys),
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        captions=None,
        classnames=names,
        templates=None,
        skipped=skipped,
        source=source,
    )


# --- Parquet / CSV ------------------------------------------------------------------------------------------------


def _read_table(kind: str, p: Path):
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(p)
        import pyarrow.csv as pacsv

        return pacsv.read_csv(p)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a malformed file
        raise WitError(f"{p} is not a readable {kind} file ({err})") from err


def _load_table(kind: str, p: Path, split: str, names: list[str] | None, allow_hosts: tuple[str, ...]) -> EvalSet:
    table = _read_table(kind, p)
    cols = table.column_names
    where = "path" if "path" in cols else "url" if "url" in cols else None
    if where is None or "label" not in cols:
        raise WitError(f"{p} needs columns (path or url) and label; it has {cols}")
    rows = table.to_pylist()
    if "split" in cols:
        have = {str(r["split"]) for r in rows}
        if split not in have:
            raise WitError(f"{p} has no rows with split {split!r}; it has: {', '.join(_ordered(have))}")
    all_labels = [r["label"] for r in rows if r["label"] is not None]
    by_name = all(isinstance(v, str) and not v.strip().lstrip("-").isdigit() for v in all_labels)
    if names is None:
        if by_name:
            names = sorted(set(all_labels))
        else:
            top = max((int(v) for v in all_labels), default=-1)
            names = [str(i) for i in range(top + 1)]
    index = {n: i for i, n in enumerate(names)}
    skipped: dict[str, int] = {}
    keys, images, labels = [], [], []
    fetcher = _UrlFetcher(allow_hosts) if where == "url" else None
    for r in rows:
        if "split" in cols and str(r["split"]) != split:
            continue
        label = _table_label(r["label"], index, len(names), by_name)
        if label is None:
            _bump(skipped, "unknown_label")
            continue
        ref = r[where]
        if not ref:
            _bump(skipped, f"no_{where}")
            continue
        data = fetcher.fetch(ref, skipped) if fetcher else _read_file(p.parent / ref, skipped)
        if data is None:
            continue
        if not _readable(data):
            _bump(skipped, "unreadable_image")
            continue
        keys.append(_row_key(r, where))
        images.append(data)
        labels.append(label)
    return _classification_set(p.stem, split, keys, images, labels, names, skipped, str(p))


def _table_label(value, index: dict[str, int], n: int, by_name: bool) -> int | None:
    if value is None:
        return None
    if by_name or (isinstance(value, str) and value in index):
        return index.get(str(value))
    try:
        label = int(value)
    except (TypeError, ValueError):
        return None
    return label if 0 <= label < n else None


def _row_key(row: dict, where: str) -> str:
    if row.get("key"):
        return str(row["key"])
    if where == "path":
        return Path(str(row["path"])).with_suffix("").as_posix()
    return "url-" + hashlib.sha256(str(row["url"]).encode()).hexdigest()[:16]


def _read_file(path: Path, skipped: dict[str, int]) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        _bump(skipped, "unreadable_file")
        return None


class _UrlFetcher:
    """http(s) fetches under the downloader's address policy, a deadline and a size cap; failures become skips."""

    def __init__(self, allow_hosts: tuple[str, ...]):
        from wit_builder.download.policy import AddressPolicy, SafeOpener

        try:
            self.opener = SafeOpener(AddressPolicy.from_allow_hosts(tuple(allow_hosts)))
        except ValueError as err:
            raise WitError(str(err)) from err

    def fetch(self, url: str, skipped: dict[str, int]) -> bytes | None:
        from wit_builder.download.policy import Deadline, DeadlineExceeded, Refused

        try:
            with Deadline(URL_TIMEOUT_S) as deadline:
                body = self.opener.fetch(str(url), deadline, timeout=URL_TIMEOUT_S, max_bytes=URL_MAX_BYTES)
        except Refused:
            _bump(skipped, "url_refused")
            return None
        except DeadlineExceeded:
            _bump(skipped, "url_timeout")
            return None
        except Exception:  # noqa: BLE001 - any network or HTTP failure is a counted skip
            _bump(skipped, "url_failed")
            return None
        if len(body) > URL_MAX_BYTES:
            _bump(skipped, "url_too_large")
            return None
        return body
