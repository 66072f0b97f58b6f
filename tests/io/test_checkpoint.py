"""Checkpoints: exact round trips, atomic saves, and a typed error for every kind of damaged file."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from helpers import errors_without_blocking
from tracerl.errors import CheckpointError
from tracerl.io import (
    FORMAT_NAME,
    FORMAT_VERSION,
    check_tensor_shapes,
    load_checkpoint,
    save_checkpoint,
)
from tracerl.io import checkpoint as checkpoint_module

KIND = "tracerl.Test"


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(4, 3, generator=g),
        "f64": torch.randn(5, generator=g, dtype=torch.float64),
        "i64": torch.randint(-(2**40), 2**40, (6,), generator=g),
        "u8": torch.randint(0, 256, (2, 2, 2), generator=g, dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 7),
    }


META = {"step": 1234, "name": "run-a", "lr": 3e-4, "nested": {"sizes": [1, 2, 3], "big": 2**100}, "none": None}


def _save(path: Path, meta: dict | None = None) -> dict[str, torch.Tensor]:
    tensors = _tensors()
    save_checkpoint(path, tensors, META if meta is None else meta, KIND)
    return tensors


def _header(path: Path) -> tuple[dict, int]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), 8 + n


def _rewrite_header(path: Path, edit) -> None:
    """Apply ``edit`` to the parsed header and write the file back with the same tensor data."""
    header, data_start = _header(path)
    data = path.read_bytes()[data_start:]
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _edit_metadata(path: Path, key: str, value: str) -> None:
    def edit(header: dict) -> None:
        header["__metadata__"][key] = value

    _rewrite_header(path, edit)


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".tmp" in p.name]


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    tensors = _save(path)
    loaded, meta = load_checkpoint(path, kind=KIND)
    assert meta == META
    assert set(loaded) == set(tensors)
    for name, original in tensors.items():
        got = loaded[name]
        assert got.dtype == original.dtype, name
        assert got.shape == original.shape, name
        assert got.device.type == "cpu"
        assert checkpoint_module.tensor_sha256(got) == checkpoint_module.tensor_sha256(original), name
        assert torch.equal(got, original), name


def test_kind_none_accepts_any_kind_and_metadata_is_stamped(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    load_checkpoint(path)
    header, _ = _header(path)
    metadata = header["__metadata__"]
    assert metadata["format"] == FORMAT_NAME
    assert metadata["format_version"] == str(FORMAT_VERSION)
    assert metadata["kind"] == KIND
    assert json.loads(metadata["meta"]) == META
    assert set(json.loads(metadata["tensors_sha256"])) == set(_tensors())
    assert json.loads(metadata["tensors_shape"])["f32"] == [[4, 3], "torch.float32"]


def test_saves_views_shared_and_noncontiguous_tensors(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"a": base, "b": base, "t": base.t(), "row": base[1], "grad": torch.ones(2, requires_grad=True)}
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, tensors, {}, KIND)
    loaded, _ = load_checkpoint(path)
    for name, original in tensors.items():
        assert torch.equal(loaded[name], original.detach()), name


@pytest.mark.faults("A tensor that is an expanded view (zero stride, e.g. one env's carry) | saved and loaded bit-identically | none")
@pytest.mark.parametrize("shape", [(1,), (1, 1), (3,), (2, 1, 4)])
def test_saves_zero_stride_expanded_tensors(tmp_path: Path, shape: tuple[int, ...]) -> None:
    # torch.tensor(2.5).expand(1) has stride (0,) and counts as contiguous, so .contiguous() returns it unchanged
    expanded = torch.tensor(2.5).expand(*shape)
    assert 0 in expanded.stride()
    ints = torch.tensor([7], dtype=torch.int64).expand(*shape[:-1], 1) if len(shape) > 1 else torch.tensor(7).expand(1)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, {"x": expanded, "i": ints}, {}, KIND)
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded["x"], expanded) and list(loaded["x"].shape) == list(shape)
    assert torch.equal(loaded["i"], ints)


def test_parent_directories_are_created_and_no_temp_file_remains(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ckpt.safetensors"
    _save(path)
    _save(path)  # overwrite
    assert path.exists()
    assert _leftovers(path.parent) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.safetensors"]


# ---------------------------------------------------------------------------------------- failed saves


def test_non_serialisable_meta_names_the_key_and_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="inner"):
        save_checkpoint(path, {"x": torch.ones(1)}, {"ok": 1, "outer": {"inner": object()}}, KIND)
    with pytest.raises(TypeError, match="bad_key"):
        save_checkpoint(path, {"x": torch.ones(1)}, {"bad_key": {1, 2}}, KIND)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    load_checkpoint(path, kind=KIND)


@pytest.mark.faults("Save fails at the final rename (os.replace raises) | the OSError propagates; the previous checkpoint still loads; the temp file is removed | none")
def test_failing_replace_keeps_previous_file_and_removes_temp(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    before = path.read_bytes()
    seen: list[str] = []

    def broken_replace(src, dst):
        seen.append(os.fspath(src))
        assert Path(src).exists()
        raise OSError("disk on fire")

    monkeypatch.setattr(checkpoint_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        save_checkpoint(path, {"other": torch.zeros(3)}, {"new": True}, KIND)
    monkeypatch.undo()

    assert len(seen) == 1
    temp = Path(seen[0])
    assert temp.parent == tmp_path and temp.name.startswith(".") and ".tmp" in temp.name
    assert not temp.exists()
    assert _leftovers(tmp_path) == []
    assert path.read_bytes() == before
    _, meta = load_checkpoint(path, kind=KIND)
    assert meta == META


def test_failing_write_removes_temp(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "ckpt.safetensors"

    def broken_fsync(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(checkpoint_module.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        _save(path)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------- bad files


def _assert_error(path: Path, match: str, entry: str | None = None, kind: str | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, kind=kind)
    assert info.value.path == os.fspath(path)
    assert str(path) in str(info.value)
    assert info.value.entry == entry
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    _assert_error(tmp_path / "nope.safetensors", "not found")


@pytest.mark.faults("Checkpoint truncated (6 cut points: length field, header, tensor data) | CheckpointError naming the file | none (the agent is not touched)")
@pytest.mark.parametrize("where", ["length", "header_start", "header_middle", "header_end", "data", "data_end"])
def test_truncated_file(tmp_path: Path, where: str) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    data = path.read_bytes()
    _, data_start = _header(path)
    cut = {
        "length": 5,
        "header_start": 9,
        "header_middle": data_start // 2,
        "header_end": data_start - 1,
        "data": data_start + (len(data) - data_start) // 2,
        "data_end": len(data) - 1,
    }[where]
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="truncated|corrupt") as info:
        load_checkpoint(path)
    assert info.value.path == os.fspath(path)
    if where.startswith("data"):
        assert info.value.entry in _tensors()


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(b"")
    _assert_error(path, "not a safetensors file or truncated")


@pytest.mark.faults("One flipped byte inside a tensor | CheckpointError naming the file and the tensor (SHA-256 mismatch) | none")
def test_flipped_byte_in_tensor_data_names_the_tensor(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    header, data_start = _header(path)
    begin, end = header["f64"]["data_offsets"]
    data = bytearray(path.read_bytes())
    data[data_start + (begin + end) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    _assert_error(path, "sha256", entry="f64")


def test_edited_meta_with_stale_hash(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    _edit_metadata(path, "meta", json.dumps({**META, "step": 99999}, sort_keys=True))
    _assert_error(path, "metadata does not match", entry="meta")


@pytest.mark.faults("Manifest names a tensor the file lacks | CheckpointError naming the entry | none")
def test_manifest_naming_an_absent_tensor(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)

    def edit(header: dict) -> None:
        metadata = header["__metadata__"]
        hashes = json.loads(metadata["tensors_sha256"])
        shapes = json.loads(metadata["tensors_shape"])
        hashes["ghost"] = hashes["f32"]
        shapes["ghost"] = shapes["f32"]
        metadata["tensors_sha256"] = json.dumps(hashes)
        metadata["tensors_shape"] = json.dumps(shapes)

    _rewrite_header(path, edit)
    _assert_error(path, "missing from the file", entry="ghost")


def test_tensor_not_in_manifest(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)

    def edit(header: dict) -> None:
        metadata = header["__metadata__"]
        for key in ("tensors_sha256", "tensors_shape"):
            listed = json.loads(metadata[key])
            del listed["u8"]
            metadata[key] = json.dumps(listed)

    _rewrite_header(path, edit)
    _assert_error(path, "not listed in the manifest", entry="u8")


@pytest.mark.faults("Tensor shape differs from the manifest | CheckpointError naming the entry | none")
def test_manifest_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)

    def edit(header: dict) -> None:
        metadata = header["__metadata__"]
        shapes = json.loads(metadata["tensors_shape"])
        shapes["f32"] = [[3, 4], "torch.float32"]
        metadata["tensors_shape"] = json.dumps(shapes)

    _rewrite_header(path, edit)
    _assert_error(path, "manifest says", entry="f32")


@pytest.mark.faults("Checkpoint from a newer format version | CheckpointError 'written by a newer tracerl' | none")
def test_newer_format_version(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    _edit_metadata(path, "format_version", str(FORMAT_VERSION + 1))
    _assert_error(path, "written by a newer tracerl", entry="format_version")


@pytest.mark.faults("Another model's checkpoint kind | CheckpointError naming both kinds | none")
def test_wrong_kind(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    _save(path)
    _assert_error(path, f"checkpoint holds {KIND}, expected tracerl.Other", entry="kind", kind="tracerl.Other")


def test_plain_safetensors_file_is_not_a_tracerl_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    _assert_error(path, "not a tracerl checkpoint", entry="format")
    save_file({"w": torch.ones(2)}, str(path), metadata={"format": "pt"})
    _assert_error(path, "not a tracerl checkpoint", entry="format")


@pytest.mark.faults("A file of random bytes | CheckpointError naming the file | none")
def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.safetensors"
    g = torch.Generator().manual_seed(3)
    path.write_bytes(torch.randint(0, 256, (4096,), generator=g, dtype=torch.uint8).numpy().tobytes())
    _assert_error(path, "not a safetensors file or truncated|corrupt")


def test_json_header_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "odd.safetensors"
    raw = b"[1, 2, 3]"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    _assert_error(path, "corrupt safetensors header")


class _WritesMarker:
    """Unpickling this would create a marker file: the loader must never unpickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.faults("A pickle payload that would create a marker file | CheckpointError; the payload never runs (no marker file) | none")
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_payload_is_rejected_without_running_it(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(_WritesMarker(marker), protocol=protocol))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert info.value.path == os.fspath(path)
    assert not marker.exists()


