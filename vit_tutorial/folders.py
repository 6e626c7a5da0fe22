"""The folders checkpoints live in: files named by their content, written atomically, claimed and locked.

- A file we write is staged under a temporary name, fsynced, and renamed to a name made of its
  content: `model-<first 16 hex digits of its SHA-256>.safetensors`. Such a name proves the
  file ours (nothing else makes files whose names match their hashes), so it may be removed later.
- `writing(path, listed)` claims a folder: it refuses a file, a folder it cannot write to, and a
  folder that holds anything but our files, creates it, and holds its lock while the block runs.
- The lock is `fcntl.flock` on `.checkpoint.lock`, released by the operating system when its
  process ends: a second run into the same folder is refused at once. Where there is no fcntl
  (Windows) the file is still written, which proves the folder writable, but nothing is locked.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK = ".checkpoint.lock"
NAME = re.compile(r"^(model|training_state)-([0-9a-f]{16})\.(safetensors|json)$")
TEMP = re.compile(r"^\.[a-z_]+\.tmp-\d+-[0-9a-f]{8}$")
_HELD: dict[Path, list[int]] = {}  # folder -> [file descriptor, holders] for the locks this process holds
_GUARD = threading.Lock()


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB pieces (a 50 GB file needs no 50 GB of memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(2**20):
            digest.update(piece)
    return digest.hexdigest()


def expand(path: str | os.PathLike) -> Path:
    """`path` with `~` expanded; an empty name is refused (it would mean the current folder)."""
    if path is None or not str(path).strip():
        raise ValueError(f"{path!r} names no folder: pass the checkpoint's folder, such as runs/vit.")
    return Path(path).expanduser()


def stage(folder: Path, role: str, write: Callable[[Path], object], stem_suffix: tuple[str, str] | None) -> dict:
    """Write a file through `write(tmp)` under a temporary name: {"tmp", and with `stem_suffix` its
    content-addressed "name", "sha256" and "bytes"}. The caller renames it and removes it on failure."""
    entry = {"tmp": folder / f".{role}.tmp-{os.getpid()}-{secrets.token_hex(4)}"}
    try:
        write(entry["tmp"])
        os.chmod(entry["tmp"], 0o644)  # safetensors creates files readable by their owner only
        with open(entry["tmp"], "rb") as f:
            os.fsync(f.fileno())
        if stem_suffix:
            sha = sha256_of(entry["tmp"])
            entry.update(name=f"{stem_suffix[0]}-{sha[:16]}{stem_suffix[1]}", sha256=sha, bytes=entry["tmp"].stat().st_size)
    except BaseException:
        entry["tmp"].unlink(missing_ok=True)
        raise
    return entry


def fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable (POSIX)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def provably_ours(file: Path) -> bool:
    """A leftover we may remove: a temporary file of ours, or a file whose content-addressed name matches its content."""
    if TEMP.match(file.name):
        return True
    match = NAME.match(file.name)
    return bool(match) and file.is_file() and sha256_of(file).startswith(match.group(2))


def claim(folder: Path, listed: Callable[[Path], tuple[dict | None, set[str]]]) -> dict | None:
    """`listed(folder)` -> (info, names of the files it names) of the checkpoint in an existing folder; returns that
    info (None for no folder or an empty one) after making sure the folder holds nothing else."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder: give the checkpoint a folder of its own.")
    if not folder.exists():
        return None
    info, known = listed(folder)
    strangers = sorted(p.name for p in folder.iterdir() if p.name not in known | {LOCK} and not provably_ours(p))
    if strangers:
        raise ValueError(
            f"{folder} holds files that are not part of a vit_tutorial checkpoint ({', '.join(strangers[:4])}"
            f"{', ...' if len(strangers) > 4 else ''}): checkpoints are written only into a new or empty folder, "
            "or over a checkpoint; choose another folder."
        )
    return info


@contextmanager
def writing(path: str | os.PathLike, listed: Callable) -> Iterator[tuple[Path, dict | None]]:
    """Claim `path` (see `claim`), create it and hold its lock: yields (folder, info of what is there or None)."""
    folder = expand(path)
    claim(folder, listed)  # before creating anything
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the folder {folder} ({err.strerror or err}): choose a folder you can write to.") from None
    with hold(folder):
        yield folder, claim(folder, listed)  # again, now that no other writer can change it


def _acquire(folder: Path) -> int:
    """Open and lock folder/LOCK; a ValueError naming the holder if another process has it."""
    path = folder / LOCK
    for _ in range(3):  # the file may vanish between open and lock when its holder finishes
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ValueError(f"cannot write into {folder} ({err.strerror or err}): choose a folder you can write to.") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ValueError(f"another process (pid {holder}) is writing a checkpoint into {folder}: "
                                 "let it finish, or give this run another folder.") from None
            if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                continue
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd
    raise ValueError(f"could not lock {folder}: other processes keep writing there; give this run another folder.")


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold the lock of `folder` (an existing directory) while the block runs; re-entrant in one process."""
    key = folder.resolve()
    with _GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            _HELD[key] = [_acquire(folder), 1]
    try:
        yield
    finally:
        with _GUARD:
            _HELD[key][1] -= 1
            if _HELD[key][1] == 0:
                fd = _HELD.pop(key)[0]
                (folder / LOCK).unlink(missing_ok=True)  # while still locked: no one else can hold this file
                os.close(fd)
