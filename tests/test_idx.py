"""The IDX reader on tiny files written here: raw and gzip, every type, and clear errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from prunegym.experiments.idx import IDXError, read_idx, write_idx


def _hand_written_idx(values: np.ndarray) -> bytes:
    """An IDX3 uint8 file built byte by byte (independent of write_idx)."""
    header = bytes([0, 0, 0x08, values.ndim]) + b"".join(struct.pack(">I", d) for d in values.shape)
    return header + values.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compressed", [False, True])
def test_reads_hand_written_uint8_images(tmp_path: Path, compressed: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    blob = _hand_written_idx(images)
    path = tmp_path / ("images-idx3-ubyte" + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(blob) if compressed else blob)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 7  # the result is an ordinary writable array


def test_gzip_is_detected_from_content_not_name(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, but compressed
    path.write_bytes(gzip.compress(_hand_written_idx(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", "<i4", "f4", ">f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_type(tmp_path: Path, dtype: str, suffix: str) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 2, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a-{dtype.strip('<>')}{suffix}", array)
    assert path.read_bytes().startswith(b"\x1f\x8b") == (suffix == ".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, array)


def test_big_endian_on_disk(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.array([1, 258], dtype=np.int32))
    assert path.read_bytes() == bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + bytes([0, 0, 0, 1, 0, 0, 1, 2])


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_data_is_a_clear_error(tmp_path: Path, compressed: bool) -> None:
    blob = _hand_written_idx(np.zeros((4, 5, 5), dtype=np.uint8))[:-7]
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(gzip.compress(blob) if compressed else blob)
    with pytest.raises(IDXError, match=r"truncated IDX data: shape \(4, 5, 5\) needs 100 bytes"):
        read_idx(path)


def test_truncated_gzip_stream_is_a_clear_error(tmp_path: Path) -> None:
    full = gzip.compress(_hand_written_idx(np.ones((10, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(IDXError, match=r"cut\.gz: corrupt or truncated gzip data"):
        read_idx(path)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "truncated IDX header"),
        (b"\x00\x00\x08", "truncated IDX header"),
        (bytes([0, 0, 0x08, 3, 0, 0, 0, 2]), r"truncated IDX header \(3 dimensions"),
        (b"PK\x03\x04 not idx", "not an IDX file"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 9]), "not an IDX file"),
        (bytes([0, 0, 0x08, 1, 0, 0, 0, 1, 9, 9]), "1 unexpected trailing bytes"),
    ],
)
def test_malformed_files(tmp_path: Path, blob: bytes, message: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(blob)
    with pytest.raises(IDXError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)  # the CLI turns it into one line and exit 2


def test_write_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot store dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.complex64))


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")
