"""One way to write a file: atomically, privately, never through a link planted at a guessable name.

``atomic_write`` and ``atomic_open`` create the temporary file in the target's directory under a
random name (``tempfile.mkstemp``: ``O_CREAT|O_EXCL|O_NOFOLLOW``, so nothing that already exists there,
symbolic link or not, is opened), set its mode with ``fchmod`` before a byte is written, then write,
flush, fsync, ``os.replace`` it onto the target and fsync the directory, so a crash leaves either the
old file or the new one, never a partial one. On any error the temporary file is removed and the
target is untouched. A symbolic link at the target is replaced by the file (rename never follows it);
with ``refuse_symlink=True`` the write is refused instead.

``sha256_file`` hashes a file in chunks.

Why not ``AnsibleModule.atomic_move``: these helpers run without an AnsibleModule (module_utils are
called directly by unit tests and by other module_utils), and atomic_move would undo what they must
guarantee: it copies the mode of an existing target (a report left 0644 would stay 0644) or, for a
new one, applies 0666 minus the umask after the rename (a 0600 file briefly and then permanently
readable by others), and it fsyncs neither the file nor the directory. The callers' files are
written by the collection for the collection (ledger, reports, manifests, backups); none of the
code they replace kept the owner, group or SELinux context of an existing target, so neither do these.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import typing as t

CHUNK = 1024 * 1024

Writer = t.Callable[[t.BinaryIO], object]


def _refuse_link(path: str) -> None:
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "refusing to write through a symbolic link", path)


def fsync_dir(directory: str) -> None:
    """fsync ``directory`` so a rename in it survives a crash.

    Best effort where it cannot be done (a directory the writer may write but not read, a file system
    without directory fsync); an I/O error is raised.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str, mode: int = 0o600, *, refuse_symlink: bool = False, prefix: str | None = None,
                suffix: str = ".tmp", buffering: int = -1) -> t.Iterator[t.BinaryIO]:
    """Yield a binary file object that becomes ``path`` when the block ends without an exception.

    The file object's ``name`` is the temporary file's path (to read it back before it gets its name);
    with ``buffering=0`` it is unbuffered (``fileno()`` may then be written to directly). When the block
    raises, the temporary file is removed and ``path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if refuse_symlink:
        _refuse_link(path)
    if prefix is None:
        prefix = f".{os.path.basename(path)}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    handle: t.Any = None
    try:
        os.fchmod(fd, mode)
        handle = open(fd, "wb", buffering=buffering)  # noqa: SIM115 - closed below, on every path
        (handle if buffering == 0 else handle.raw).name = tmp
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        if refuse_symlink:
            _refuse_link(path)
        os.replace(tmp, path)
    except BaseException:
        if handle is not None:
            with contextlib.suppress(OSError, ValueError):
                handle.close()
        else:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def atomic_write(path: str, data: str | bytes | Writer, mode: int = 0o600, *, refuse_symlink: bool = False,
                 prefix: str | None = None, suffix: str = ".tmp") -> None:
    """Write ``data`` (text as UTF-8, bytes, or a callable that writes to a binary file object) to ``path``."""
    with atomic_open(path, mode, refuse_symlink=refuse_symlink, prefix=prefix, suffix=suffix) as handle:
        if callable(data):
            data(handle)
        else:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def sha256_file(path: str, chunk: int = CHUNK) -> str:
    """The sha256 (hex) of the file at ``path``, read ``chunk`` bytes at a time into one reused buffer."""
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()
