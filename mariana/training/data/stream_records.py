"""A stream's run.json record read back: the mapper rebuilt from the run's copy and the sources it recorded.

``DatasetMapper.describe()`` writes the record: the layout, the sampler, one
entry per row source (``"stored": "copy"``: its rows are in the run's
``data/STREAM.safetensors``; ``"reference"``: the source's class reopens the
entry, or asks for the data again) and the content hash. Runs written
before row sources recorded ``"files"`` (path, size and sha256 per
memory-mapped array) and ``"datasets"`` instead of ``"sources"``, and hashed
those in another order; both are still read.

Example:
    >>> import numpy as np
    >>> from mariana.training import DatasetMapper
    >>> record = DatasetMapper(inp=np.zeros((3, 2)), out=np.array([0, 1, 0])).describe()
    >>> [source["kind"] for source in record["sources"]], record["copied"]
    (['arrays'], True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mariana.registry import deserialize
from mariana.training.data.mappers import WEIGHTS, DatasetMapper
from mariana.training.data.samplers import Sampler
from mariana.training.data.sources import hash_array, reopen_record


def recorded_hash(mapper: DatasetMapper, record: Mapping[str, Any]) -> str:
    """``mapper``'s content hash as the format of ``record`` computes it (to compare with ``record["sha256"]``)."""
    if "sources" in record:
        return mapper.content_hash()
    return _first_format_hash(mapper)


def _first_format_hash(mapper: DatasetMapper) -> str:
    """The hash of runs written before row sources: copies, then files by key, then Datasets' layouts."""
    digest = hashlib.sha256()
    for key, array in sorted(mapper.hashed_arrays().items()):
        hash_array(digest, key, array)
    records = [{**source.describe(), "keys": mapper.keys_of(source)} for source in mapper.sources if source.stored != "copy"]
    for record in sorted((r for r in records if r["kind"] == "file"), key=lambda r: r["keys"][0]):
        digest.update(f"{record['keys'][0]}|file|{record['dtype']}|{record['shape']}|{record['offset']}|{record['sha256']}|".encode())
    for record in records:
        if record["kind"] == "dataset":
            identity = {key: record[key] for key in ("class", "length", "fields", "layouts")}
            digest.update(f"dataset|{json.dumps(identity, sort_keys=True)}|".encode())
    return digest.hexdigest()


def recorded_sources(record: Mapping[str, Any]) -> list[dict]:
    """The record's sources in the current form (a first-format record's files and Datasets converted)."""
    if "sources" in record:
        return [dict(source) for source in record["sources"]]
    files = [{"kind": "file", "stored": "reference", "keys": [key], **entry} for key, entry in record.get("files", {}).items()]
    datasets = [{"kind": "dataset", "stored": "reference", "keys": list(entry["fields"]), **entry} for entry in record.get("datasets", [])]
    referenced = {key for source in files + datasets for key in source["keys"]}
    copied = [key for key in record["arrays"] if key not in referenced]
    return files + datasets + ([{"kind": "arrays", "stored": "copy", "keys": copied}] if copied else [])


def read_stream(load_copy: Callable[[], dict[str, np.ndarray]], record: Mapping[str, Any], run: str, stream: str) -> DatasetMapper:
    """The mapper the run recorded for ``stream``: ``load_copy()`` gives the run's copy of its data; ``run`` names the run."""
    sources = recorded_sources(record)
    if not record.get("copied", True) and any(source["stored"] == "copy" for source in sources):
        raise ValueError(f"{run} did not copy its {stream} data (copy_data=False): "
                         f"pass the same data again to resume, e.g. Trainer.resume(run_dir, {stream}=...).")
    values: dict[str, Any] = {}
    for source in sources:
        if source["stored"] != "copy":
            values.update(reopen_record(source, run, stream))
    arrays = load_copy()
    weights = {key[len(WEIGHTS):]: value for key, value in arrays.items() if key.startswith(WEIGHTS)}
    values.update({key: value for key, value in arrays.items() if not key.startswith(WEIGHTS)})
    ordered = {key: values[key] for key in record["arrays"] if key in values}  # the recorded key order
    ordered.update(values)
    mapper = DatasetMapper(sampler=deserialize(record["sampler"], Sampler), weights=weights or None, **ordered)
    if recorded_hash(mapper, record) != record["sha256"]:
        raise ValueError(f"The run directory's data copy does not match its recorded hash: expected {record['sha256']}, "
                         f"but the files hash to {recorded_hash(mapper, record)}. The copy is damaged.")
    return mapper
