"""How neumf uses the CPU, set when it is imported: float32 denormals
flushed to zero in every thread of the process, and two MXNet engine workers.

Weight decay shrinks unused weights and their Adam moments towards zero until
they and their products are denormal, and on many x86 CPUs every operation on a
denormal costs a hundred cycles: an ML-1M epoch went from 14 s to 85 s on a
Xeon. The MXCSR register's flush-to-zero (FTZ) and denormals-are-zero (DAZ)
bits remove them, but the register is per thread and MXNet computes in engine
and OpenMP threads that may exist before this module is imported. So each
thread is sent a signal whose handler sets both bits in the register state
the kernel restores when the handler returns; threads started later inherit
them from the thread that starts them. A float32 value below 1.2e-38 becomes 0,
which a float32 score cannot tell apart anyway.

Importing this module (``import neumf`` does, first) applies it. Linux on
x86-64 only; elsewhere (or with ``NEUMF_FLUSH_DENORMALS=0``) nothing changes,
with one warning where it cannot apply.

MXNet runs its operators on one engine worker thread per device unless
``MXNET_CPU_WORKER_NTHREADS`` says otherwise, read once, when MXNet is
imported. A row-sparse epoch is a chain of small operators per table that
one worker runs one after the other while the other core waits: with two,
independent chains run side by side (an ML-1M epoch of MF 8.5 s -> 6.7 s on
2 cores), with the same results (the engine orders every read and write).
So where the variable is unset and MXNet not yet imported, it becomes 2.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import signal
import sys
import time

import numpy as np

from ._warn import warn

__all__ = ["ENGINE_WORKERS", "flush_denormals", "flushing"]

# MXNet engine worker threads on the CPU, where the user has not chosen
ENGINE_WORKERS = 2

# MXCSR bits: flush-to-zero (15) and denormals-are-zero (6)
FTZ_DAZ = 0x8040
# Seconds a thread may take to run the handler before it is given up on
_REPLY_SECONDS = 2.0
# x86-64 machine code of the handler, ``void handler(int, siginfo_t *, ucontext_t *uc)``:
#   mov rax, [rdx + 224]          ; uc->uc_mcontext.fpregs (glibc and kernel ABI)
#   test rax, rax
#   je done
#   or dword [rax + 24], 0x8040   ; fpregs->mxcsr |= FTZ | DAZ, restored by sigreturn
# done:
#   movabs rax, <counter>
#   lock inc qword [rax]          ; tell the sender this thread is done
#   ret
_HANDLER = (b"\x48\x8b\x82\xe0\x00\x00\x00" b"\x48\x85\xc0" b"\x74\x07"
            b"\x81\x48\x18\x40\x80\x00\x00" b"\x48\xb8{counter}" b"\xf0\x48\xff\x00" b"\xc3")
_SA_SIGINFO, _SA_RESTART = 4, 0x10000000
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS = 2, 0x20
_SYS_TGKILL = 234
# offset of __mxcsr in glibc's and musl's x86-64 fenv_t (28 bytes of x87 state first)
_FENV_MXCSR = 28


class _SigAction(ctypes.Structure):
    # glibc's x86-64 struct sigaction
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _thread_mxcsr() -> int:
    """This thread's MXCSR, through ``fegetenv`` (no compiler needed)."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    env = (ctypes.c_uint8 * 64)()
    if libm.fegetenv(env) != 0:
        raise OSError("fegetenv failed")
    return int.from_bytes(bytes(env[_FENV_MXCSR:_FENV_MXCSR + 4]), "little")


def flushing() -> bool:
    """Whether the calling thread flushes float32 denormals to zero (FTZ and DAZ set)."""
    if not _supported():
        return False
    return _thread_mxcsr() & FTZ_DAZ == FTZ_DAZ


