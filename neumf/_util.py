"""Small shared helpers: argument checks, memory checks before allocating,
JSON-safe values, file digests, atomic writes of a file or a whole folder.
No MXNet here."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import math
import numbers
import os
import platform
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Union

import numpy as np

__all__ = ["MEMORY_SHARE", "atomic_write", "available_memory", "check_bool", "check_int",
           "check_memory", "check_number", "check_path", "check_positive_int",
           "exchange_folders", "file_digest", "format_bytes", "fsync_folder", "json_safe",
           "open_own_file", "replace_folder"]

PathLike = Union[str, os.PathLike]
# Share of the memory available now that one allocation may take.
MEMORY_SHARE = 0.8
# renameat2(2)'s flag that swaps two paths; its system call number where the C library
# has no wrapper (glibc before 2.28).
_RENAME_EXCHANGE, _AT_FDCWD = 2, -100
_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}


def _is_integral_number(value) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def check_bool(name: str, value, *, optional: bool = False) -> bool | None:
    """``value`` if it is True or False (or None when ``optional``), else a
    TypeError naming the argument: a string like 'no' would count as True."""
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False{' or None' if optional else ''}; got "
                        f"{value!r} ({type(value).__name__})")
    return bool(value)


def check_path(name: str, value, *, optional: bool = False) -> Path | None:
    """``value`` as a Path if it is a non-empty str or os.PathLike (or None when
    ``optional``), else a TypeError / ValueError naming the argument."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike); got {value!r} "
                        f"({type(value).__name__})")
    if not os.fspath(value).strip():
        raise ValueError(f"{name} is empty: name a folder or file")
    return Path(value)


def check_int(name: str, value, minimum: int | None = None) -> int:
    """``value`` as an int, or a TypeError (not a number) / ValueError (not a
    whole number, or below ``minimum``) that names the argument."""
    if not _is_integral_number(value) or isinstance(value, complex):
        raise TypeError(f"{name} must be an integer; got {value!r} "
                        f"({type(value).__name__})")
    if not math.isfinite(float(value)) or int(value) != value:
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if minimum is not None and value < minimum:
        kind = {0: "a non-negative", 1: "a positive"}.get(minimum, f"an integer >= {minimum},")
        raise ValueError(f"{name} must be {kind} integer; got {value!r}")
    return int(value)


def check_positive_int(name: str, value) -> int:
    """``value`` as an int of at least 1 (see :func:`check_int`)."""
    return check_int(name, value, 1)


def check_number(name: str, value, *, positive: bool = False,
                 non_negative: bool = False) -> float:
    """``value`` as a finite float, or a TypeError / ValueError naming the argument."""
    if not _is_integral_number(value) or isinstance(value, complex):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive; got {value!r}")
    if non_negative and not value >= 0:
        raise ValueError(f"{name} must be non-negative; got {value!r}")
    return value


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``,
    else physical memory), or None where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(count: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def check_memory(nbytes: float, what: str) -> None:
    """Raise MemoryError, before anything is allocated, when ``what`` would need
    more than :data:`MEMORY_SHARE` of the memory available now."""
    available = available_memory()
    if available is not None and nbytes > MEMORY_SHARE * available:
        raise MemoryError(f"{what} would need {format_bytes(nbytes)} of memory, more than "
                          f"this machine can give ({format_bytes(available)} available); "
                          "choose smaller sizes")


def json_safe(value):
    """NaN and infinities as None, NumPy scalars and arrays as Python values,
    tuples as lists: what ``json.dump(..., allow_nan=False)`` accepts."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Write ``path`` through ``write(temporary_name)`` and rename it into place,
    so a reader never sees half a file. The temporary file is
    ``.<name>.<random>.tmp`` beside it, removed on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _renameat2():
    """A callable ``(old, new, flags) -> (result, errno)`` for Linux's renameat2, or
    None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to call
        return None
    if hasattr(libc, "renameat2"):
        call = libc.renameat2
        return lambda old, new, flags: (call(_AT_FDCWD, old, _AT_FDCWD, new, flags),
                                        ctypes.get_errno())
    number = _RENAMEAT2.get(platform.machine()) if os.uname().sysname == "Linux" else None
    if number is None or not hasattr(libc, "syscall"):
        return None
    libc.syscall.restype = ctypes.c_long
    return lambda old, new, flags: (libc.syscall(number, _AT_FDCWD, old, _AT_FDCWD, new, flags),
                                    ctypes.get_errno())


_RENAME = _renameat2() if hasattr(os, "uname") else None


def exchange_folders(first: PathLike, second: PathLike) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``),
    so neither path is ever missing. False where the system or the file system
    cannot (nothing was changed then); other failures raise OSError."""
    if _RENAME is None:
        return False
    result, code = _RENAME(os.fsencode(first), os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), os.fspath(first), None, os.fspath(second))


def replace_folder(staged: PathLike, target: PathLike) -> None:
    """Put the complete folder ``staged`` at ``target`` (a sibling path), replacing
    what is there. With an atomic swap a reader of ``target`` sees the old folder
    or the new one, never neither; elsewhere the old one is renamed aside first
    and put back if the second rename fails. The old folder is then removed
    (``shutil.rmtree`` removes links, never what they point to)."""
    staged, target = Path(staged), Path(target)
    if not os.path.lexists(target):
        os.rename(staged, target)
        return
    if exchange_folders(staged, target):
        shutil.rmtree(staged, ignore_errors=True)  # the old folder now
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, aside / target.name)
    try:
        os.rename(staged, target)
    except OSError:
        os.rename(aside / target.name, target)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def fsync_folder(folder: PathLike) -> None:
    """Flush every file of ``folder`` and the folder itself to the disk, so a
    crash after a rename cannot leave empty files under it (POSIX; a no-op
    where folders cannot be opened)."""
    for path in Path(folder).iterdir():
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    if hasattr(os, "O_DIRECTORY"):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def open_own_file(path: PathLike, what: str) -> int:
    """A descriptor for reading and writing ``path``, created if missing, that is
    never a symbolic link, a hard link to another name or anything but a
    regular file (each refused with a ValueError naming ``what``): a write
    through it stays in its folder."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise ValueError(f"{path} is a symbolic link: {what} is never written through a "
                             "link; remove it") from None
        raise
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(descriptor)
        raise ValueError(f"{path} is not a file of its own ("
                         + ("a hard link to another file" if stat.S_ISREG(info.st_mode)
                            else "not a regular file") + f"): {what} is never written "
                         "there; remove it")
    if hasattr(os, "set_blocking"):
        os.set_blocking(descriptor, True)
    return descriptor
