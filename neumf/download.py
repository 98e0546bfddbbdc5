"""Where data lives, and fetching MovieLens-100K from GroupLens safely."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import List, Tuple

from tqdm.auto import tqdm

from ._util import file_digest

__all__ = [
    "DEFAULT_TIMEOUT",
    "ML100K_SHA1",
    "ML100K_URL",
    "DownloadError",
    "data_home",
    "download_ml100k",
    "find_file",
    "safe_extract",
    "search_folders",
]

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_SHA1 = "cd4dcac4241c8a4ad7badc7ca635da8a69dddb83"
# Seconds to wait for a connection or for the next block of data: with two
# retries, a host that never answers is given up on within a minute.
DEFAULT_TIMEOUT = 15.0
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed, or its content is not what it should be."""


def _cache() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "neumf"


def search_folders(data_dir: str | os.PathLike | None = None) -> List[Tuple[Path, str]]:
    """The folders data is looked for in, in order, each with where it came from:
    ``data_dir`` alone when given; else ``$NEUMF_DATA_DIR`` (when set), then the
    user cache (``$XDG_CACHE_HOME/neumf``, ``~/.cache/neumf``)."""
    if data_dir is not None:
        return [(Path(data_dir).expanduser(), "data_dir")]
    folders = []
    env = os.environ.get("NEUMF_DATA_DIR")
    if env:
        folders.append((Path(env).expanduser(), "$NEUMF_DATA_DIR"))
    folders.append((_cache(), "the user cache"))
    return folders


def data_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$NEUMF_DATA_DIR``,
    else ``$XDG_CACHE_HOME/neumf`` (``~/.cache/neumf``)."""
    return search_folders(data_dir)[0][0]


def _searched(relative: str, data_dir) -> str:
    where = ", ".join(f"{folder} ({origin})" for folder, origin in search_folders(data_dir))
    return (f"looked for {relative} in {where}; to use a local copy, pass data_dir=FOLDER "
            "(neumf train --data-dir FOLDER) or set NEUMF_DATA_DIR to the folder that holds "
            f"{relative}")


def find_file(relative: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """The first of :func:`search_folders` that holds ``relative``, else a
    FileNotFoundError that says where it looked."""
    if data_dir is not None and Path(data_dir).is_file():
        raise NotADirectoryError(f"data_dir {data_dir} is a file, not a folder: pass the "
                                 f"folder that holds {relative}")
    for folder, _ in search_folders(data_dir):
        if (folder / relative).exists():
            return folder / relative
    raise FileNotFoundError(f"{relative} not found: {_searched(str(relative), data_dir)}")


def _fetch(url: str, target: Path, sha1: str, timeout: float, progress: bool) -> None:
    """Stream ``url`` into a temporary file beside ``target``, check its SHA-1,
    then rename it into place; on any failure nothing is left behind."""
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha1()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            size = response.headers.get("Content-Length")
            with tqdm(total=int(size) if size and size.isdigit() else None, unit="B",
                      unit_scale=True, desc=f"downloading {target.name}", leave=False,
                      disable=None if progress else True) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha1:
            raise DownloadError(
                f"{url}: SHA-1 {digest.hexdigest()} does not match the expected {sha1}; "
                "the download is corrupt or was tampered with and was not kept"
            )
        os.replace(tmp_name, target)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if created and not any(target.parent.iterdir()):
            target.parent.rmdir()
        if isinstance(exc, OSError) and not isinstance(exc, DownloadError):
            raise DownloadError(f"{url}: download failed: {exc}") from exc
        raise


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> None:
    """Extract a zip archive into ``target``, refusing members whose paths are
    absolute or escape ``target``. Extraction goes to a temporary folder that is
    moved into place member-folder by member-folder, so a failure leaves nothing."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with zipfile.ZipFile(archive) as zipped:
        for name in zipped.namelist():
            dest = (root / name).resolve()
            if name.startswith(("/", "\\")) or (dest != root and root not in dest.parents):
                raise DownloadError(f"{archive}: member {name!r} would be written outside {target}")
        staging = Path(tempfile.mkdtemp(prefix=".extract.", dir=target))
        try:
            zipped.extractall(staging)
            for entry in staging.iterdir():
                final = target / entry.name
                if final.is_dir():
                    shutil.rmtree(final)
                elif final.exists():
                    final.unlink()
                os.replace(entry, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def download_ml100k(
    data_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    sha1: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 2,
    backoff: float = 1.0,
    progress: bool = False,
) -> Path:
    """Path of ``ml-100k/u.data``: the first of :func:`search_folders` that holds
    it, else GroupLens' ``ml-100k.zip`` downloaded into the first folder,
    checked and extracted.

    The archive is verified against ``sha1`` before it is kept (as
    ``ml-100k.zip``, so a later call does not download again) or extracted.
    ``url`` and ``sha1`` default to :data:`ML100K_URL` and :data:`ML100K_SHA1`.
    A failed, truncated or corrupt transfer is retried ``retries`` times (waiting
    ``backoff`` seconds, doubling), each attempt waiting at most ``timeout``
    seconds for the host; then a :class:`DownloadError` says where the file
    was looked for and how to point at a local copy. Nothing partial is kept.
    ``progress`` shows a progress bar.
    """
    url, sha1 = url or ML100K_URL, sha1 or ML100K_SHA1
    relative = os.path.join("ml-100k", "u.data")
    try:
        return find_file(relative, data_dir)
    except FileNotFoundError:
        pass
    home = search_folders(data_dir)[0][0]
    ratings, archive = home / relative, home / "ml-100k.zip"
    if archive.is_file() and file_digest(archive, "sha1") != sha1:
        archive.unlink()  # a stale or corrupt cache entry is never trusted
    for attempt in range(retries + 1):
        if archive.is_file():
            break
        try:
            _fetch(url, archive, sha1, timeout, progress)
        except DownloadError as exc:
            if attempt == retries:  # a truncated or corrupt transfer may succeed again
                raise DownloadError(f"MovieLens-100K is not here and could not be fetched: "
                                    f"{exc}; {_searched(relative, data_dir)}") from None
            time.sleep(backoff * 2**attempt)
    try:
        safe_extract(archive, home)
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive}: not a readable zip archive ({exc}); removed") from None
    except DownloadError:
        archive.unlink(missing_ok=True)  # a refused archive is never left in the cache
        raise
    if not ratings.is_file():
        raise DownloadError(f"{archive}: has no ml-100k/u.data member")
    return ratings
