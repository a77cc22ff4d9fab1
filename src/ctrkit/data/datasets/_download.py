"""Fetching a dataset's files from its public location, with checksums and atomic writes.

:func:`download_file` streams one URL (``https://``, ``http://`` or ``file://``) into a temporary
file beside the destination while hashing it, checks the expected md5/sha256 when one is given,
and only then renames it into place, so an interrupted or corrupt download never leaves a file
that looks complete. :func:`fetch_dataset` downloads an adapter's archive (the reczoo zips on
Hugging Face, with Zenodo as a mirror), extracts the expected files and verifies each against its
published md5 before moving it into the output directory. A local directory or zip can stand in
for the network (``source=``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ctrkit.errors import DataError

if TYPE_CHECKING:
    from ctrkit.data.datasets._base import DatasetAdapter

_BLOCK = 1 << 20
USER_AGENT = "ctrkit-data-download/0.1"


def _tmp_beside(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.part-{os.getpid()}-{time.time_ns()}"


def download_file(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5``/``sha256`` when given.

    Raises :class:`DataError` on a checksum mismatch (nothing is left at ``dest``) and lets
    ``urllib.error.URLError`` through for network failures.
    """
    from tqdm.auto import tqdm

    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(target)
    h_md5 = hashlib.md5(usedforsecurity=False)
    h_sha = hashlib.sha256()
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(tmp, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress, leave=False
            ) as bar:
                for chunk in iter(lambda: resp.read(_BLOCK), b""):
                    out.write(chunk)
                    h_md5.update(chunk)
                    h_sha.update(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and h_md5.hexdigest() != md5.lower():
            raise DataError(f"md5 mismatch: expected {md5}, got {h_md5.hexdigest()} (download of {url} discarded)", file=target)
        if sha256 is not None and h_sha.hexdigest() != sha256.lower():
            raise DataError(
                f"sha256 mismatch: expected {sha256}, got {h_sha.hexdigest()} (download of {url} discarded)", file=target
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _install(adapter: "DatasetAdapter", candidates: dict[str, Path], out: Path, *, verify: bool, progress: bool) -> dict[str, Path]:
    """Check each candidate file (split -> temporary path) and move it to ``out/<official name>``.

    Every candidate is verified before any is moved, so a bad archive installs nothing.
    """
    from ctrkit.data.datasets._base import md5_file

    for split, p in candidates.items():
        spec = adapter.file_spec(split)
        if verify and spec.md5 is not None:
            got = md5_file(p, progress=progress)
            if got != spec.md5:
                raise DataError(f"md5 mismatch: expected {spec.md5} (published), got {got}", file=out / spec.name)
    placed = {}
    for split, p in candidates.items():
        dest = out / adapter.file_spec(split).name
        os.replace(p, dest)
        placed[split] = dest
    return placed


def _extract(adapter: "DatasetAdapter", archive: Path, out: Path) -> dict[str, Path]:
    """Extract the expected files of ``archive`` (matched by base name, at any depth) to
    temporary names in ``out``."""
    wanted = {f.name: f.split for f in adapter.files}
    found: dict[str, Path] = {}
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError("not a zip archive", file=archive) from None
    with zf:
        for info in zf.infolist():
            base = Path(info.filename).name
            if info.is_dir() or base not in wanted or wanted[base] in found:
                continue
            tmp = _tmp_beside(out / base)
            with zf.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
            found[wanted[base]] = tmp
    missing = [f.name for f in adapter.files if f.split not in found]
    if missing:
        for p in found.values():
            p.unlink(missing_ok=True)
        raise DataError(f"archive lacks {missing}", file=archive)
    return found


def fetch_dataset(
    adapter: "DatasetAdapter",
    out_dir: str | Path,
    *,
    source: str | Path | None = None,
    urls: tuple[str, ...] | None = None,
    verify: bool = True,
    progress: bool = True,
) -> dict[str, Path]:
    """Put the adapter's files into ``out_dir``, verified against their published md5s.

    ``source`` is a local directory holding the files or a local zip archive (no network then);
    otherwise the adapter's ``urls`` (or the given ones) are tried in order until one works.
    Files already present and valid are kept. Returns split -> path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    present = {f.split: out / f.name for f in adapter.files if (out / f.name).exists()}
    if len(present) == len(adapter.files):
        if verify:
            adapter.verify(present, progress=progress)
        return present

    if source is not None:
        src = Path(source)
        if src.is_dir():
            located = adapter.locate(src)
            candidates = {}
            try:
                for split, p in located.items():
                    tmp = _tmp_beside(out / adapter.file_spec(split).name)
                    shutil.copyfile(p, tmp)
                    candidates[split] = tmp
                if verify:
                    adapter.verify(located, progress=progress)
                return _install(adapter, candidates, out, verify=False, progress=progress)
            finally:
                for p in candidates.values():
                    p.unlink(missing_ok=True)
        if src.is_file():
            candidates = _extract(adapter, src, out)
            try:
                return _install(adapter, candidates, out, verify=verify, progress=progress)
            finally:
                for p in candidates.values():
                    p.unlink(missing_ok=True)
        raise DataError("source does not exist", file=src)

    tried = list(urls if urls is not None else adapter.urls)
    if not tried:
        raise DataError(f"{adapter.name} has no public download location; give a local source instead")
    errors = []
    for url in tried:
        archive = out / f".{adapter.title or adapter.name}.zip"
        try:
            download_file(url, archive, progress=progress)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            errors.append(f"{url}: {e}")
            continue
        try:
            candidates = _extract(adapter, archive, out)
            try:
                return _install(adapter, candidates, out, verify=verify, progress=progress)
            finally:
                for p in candidates.values():
                    p.unlink(missing_ok=True)
        finally:
            archive.unlink(missing_ok=True)
    raise DataError("every download location failed:\n  " + "\n  ".join(errors))
