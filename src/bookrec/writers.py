"""Vector files for other serving stacks (FAISS, vector databases), written chunk by chunk.

Every format holds, per row, the internal id (`id`, int64), the external id (`external_id`) and
the vector (float32), in ascending id order, and one metadata object (the family, the side, the
run that wrote the vectors and its parameters; see services/export.py):

- parquet: columns id, external_id, vector (fixed_size_list<float32>[dim], not null), a row
  group per chunk; the metadata as JSON in the schema metadata under the key `bookrec`.
- npy: one uncompressed .npz (a zip of .npy members): `vectors` (rows × dim float32), `ids`
  (int64), `external_ids` (unicode) and `metadata` (a 0-d unicode array of JSON text):
  `np.load(FILE)["vectors"]`. The vectors member is streamed; ids and external ids wait in
  temporary files until it is done.
- jsonl: a first line `{"bookrec_export": metadata}`, then one `{"id", "external_id",
  "vector"}` object per line (float32 values printed shortest-exact, so they read back equal).

The file appears only when complete: it is written to a temporary file beside it and renamed
over it at the end; on any error or interrupt the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import orjson

FORMATS = ("parquet", "npy", "jsonl")
SUFFIXES = {".parquet": "parquet", ".npz": "npy", ".npy": "npy", ".jsonl": "jsonl"}
METADATA_KEY = "bookrec"
JSONL_HEADER_KEY = "bookrec_export"


def format_of(path: Path, given: str | None) -> str | None:
    """The format asked for, else the one the file name's suffix says (None if neither)."""
    if given is not None:
        return given
    return SUFFIXES.get(path.suffix.lower())


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` only when the block ends without an exception (or
    KeyboardInterrupt): a temporary file in the same directory, renamed over `path`."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp made it private; the user's umask rules
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class VectorWriter(Protocol):
    def write(self, ids: np.ndarray, external_ids: list[str], vectors: np.ndarray) -> None: ...

    def close(self) -> None:
        """Finish the file (called only after every chunk was written)."""


def open_writer(
    fmt: str, file: BinaryIO, rows: int, dim: int, metadata: dict[str, Any]
) -> VectorWriter:
    writers = {"parquet": ParquetWriter, "npy": NpzWriter, "jsonl": JsonlWriter}
    return writers[fmt](file, rows, dim, metadata)


class ParquetWriter:
    def __init__(self, file: BinaryIO, rows: int, dim: int, metadata: dict[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        # Not-null fields: Parquet then writes no definition level per number (1.8x faster).
        self.vector_type = pa.list_(pa.field("element", pa.float32(), nullable=False), dim)
        self.schema = pa.schema(
            [
                pa.field("id", pa.int64(), nullable=False),
                pa.field("external_id", pa.string(), nullable=False),
                pa.field("vector", self.vector_type, nullable=False),
            ],
            metadata={METADATA_KEY: orjson.dumps(metadata)},
        )
        # Vectors do not compress; ids do. Statistics of the ids only (for row-group pruning).
        self.writer = pq.ParquetWriter(
            file, self.schema, compression={"id": "zstd", "external_id": "zstd",
            "vector": "none"}, use_dictionary=False, write_statistics=["id", "external_id"],
        )  # fmt: skip

    def write(self, ids: np.ndarray, external_ids: list[str], vectors: np.ndarray) -> None:
        pa = self.pa
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        columns = [
            pa.array(ids, pa.int64()),
            pa.array(external_ids, pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, type=self.vector_type),
        ]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class NpzWriter:
    def __init__(self, file: BinaryIO, rows: int, dim: int, metadata: dict[str, Any]) -> None:
        self.rows, self.dim, self.metadata = rows, dim, metadata
        self.zip = zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.vectors = self.zip.open("vectors.npy", "w", force_zip64=True)
        _npy_header(self.vectors, np.dtype("<f4"), (rows, dim))
        # Unnamed temporary files: closed in close(), and never left on disk whatever happens.
        self.ids = tempfile.TemporaryFile()  # noqa: SIM115
        self.external_ids = tempfile.TemporaryFile()  # noqa: SIM115
        self.longest = 1

    def write(self, ids: np.ndarray, external_ids: list[str], vectors: np.ndarray) -> None:
        self.vectors.write(np.ascontiguousarray(vectors, dtype="<f4").data)
        self.ids.write(np.asarray(ids, dtype="<i8").tobytes())
        self.longest = max([self.longest, *map(len, external_ids)])
        self.external_ids.write(b"".join(orjson.dumps(e) + b"\n" for e in external_ids))

    def close(self) -> None:
        self.vectors.close()
        with self.ids, self.zip.open("ids.npy", "w", force_zip64=True) as member:
            _npy_header(member, np.dtype("<i8"), (self.rows,))
            self.ids.seek(0)
            while block := self.ids.read(8 << 20):
                member.write(block)
        text_type = np.dtype(f"<U{self.longest}")
        with self.external_ids, self.zip.open("external_ids.npy", "w", force_zip64=True) as out:
            _npy_header(out, text_type, (self.rows,))
            self.external_ids.seek(0)
            while lines := self.external_ids.readlines(8 << 20):
                out.write(np.array([orjson.loads(line) for line in lines], text_type).data)
        with self.zip.open("metadata.npy", "w") as member:
            np.lib.format.write_array(member, np.array(orjson.dumps(self.metadata).decode()))
        self.zip.close()


def _npy_header(file: Any, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": shape}  # fmt: skip
    np.lib.format.write_array_header_1_0(file, header)


class JsonlWriter:
    def __init__(self, file: BinaryIO, rows: int, dim: int, metadata: dict[str, Any]) -> None:
        self.file = file
        file.write(orjson.dumps({JSONL_HEADER_KEY: metadata}) + b"\n")

    def write(self, ids: np.ndarray, external_ids: list[str], vectors: np.ndarray) -> None:
        dumps, numpy = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        lines = [
            dumps({"id": i, "external_id": e, "vector": v}, option=numpy)
            for i, e, v in zip(ids.tolist(), external_ids, vectors, strict=True)
        ]
        self.file.write(b"\n".join(lines) + b"\n")

    def close(self) -> None:
        pass
