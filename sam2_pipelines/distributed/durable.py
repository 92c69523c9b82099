"""Durable, resumable outputs: one part file per batch of rows, named by the ids it holds.

A part is written under a hidden temporary name in the output folder, flushed to disk, then renamed to
``part-<hash of its ids>.parquet`` (or ``.jsonl``): a reader never sees a partial file, a batch that is run
again (a retried task) replaces its own part with the same rows, and a later run skips every id already in
a part (:meth:`PartStore.done_ids`). Readers such as ``pandas.read_parquet(folder)`` ignore hidden files, so
the temporary files of an interrupted run are invisible; :meth:`PartStore.clean_temporary` removes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

#: Output formats of batch runs.
FORMATS = ("parquet", "jsonl")

#: Columns of each kind of run. ``records`` / ``frames`` hold JSON text in Parquet (one string per row) and
#: plain JSON values in JSON lines; ``error`` is null for rows that were processed.
COLUMNS = {
    "masks": {"id": "string", "height": "int64", "width": "int64", "num_masks": "int64", "records": "json", "error": "string"},
    "tracks": {"id": "string", "num_frames": "int64", "object_ids": "list<int64>", "frames": "json", "error": "string"},
}


@dataclasses.dataclass
class RunSummary:
    """What one run did: rows processed, of which failed (error rows), and rows skipped as already written."""

    output: str
    done: int = 0
    failed: int = 0
    skipped: int = 0

    def __str__(self) -> str:
        return f"{self.done} rows written ({self.failed} with errors), {self.skipped} skipped as already in {self.output}"


def check_format(output_format: str) -> str:
    if output_format not in FORMATS:
        raise ValueError(f"output_format must be one of {', '.join(FORMATS)}; got {output_format!r}")
    return output_format


def rows_table(rows: list[dict], kind: str):
    """Output rows of a ``kind`` of run as an Arrow table with that kind's columns and types (missing values null)."""
    import pyarrow as pa

    types = {"string": pa.string(), "json": pa.string(), "int64": pa.int64(), "list<int64>": pa.list_(pa.int64())}
    schema = pa.schema([(name, types[column]) for name, column in COLUMNS[kind].items()])
    return pa.Table.from_pylist([{name: row.get(name) for name in COLUMNS[kind]} for row in rows], schema=schema)


class PartStore:
    """The part files of one output folder (``kind``: ``"masks"`` or ``"tracks"``)."""

    def __init__(self, directory, kind: str, output_format: str = "parquet"):
        if kind not in COLUMNS:
            raise ValueError(f"kind must be one of {', '.join(COLUMNS)}; got {kind!r}")
        self.directory = Path(os.fspath(directory))
        self.kind = kind
        self.format = check_format(output_format)
        self.suffix = ".parquet" if output_format == "parquet" else ".jsonl"

    def check_directory(self) -> None:
        """Refuse an output that is a file, or a folder holding parts of the other format (before any work)."""
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"output must be a folder (created if missing); {self.directory} is a file")
        other = [p.name for p in self._parts(other_format=True)]
        if other:
            raise ValueError(
                f"{self.directory} already holds parts in another format ({other[0]}, ...); resume with the format "
                f"they were written in, or pick another output folder"
            )

    def _parts(self, other_format: bool = False) -> list[Path]:
        if not self.directory.is_dir():
            return []
        suffixes = {".parquet", ".jsonl"} - {self.suffix} if other_format else {self.suffix}
        return sorted(p for p in self.directory.iterdir() if p.name.startswith("part-") and p.suffix in suffixes)

    def parts(self) -> list[Path]:
        """The finished part files, by name."""
        return self._parts()

    def part_path(self, ids) -> Path:
        """The deterministic name of the part holding ``ids`` (in that order)."""
        digest = hashlib.sha1("\n".join(map(str, ids)).encode("utf-8")).hexdigest()[:24]
        return self.directory / f"part-{digest}{self.suffix}"

    def done_ids(self) -> set[str]:
        """Every id already written (processed or failed) by earlier runs into this folder."""
        done: set[str] = set()
        for path in self.parts():
            if self.format == "parquet":
                import pyarrow.parquet as pq

                done.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
            else:
                with open(path, encoding="utf-8") as lines:
                    done.update(json.loads(line)["id"] for line in lines if line.strip())
        return done

    def clean_temporary(self) -> int:
        """Remove the temporary files an interrupted run left behind; returns how many."""
        if not self.directory.is_dir():
            return 0
        leftovers = [p for p in self.directory.iterdir() if p.name.startswith(".part-") and ".tmp" in p.name]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    def write(self, rows: list[dict]) -> Path | None:
        """Write ``rows`` (dicts with this kind's columns) as one part; returns its path (None for no rows)."""
        if not rows:
            return None
        path = self.part_path([row["id"] for row in rows])
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(rows_table(rows, self.kind), temporary)
            else:
                with open(temporary, "w", encoding="utf-8") as out:
                    for row in rows:
                        out.write(json.dumps(self._json_row(row)) + "\n")
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return path

    def _json_row(self, row: dict) -> dict:
        columns = COLUMNS[self.kind]
        return {
            name: (json.loads(row[name]) if kind == "json" and row.get(name) is not None else row.get(name))
            for name, kind in columns.items()
        }