def _supported() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def _handler(libc: ctypes.CDLL, counter: ctypes.c_uint64) -> int:
    """The handler's code in a page of its own, made executable (never freed:
    a thread that has not yet answered may still run it)."""
    code = _HANDLER.replace(b"{counter}", ctypes.addressof(counter).to_bytes(8, "little"))
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    page = libc.mmap(None, 4096, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS,
                     -1, 0)
    if page in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    ctypes.memmove(page, code, len(code))
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(page, 4096, _PROT_READ | _PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed (no executable memory)")
    return page


def _free_signal(libc: ctypes.CDLL) -> int:
    """The highest real-time signal nobody handles."""
    current = _SigAction()
    for number in range(signal.SIGRTMAX, signal.SIGRTMIN, -1):
        if libc.sigaction(number, None, ctypes.byref(current)) == 0 and not current.handler:
            return number
    raise OSError("no free real-time signal")


def _blocks(tid: int, number: int) -> bool:
    """Whether thread ``tid`` blocks or ignores signal ``number`` (it would never
    run the handler), or has gone."""
    try:
        with open(f"/proc/self/task/{tid}/status", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError:
        return True
    bit = 1 << (number - 1)
    return bool(int(fields["SigBlk"], 16) & bit) or bool(int(fields["SigIgn"], 16) & bit)


def _threads() -> set:
    try:
        return {int(name) for name in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _signal_threads(libc: ctypes.CDLL) -> int:
    """Run the handler on every thread of the process; returns how many did."""
    counter = ctypes.c_uint64(0)
    page = _handler(libc, counter)
    number = _free_signal(libc)
    action, previous = _SigAction(), _SigAction()
    action.handler, action.flags = page, _SA_SIGINFO | _SA_RESTART
    if libc.sigaction(number, ctypes.byref(action), ctypes.byref(previous)) != 0:
        raise OSError(ctypes.get_errno(), "sigaction failed")
    libc.syscall.restype = ctypes.c_long
    pid, done, silent = os.getpid(), set(), False
    # threads may start threads meanwhile (those inherit the bits from a done one)
    for _ in range(8):
        todo = sorted(_threads() - done)
        if not todo:
            break
        for tid in todo:
            done.add(tid)
            if _blocks(tid, number):
                continue
            expected = counter.value + 1
            if libc.syscall(_SYS_TGKILL, pid, tid, number) != 0:
                continue  # the thread has ended
            deadline = time.monotonic() + _REPLY_SECONDS
            while counter.value < expected and time.monotonic() < deadline:
                time.sleep(1e-5)
            silent |= counter.value < expected
    if not silent:  # else keep the handler: a late signal must not meet the default action
        libc.sigaction(number, ctypes.byref(previous), None)
    return int(counter.value)


def flush_denormals() -> bool:
    """Set flush-to-zero and denormals-are-zero in every thread of this process
    (threads started afterwards inherit them). Returns whether it applied; on
    another platform, or when a step is refused, warns and changes nothing."""
    if os.environ.get("NEUMF_FLUSH_DENORMALS", "1").strip() == "0":
        return False
    if not _supported():
        warn(f"neumf cannot flush float32 denormals to zero on "
             f"{platform.system()} {platform.machine()}: training may slow down "
             "where weights decay towards zero", RuntimeWarning)
        return False
    # NumPy computes a float type's limits on first use and warns that the
    # smallest subnormal is zero if that happens after this: compute them now
    for dtype in (np.half, np.single, np.double, np.longdouble, np.csingle, np.cdouble,
                  np.clongdouble):
        np.finfo(dtype)
    try:
        _signal_threads(_libc())
    except (OSError, AttributeError, ValueError) as error:
        warn(f"neumf could not flush float32 denormals to zero ({error}): training "
             "may slow down where weights decay towards zero", RuntimeWarning)
        return False
    return flushing()


def _engine_workers() -> None:
    """Two engine workers (see above), if MXNet starts after this and the user
    has not chosen."""
    if "mxnet" not in sys.modules and (os.cpu_count() or 1) >= ENGINE_WORKERS:
        os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(ENGINE_WORKERS))


flush_denormals()
_engine_workers()
