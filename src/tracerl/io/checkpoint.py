"""Checkpoints: one safetensors file holding tensors, JSON metadata and integrity hashes.

A tracerl checkpoint is a plain safetensors file (no pickle anywhere, so loading never runs code).
Its string metadata carries:

``format``          always :data:`FORMAT_NAME`
``format_version``  the integer :data:`FORMAT_VERSION` the file was written with
``kind``            what the file holds, e.g. ``"tracerl.TraceRL"``
``meta``            the caller's JSON metadata (``json.dumps(..., sort_keys=True)``)
``meta_sha256``     sha256 hex of the ``meta`` string
``tensors_sha256``  JSON ``{name: sha256 hex of the tensor's raw bytes}``
``tensors_shape``   JSON ``{name: [shape, dtype]}`` with dtype as ``str(torch.dtype)``

Saving is atomic: the bytes go to a hidden temporary file beside the target which then replaces it,
so a crash mid-save leaves the previous checkpoint intact. Loading checks everything above and raises
:class:`~tracerl.errors.CheckpointError` naming the file (and the entry) on the first problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import Tensor

from tracerl.errors import CheckpointError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "check_tensor_shapes",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "save_checkpoint",
    "upgrade_state_keys",
]

FORMAT_NAME = "tracerl-checkpoint"
"""Value of the ``format`` metadata key of every tracerl checkpoint."""

FORMAT_VERSION = 1
"""Newest checkpoint layout this version of tracerl writes and reads."""

PathLike = Union[str, "os.PathLike[str]"]

_HEADER_LEN_BYTES = 8

MAX_HEADER_BYTES = 100_000_000
"""Largest JSON header :func:`load_checkpoint` reads (safetensors' own limit): a longer one is refused before
it is read."""

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
                "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_METADATA_KEY = "__metadata__"
_REQUIRED_KEYS = ("format", "format_version", "kind", "meta", "meta_sha256", "tensors_sha256", "tensors_shape")


# --------------------------------------------------------------------------------------------- hashing


def _row_major(tensor: Tensor) -> Tensor:
    """A detached CPU tensor with row-major strides holding ``tensor``'s values.

    ``Tensor.contiguous()`` is not enough: a one-element expanded view (``torch.tensor(x).expand(1)``, stride 0,
    e.g. a one-env carry) counts as contiguous and is returned unchanged, and its bytes cannot be viewed.
    """
    t = tensor.detach().to("cpu")
    expected = 1
    strides_ok = True
    for size, stride in zip(reversed(t.shape), reversed(t.stride())):
        if size != 1 and stride != expected:
            strides_ok = False
            break
        expected *= size
    if strides_ok and t.numel() > 0 and t.storage_offset() == 0 and all(s != 0 for s in t.stride()):
        return t
    return t.clone(memory_format=torch.contiguous_format)


def tensor_sha256(tensor: Tensor) -> str:
    """sha256 hex digest of a tensor's raw bytes (row-major, from a contiguous CPU copy)."""
    flat = _row_major(tensor).reshape(-1)
    digest = hashlib.sha256()
    if flat.numel() > 0:
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------- saving


def _check_json(value: Any, where: str) -> None:
    """Raise TypeError naming ``where`` if ``value`` would not survive a JSON round trip as JSON types."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"meta key {where}: mapping key {key!r} is not a str; JSON keys must be strings")
            _check_json(item, f"{where}.{key}")
        return
    raise TypeError(f"meta key {where}: value of type {type(value).__name__} is not JSON-serialisable")


def _meta_json(meta: Mapping[str, Any]) -> str:
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a mapping, got {type(meta).__name__}")
    for key, value in meta.items():
        if not isinstance(key, str):
            raise TypeError(f"meta key {key!r} is not a str; JSON keys must be strings")
        _check_json(value, key)
    return json.dumps(dict(meta), sort_keys=True)


def _prepare_tensors(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors; entries sharing storage with an earlier entry are cloned."""
    prepared: dict[str, Tensor] = {}
    seen_storages: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensor names must be non-empty strings, got {name!r}")
        if name == _METADATA_KEY:
            raise ValueError(f"{_METADATA_KEY!r} is reserved by safetensors and cannot name a tensor")
        if not isinstance(tensor, Tensor):
            raise TypeError(f"tensor {name!r} is a {type(tensor).__name__}, not a torch.Tensor")
        t = _row_major(tensor)
        storage = t.untyped_storage().data_ptr()
        if storage in seen_storages:
            t = t.clone()
            storage = t.untyped_storage().data_ptr()
        if t.numel() > 0:
            seen_storages.add(storage)
        prepared[name] = t
    return prepared


def _serialise(tensors: Mapping[str, Tensor], meta: Mapping[str, Any], kind: str) -> bytes:
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    meta_text = _meta_json(meta)
    prepared = _prepare_tensors(tensors)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "meta": meta_text,
        "meta_sha256": _text_sha256(meta_text),
        "tensors_sha256": json.dumps({n: tensor_sha256(t) for n, t in prepared.items()}, sort_keys=True),
        "tensors_shape": json.dumps({n: [list(t.shape), str(t.dtype)] for n, t in prepared.items()}, sort_keys=True),
    }
    return _st_save(prepared, metadata=metadata)


