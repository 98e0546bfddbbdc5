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

__all__ = [
    "ML100K_SHA1",
    "ML100K_URL",
    "DownloadError",
    "data_home",
    "download_ml100k",
    "safe_extract",
    "sha1_of",
]

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_SHA1 = "cd4dcac4241c8a4ad7badc7ca635da8a69dddb83"
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed, or its content is not what it should be."""


def data_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$NEUMF_DATA_DIR``,
    else ``$XDG_CACHE_HOME/neumf`` (``~/.cache/neumf``)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("NEUMF_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "neumf"


def sha1_of(path: str | os.PathLike) -> str:
    """Hex SHA-1 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, sha1: str, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``, check its SHA-1,
    then rename it into place; on any failure nothing is left behind."""
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha1()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
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
    timeout: float = 60.0,
    retries: int = 2,
    backoff: float = 1.0,
) -> Path:
    """Path of ``ml-100k/u.data`` under the data directory, downloading and
    extracting GroupLens' ``ml-100k.zip`` first if it is not there.

    The archive is verified against ``sha1`` before it is kept (as
    ``ml-100k.zip``, so a later call does not download again) or extracted.
    ``url`` and ``sha1`` default to :data:`ML100K_URL` and :data:`ML100K_SHA1`.
    A failed, truncated or corrupt transfer is retried ``retries`` times (waiting
    ``backoff`` seconds, doubling), then refused; nothing partial is kept.
    """
    sha1 = sha1 or ML100K_SHA1
    home = data_home(data_dir)
    ratings = home / "ml-100k" / "u.data"
    if ratings.is_file():
        return ratings
    archive = home / "ml-100k.zip"
    if archive.is_file() and sha1_of(archive) != sha1:
        archive.unlink()  # a stale or corrupt cache entry is never trusted
    for attempt in range(retries + 1):
        if archive.is_file():
            break
        try:
            _fetch(url or ML100K_URL, archive, sha1, timeout)
        except DownloadError:
            if attempt == retries:  # a truncated or corrupt transfer may succeed again
                raise
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