@pytest.mark.faults("A torch.save (zip/pickle) file | CheckpointError without unpickling | none")
def test_torch_save_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert info.value.path == os.fspath(path)


# ------------------------------------------------------------------------------- check_tensor_shapes


def test_check_tensor_shapes_accepts_a_match() -> None:
    check_tensor_shapes(_tensors(), {k: v.clone() for k, v in _tensors().items()}, "x.safetensors")


@pytest.mark.parametrize(
    ("change", "entry", "match"),
    [
        (lambda d: d.pop("f64"), "f64", "missing"),
        (lambda d: d.update(extra=torch.zeros(1)), "extra", "unexpected"),
        (lambda d: d.update(f32=torch.zeros(3, 4)), "f32", r"\[3, 4\]"),
        (lambda d: d.update(i64=torch.zeros(6, dtype=torch.int32)), "i64", "int32"),
    ],
)
def test_check_tensor_shapes_names_the_entry(change, entry: str, match: str) -> None:
    loaded = _tensors()
    change(loaded)
    with pytest.raises(CheckpointError, match=match) as info:
        check_tensor_shapes(_tensors(), loaded, "model.safetensors")
    assert info.value.entry == entry
    assert info.value.path == "model.safetensors"


def test_failed_shape_check_leaves_model_untouched(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "other.safetensors"
    save_checkpoint(path, torch.nn.Linear(4, 2).state_dict(), {}, KIND)
    loaded, _ = load_checkpoint(path, kind=KIND)
    with pytest.raises(CheckpointError) as info:
        check_tensor_shapes(model.state_dict(), loaded, path)
    assert info.value.entry == "weight"
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


# ----------------------------------------------------------------------------------------- special files


def _bytes_read() -> int:
    """Bytes this process has read through read() calls so far (Linux /proc/self/io ``rchar``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


_needs_proc_io = pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")


@pytest.mark.faults("A FIFO (named pipe) given as the checkpoint | CheckpointError 'not a regular file' at once, without waiting for a writer | none")
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "agent.tracerl"
    os.mkfifo(fifo)
    outcome = errors_without_blocking(load_checkpoint, [fifo], fifo, "load_checkpoint")
    assert len(outcome) == 1 and isinstance(outcome[0], CheckpointError), outcome
    assert "regular file" in str(outcome[0]) and str(fifo) in str(outcome[0])


@pytest.mark.faults("/dev/zero, or a symlink to it, given as the checkpoint | CheckpointError 'not a regular file' without reading it | none")
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("via_link", [False, True])
def test_device_file_and_link_to_it_are_refused(tmp_path: Path, via_link: bool) -> None:
    path = Path("/dev/zero")
    if via_link:
        path = tmp_path / "agent.tracerl"
        path.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="regular file") as err:
        load_checkpoint(path)
    assert err.value.path == str(path)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="regular file"):
        load_checkpoint(tmp_path)


@pytest.mark.faults("A 2 GB sparse file whose 8-byte header length is absurd, or whose header is not JSON | CheckpointError after reading the header only | none")
@_needs_proc_io
@pytest.mark.parametrize("header", ["huge_length", "garbage_json", "header_past_end_of_file"])
def test_large_file_with_bad_header_is_refused_after_reading_the_header_only(tmp_path: Path, header: str) -> None:
    path = tmp_path / "big.tracerl"
    size = 2 * 1024**3
    with open(path, "wb") as handle:
        if header == "huge_length":
            handle.write(struct.pack("<Q", 2**40))
        elif header == "garbage_json":
            handle.write(struct.pack("<Q", 64) + b"\xff" * 64)
        else:  # a plausible length that the (small) file cannot hold
            handle.write(struct.pack("<Q", 4096))
        handle.truncate(size if header != "header_past_end_of_file" else 1000)
    before = _bytes_read()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert _bytes_read() - before < 1024**2, "the whole file was read before the header was checked"
    assert err.value.path == str(path)


@_needs_proc_io
def test_header_larger_than_the_cap_is_refused_before_reading_it(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.tracerl"
    _save(path)
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    monkeypatch.setattr(checkpoint_module, "MAX_HEADER_BYTES", header_len - 1)
    before = _bytes_read()
    with pytest.raises(CheckpointError, match="header"):
        load_checkpoint(path)
    assert _bytes_read() - before < header_len


def test_tensor_byte_range_inconsistent_with_its_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.tracerl"
    _save(path)

    def edit(header: dict) -> None:
        header["f32"]["shape"] = [400, 300]  # 480,000 bytes of float32 in a range of 48

    _rewrite_header(path, edit)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert err.value.entry == "f32"