def _fsync_directory(directory: Path) -> None:
    """Persist a rename in ``directory`` (POSIX only; other systems have no directory handles)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_temp(target: Path) -> tuple[int, Path]:
    """Create a new hidden temporary file beside ``target``; permissions follow the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(16):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {target}")


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename over ``path``, fsync the directory.

    Parent directories are created. On any exception the temporary file is removed and the exception
    re-raised, leaving whatever was at ``path`` before untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(target.parent)


def save_checkpoint(path: PathLike, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], kind: str) -> None:
    """Save ``tensors`` and JSON ``meta`` to ``path`` as one tracerl checkpoint (atomic).

    Args:
        path: destination file; parent directories are created.
        tensors: name -> tensor. Saved detached, contiguous and on the CPU; entries sharing memory are cloned.
        meta: JSON-serialisable metadata (str keys). Tuples come back as lists.
        kind: what the checkpoint holds, e.g. ``"tracerl.TraceRL"``; checked by :func:`load_checkpoint`.

    Raises:
        TypeError: ``meta`` is not JSON-serialisable (the message names the key) or a tensor is not a Tensor.
        ValueError: ``kind`` is empty or a tensor name is reserved.
        OSError: the file could not be written; nothing is left behind and a previous file is intact.
    """
    data = _serialise(tensors, meta, kind)
    atomic_write_bytes(path, data)


# --------------------------------------------------------------------------------------------- loading


def _split_header(data: bytes, where: str) -> tuple[dict[str, Any], int]:
    """Parse the safetensors JSON header; return it and the size of the data section."""
    if len(data) < _HEADER_LEN_BYTES:
        raise CheckpointError(
            f"not a safetensors file or truncated: {len(data)} bytes, shorter than the 8-byte header length",
            path=where,
        )
    (header_len,) = struct.unpack("<Q", data[:_HEADER_LEN_BYTES])
    _check_header_len(header_len, len(data), where)
    available = len(data) - _HEADER_LEN_BYTES
    raw = data[_HEADER_LEN_BYTES : _HEADER_LEN_BYTES + header_len]
    return _parse_header(raw, where), available - header_len


def _check_header_len(header_len: int, file_size: int, where: str) -> None:
    """The 8-byte length field must leave room in the file and stay under :data:`MAX_HEADER_BYTES`."""
    available = file_size - _HEADER_LEN_BYTES
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"not a safetensors file or corrupt: the header length field says {header_len} bytes, more than the "
            f"{MAX_HEADER_BYTES} a checkpoint header may have",
            path=where,
        )
    if header_len > available:
        raise CheckpointError(
            f"not a safetensors file or truncated: header claims {header_len} bytes, file has {available} after it",
            path=where,
        )


def _parse_header(raw: bytes, where: str) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"corrupt safetensors header: {exc}", path=where) from exc
    if not isinstance(header, dict):
        raise CheckpointError("corrupt safetensors header: not a JSON object", path=where)
    return header


def _check_layout(header: Mapping[str, Any], data_len: int, where: str) -> list[str]:
    """Check each tensor's byte range lies inside the data section; return the tensor names."""
    names = []
    for name, info in header.items():
        if name == _METADATA_KEY:
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise CheckpointError("corrupt safetensors header: bad tensor entry", path=where, entry=name)
        if offsets[1] > data_len:
            raise CheckpointError(
                f"truncated: tensor data ends at byte {offsets[1]} of the data section, which has {data_len}",
                path=where,
                entry=name,
            )
        shape, dtype = info.get("shape"), info.get("dtype")
        if (
            not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or dtype not in _DTYPE_BYTES
        ):
            raise CheckpointError("corrupt safetensors header: bad tensor shape or dtype", path=where, entry=name)
        n_bytes = _DTYPE_BYTES[dtype]
        for d in shape:
            n_bytes *= d
        if n_bytes != offsets[1] - offsets[0]:
            raise CheckpointError(
                f"corrupt safetensors header: shape {shape} {dtype} needs {n_bytes} bytes, its data range has "
                f"{offsets[1] - offsets[0]}",
                path=where,
                entry=name,
            )
        names.append(name)
    return names


def _metadata(header: Mapping[str, Any], where: str) -> dict[str, str]:
    metadata = header.get(_METADATA_KEY)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        detail = "no format metadata" if found is None else f"format={found!r}"
        raise CheckpointError(f"not a tracerl checkpoint ({detail})", path=where, entry="format")
    for key in _REQUIRED_KEYS:
        if not isinstance(metadata.get(key), str):
            raise CheckpointError(f"checkpoint metadata lacks {key!r}", path=where, entry=key)
    return metadata


def _check_version(text: str, where: str) -> None:
    try:
        version = int(text)
    except ValueError:
        message = f"format_version {text!r} is not an integer"
        raise CheckpointError(message, path=where, entry="format_version") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint written by a newer tracerl (format_version {version}; this tracerl reads up to "
            f"{FORMAT_VERSION}); upgrade tracerl to load it",
            path=where,
            entry="format_version",
        )
    if version < 1:
        raise CheckpointError(f"invalid format_version {version}", path=where, entry="format_version")


def _json_object(text: str, key: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"metadata {key!r} is not valid JSON: {exc}", path=where, entry=key) from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"metadata {key!r} is not a JSON object", path=where, entry=key)
    return value


def _check_manifest(
    names: list[str], hashes: Mapping[str, Any], shapes: Mapping[str, Any], where: str
) -> None:
    present = set(names)
    for name in sorted(set(hashes) | set(shapes)):
        if name not in present:
            raise CheckpointError("tensor listed in the manifest is missing from the file", path=where, entry=name)
    for name in sorted(present):
        if name not in hashes or name not in shapes:
            raise CheckpointError("tensor in the file is not listed in the manifest", path=where, entry=name)


def _check_tensor(name: str, tensor: Tensor, digest: Any, shape_entry: Any, where: str) -> None:
    if (
        not isinstance(shape_entry, list)
        or len(shape_entry) != 2
        or not isinstance(shape_entry[0], list)
        or not isinstance(shape_entry[1], str)
    ):
        raise CheckpointError("malformed tensors_shape entry", path=where, entry=name)
    shape, dtype = shape_entry
    if list(tensor.shape) != shape or str(tensor.dtype) != dtype:
        raise CheckpointError(
            f"tensor is {list(tensor.shape)} {tensor.dtype}, manifest says {shape} {dtype}", path=where, entry=name
        )
    if tensor_sha256(tensor) != digest:
        raise CheckpointError("tensor data does not match its sha256 (corrupted)", path=where, entry=name)


def _open_regular_file(where: str) -> tuple[Any, int]:
    """Open ``where`` for reading without blocking (links are followed); refuse anything but a regular file.

    Returns ``(binary file object, file size)``. A FIFO opened with ``O_NONBLOCK`` does not wait for a writer, and
    the ``fstat`` of the opened descriptor (not of the name) decides, so a link swapped meanwhile cannot slip
    through.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(where, flags)
    except FileNotFoundError:
        raise CheckpointError("checkpoint file not found", path=where) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint: {exc}", path=where) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a plain file")
            raise CheckpointError(f"not a regular file ({kind}); a checkpoint must be a regular file", path=where)
        return os.fdopen(fd, "rb", buffering=0), int(info.st_size)  # unbuffered: read only what is asked
    except BaseException:
        os.close(fd)
        raise


def _read_up_to(handle: Any, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the file), looping over short reads of an unbuffered file."""
    chunks = []
    left = n
    while left > 0:
        chunk = handle.read(min(left, 1 << 30))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read_exact(handle: Any, n: int, where: str) -> bytes:
    data = _read_up_to(handle, n)
    if len(data) != n:
        raise CheckpointError(f"truncated: wanted {n} bytes, the file gave {len(data)} (it changed while read?)",
                              path=where)
    return data


def _read_checked_file(where: str) -> bytes:
    """The whole checkpoint file, read only after its length field and header passed the cheap checks.

    Order: regular file; 8-byte length (under :data:`MAX_HEADER_BYTES` and inside the file); the JSON header; every
    tensor's byte range inside the file and consistent with its shape and dtype; only then the data.
    """
    handle, size = _open_regular_file(where)
    try:
        with handle:
            if size < _HEADER_LEN_BYTES:
                raise CheckpointError(
                    f"not a safetensors file or truncated: {size} bytes, shorter than the 8-byte header length",
                    path=where,
                )
            head = _read_exact(handle, _HEADER_LEN_BYTES, where)
            (header_len,) = struct.unpack("<Q", head)
            _check_header_len(header_len, size, where)
            header = _parse_header(_read_exact(handle, header_len, where), where)
            _check_layout(header, size - _HEADER_LEN_BYTES - header_len, where)
            _metadata(header, where)
            handle.seek(0)
            data = _read_up_to(handle, size + 1)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint: {exc}", path=where) from exc
    if len(data) != size:
        raise CheckpointError(f"the file changed while it was read ({size} bytes, then {len(data)})", path=where)
    return data


def read_checkpoint_metadata(path: PathLike) -> dict[str, str]:
    """The string metadata of a tracerl checkpoint (``kind``, ``format_version``, ...), reading only its header.

    Raises:
        CheckpointError: as :func:`load_checkpoint` for a file that is not a regular file, not a tracerl checkpoint,
            or whose header is malformed or larger than :data:`MAX_HEADER_BYTES`.
    """
    where = os.fspath(path)
    handle, size = _open_regular_file(where)
    try:
        with handle:
            if size < _HEADER_LEN_BYTES:
                raise CheckpointError(f"not a safetensors file or truncated: {size} bytes", path=where)
            (header_len,) = struct.unpack("<Q", _read_exact(handle, _HEADER_LEN_BYTES, where))
            _check_header_len(header_len, size, where)
            header = _parse_header(_read_exact(handle, header_len, where), where)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint: {exc}", path=where) from exc
    return _metadata(header, where)


def load_checkpoint(
    path: PathLike, kind: str | None = None, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load and verify a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the checkpoint file.
        kind: if given, the checkpoint's ``kind`` must equal it.
        map_location: device the returned tensors are moved to.

    Returns:
        ``(tensors, meta)``: name -> tensor, and the JSON metadata.

    Raises:
        CheckpointError: the file is missing, unreadable, not a safetensors file, truncated, corrupt, not a
            tracerl checkpoint, from a newer tracerl, of another kind, or fails a hash/shape check. The error's
            ``path`` is the file and ``entry`` the failing part (tensor name or metadata key) when known.
    """
    where = os.fspath(path)
    data = _read_checked_file(where)
    header, data_len = _split_header(data, where)
    names = _check_layout(header, data_len, where)
    metadata = _metadata(header, where)
    _check_version(metadata["format_version"], where)
    if kind is not None and metadata["kind"] != kind:
        raise CheckpointError(f"checkpoint holds {metadata['kind']}, expected {kind}", path=where, entry="kind")
    if _text_sha256(metadata["meta"]) != metadata["meta_sha256"]:
        raise CheckpointError("metadata does not match its sha256 (edited or corrupted)", path=where, entry="meta")
    meta = _json_object(metadata["meta"], "meta", where)
    hashes = _json_object(metadata["tensors_sha256"], "tensors_sha256", where)
    shapes = _json_object(metadata["tensors_shape"], "tensors_shape", where)
    _check_manifest(names, hashes, shapes, where)

    try:
        tensors = _st_load(data)
    except Exception as exc:  # safetensors reports every malformed file with its own error types
        raise CheckpointError(f"corrupt or truncated safetensors data: {exc}", path=where) from exc
    for name in sorted(tensors):
        _check_tensor(name, tensors[name], hashes[name], shapes[name], where)
    if torch.device(map_location) != torch.device("cpu"):
        tensors = {name: t.to(map_location) for name, t in tensors.items()}
    return tensors, meta


def upgrade_state_keys(module: torch.nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` (a state dict for ``module``, as a checkpoint holds it) with the keys that older versions wrote
    under other names renamed to ``module``'s: every submodule with an ``upgrade_state_keys(state, prefix)`` method
    renames its own (e.g. :class:`~tracerl.policies.ObservationEncoder`). Call before :func:`check_tensor_shapes`."""
    out = dict(state)
    for name, sub in module.named_modules():
        upgrade = getattr(sub, "upgrade_state_keys", None)
        if callable(upgrade):
            out = upgrade(out, f"{name}." if name else "")
    return out


def check_tensor_shapes(
    expected: Mapping[str, Tensor], loaded: Mapping[str, Tensor], path: PathLike, prefix: str = ""
) -> None:
    """Check ``loaded`` has exactly the entries of ``expected`` with the same shapes and dtypes.

    Call before copying a loaded state into a live model so a mismatch leaves the model untouched. ``expected`` may
    live on the ``meta`` device (only shapes and dtypes are read). ``prefix`` is put before names in errors (the
    name of the entry in the file).

    Raises:
        CheckpointError: naming ``path`` and the first entry that is missing, unexpected, or differs.
    """
    where = os.fspath(path)
    for name, want in expected.items():
        if name not in loaded:
            raise CheckpointError("entry missing from the checkpoint", path=where, entry=prefix + name)
        got = loaded[name]
        # A module's extra state (nn.Module.get_extra_state, e.g. the strategic memory's hindsight replay) is a
        # packed vector whose length varies with what it holds.
        variable = name.endswith("_extra_state") and got.dim() == want.dim() == 1
        if (tuple(got.shape) != tuple(want.shape) and not variable) or got.dtype != want.dtype:
            raise CheckpointError(
                f"checkpoint has {list(got.shape)} {got.dtype}, expected {list(want.shape)} {want.dtype}",
                path=where,
                entry=prefix + name,
            )
    for name in loaded:
        if name not in expected:
            raise CheckpointError("unexpected entry in the checkpoint", path=where, entry=prefix + name)


def load_module_state(module: torch.nn.Module, state: Mapping[str, Tensor], path: PathLike, prefix: str = "") -> None:
    """``module.load_state_dict(state)``, after :func:`check_tensor_shapes`; a value the module refuses (a
    malformed packed extra state) raises :class:`CheckpointError` naming ``path`` and the ``prefix``."""
    try:
        module.load_state_dict(state)
    except (ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot load the state: {err}", path=os.fspath(path), entry=prefix or None) from err
