"""Radioactivity at scale: one exact test over a corpus spread across a Ray cluster.

:func:`radioactivity` scans a suspect corpus (jsonl or parquet files, or a ``ray.data.Dataset``)
with Ray Data and returns the driver's :class:`~greenmark.radioactivity.RadioactivityTest`
holding exactly the result of scoring every text on one machine in corpus order: every count,
the p-value and the curve.

The pipeline is Ray plumbing around the core's pooling (``greenmark::radioactivity::Pool``,
where the rule and its exactness test live):

1. **sift** (``map_batches``, ``workers`` tasks at once): each batch of texts is *sifted* by the
   Rust core with the GIL released (windows, prompt exclusion, filter, in-context copies,
   scores) and pooled (each distinct tuple once, at its first occurrence, with its number of
   occurrences), then split into ``partitions`` parts by fingerprint;
2. **global dedup** (``groupby("part").map_groups``): all occurrences of a fingerprint land in
   the same part, whose rows the core pools again (``pool_sifted``); with a budget
   (``max_tuples`` = M) it folds the part to its first M distinct tuples and counts every
   occurrence of the others as over budget (M distinct tuples come before each of them);
3. **record** (driver): the parts' pools, which share no fingerprint, are recorded on the
   driver's test (``record_pooled``): the distinct tuples in the order of their first
   occurrence with their counts, which gives the single-machine result exactly.

**Corpus order** is the order of ``(doc, position)``: ``doc`` is the integer ``id_column``
(default ``"id"``; non-negative, unique per text), or, with ``id_column=None``, the row's
place in a deterministic read: files sorted by path, rows in file order (file ``f``, row
``r`` is doc ``f * 2**32 + r``; each file is read whole by one task). ``position`` is the
tuple's place in its text. The single-machine equivalent scores the texts sorted by doc.

**Memory.** Each sift batch holds its texts and their tuples. Each part holds its distinct
tuples (40 bytes each: fingerprint, score, doc, position, count). The driver holds, per key,
every distinct tuple of the corpus at once (40 bytes in numpy, 40 in the core's pool plus
its index, 40 more while sorting) and the tape (about 19 bytes per scored tuple); with a budget M it holds at most
``partitions * M`` tuples per key, whatever the corpus size.

>>> import greenmark, greenmark.ray  # doctest: +SKIP
>>> test = greenmark.ray.radioactivity(make_test, "s3://bucket/suspect/")  # doctest: +SKIP
>>> test.result()["log10_p_value"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any, Callable, Sequence, Union

import numpy as np

from greenmark.radioactivity import RadioactivityTest

__all__ = ["CorpusError", "radioactivity"]

#: Rows of one part's output per key carry these list columns.
_LISTS = ("fingerprint", "score", "doc", "position", "count")
_LEFT_OUT = ("n_excluded", "n_filtered", "n_copied", "n_over_budget")


class CorpusError(ValueError):
    """The corpus cannot be read or lacks what the test needs (a file, a column, an id)."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised only without ray
        raise ImportError(
            f"greenmark.ray needs Ray Data ({err}): pip install 'ray[data]==2.60.0'"
        ) from err
    _mark_fsspec_http_missing()
    return ray


def _mark_fsspec_http_missing() -> None:
    """Ray Data 2.60 asks, for every path it reads, whether fsspec's HTTP filesystem is in
    use, and treats only ModuleNotFoundError as "no". Where fsspec is installed without
    aiohttp the first ask fails with ModuleNotFoundError and every later one with a plain
    ImportError, which breaks reading two or more files. Marking the module missing makes
    every ask a ModuleNotFoundError."""
    import sys

    try:
        import fsspec.implementations.http  # noqa: F401
    except ModuleNotFoundError:
        sys.modules.setdefault("fsspec.implementations.http", None)
    except ImportError:  # pragma: no cover - another failure: leave it to Ray
        pass


def radioactivity(
    make_test: Callable[[], RadioactivityTest],
    data: Union[str, Sequence[str], Any],
    *,
    ids_column: str = "ids",
    prefix_column: str | None = None,
    predictions_column: str | None = None,
    text_column: str | None = None,
    tokenizer: str | os.PathLike | None = None,
    id_column: str | None = "id",
    partitions: int = 8,
    batch_size: int = 2048,
    workers: int = 2,
) -> RadioactivityTest:
    """Runs a radioactivity test over ``data`` on the current Ray cluster (``ray.init`` first)
    and returns the driver's test, recorded: call ``.result()``.

    ``make_test`` builds the test: keys, config, ``max_tuples``, prompt windows and filter
    texts. It runs once on the driver and once per worker, so it must be picklable
    (cloudpickle) and deterministic; :class:`greenmark.Key` is not picklable on purpose, so
    load keys inside it (``Key.load(path)``) rather than capturing them.

    Modes, by the columns given:

    - closed mode on token ids: ``ids_column`` (lists of ids of the watermarking tokenizer),
      with ``prefix_column`` (the prompt's ids, giving the first windows) if set;
    - closed mode on text: ``text_column`` and ``tokenizer`` (the watermarking tokenizer's
      ``tokenizer.json``), tokenized on the workers as ``TextDetector.encode`` does;
    - open mode: ``ids_column`` (the watermarked text fed to the suspect) and
      ``predictions_column`` (its top-1 prediction after each prefix).

    ``data`` is a path, a list of paths (jsonl/json or parquet, local or any filesystem
    pyarrow reads, e.g. ``s3://``; directories are listed), or a ``ray.data.Dataset``.
    ``partitions`` is the number of fingerprint parts of the global dedup, ``workers`` the
    most sift tasks run at once (one CPU each), ``batch_size`` the texts per sift call.
    """
    ray = _ray()
    test = make_test()
    if not isinstance(test, RadioactivityTest):
        raise TypeError(
            f"make_test must return a greenmark.radioactivity.RadioactivityTest, got {type(test).__name__}"
        )
    result = test.result()
    if not result["dedup"]:
        raise ValueError(
            "the Ray pipeline pools distinct tuples: build the test with dedup=True (without "
            "dedup every occurrence counts in corpus order; score such a test on one machine)"
        )
    if any(k["n_seen"] for k in result["keys"]):
        raise ValueError("make_test returned a test that has already scored texts: return a fresh one")
    for name, value in (("partitions", partitions), ("batch_size", batch_size), ("workers", workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if text_column is not None and predictions_column is not None:
        raise ValueError("give text_column (closed mode on text) or predictions_column (open mode), not both")
    if text_column is not None and tokenizer is None:
        raise ValueError("text_column needs tokenizer=: the path of the watermarking tokenizer's tokenizer.json")
    if prefix_column is not None and (predictions_column is not None or text_column is not None):
        raise ValueError(
            "prefix_column is for closed mode on ids: open mode takes the windows from the input "
            "ids, and text mode has no prefixes"
        )
    columns = [text_column if text_column is not None else ids_column]
    columns += [c for c in (prefix_column, predictions_column) if c is not None]

    with _worker_errors_raised_here(ray):
        ds = _read(ray, data, columns, id_column)
        spec = _Spec(
            make_test=make_test,
            columns=tuple(columns),
            mode="text" if text_column is not None else ("open" if predictions_column else "closed"),
            tokenizer=None if tokenizer is None else os.fspath(tokenizer),
            partitions=partitions,
        )
        sifted = ds.map_batches(
            _sift,
            fn_args=(spec,),
            batch_format="pyarrow",
            batch_size=batch_size,
            compute=ray.data.TaskPoolStrategy(size=workers),
            num_cpus=1,
        )
        merged = sifted.groupby("part", num_partitions=partitions).map_groups(
            _merge, fn_args=(result["max_tuples"],), batch_format="pyarrow"
        )
        per_key = _collect(merged, len(result["keys"]))
    native = test._native
    for key, (arrays, left_out) in enumerate(per_key):
        native.record_pooled(key, *(arrays[name] for name in _LISTS), **left_out)
    return test


@contextlib.contextmanager
def _worker_errors_raised_here(ray):
    """Builds and runs Datasets so that a bad input found on a worker (a ValueError or
    TypeError of greenmark's or of the reader's) is raised here as itself, not wrapped."""
    context = ray.data.DataContext.get_current()
    saved = context.raise_original_map_exception
    context.raise_original_map_exception = True  # Datasets copy the context when built
    try:
        yield
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, (ValueError, TypeError)):
            raise cause from None
        raise
    finally:
        context.raise_original_map_exception = saved


class _Spec:
    """What a sift task needs: the test's recipe, the columns and the mode; `token` names
    this run, so a worker process builds its test once and reuses it for later batches."""

    def __init__(self, *, make_test, columns, mode, tokenizer, partitions):
        self.token = uuid.uuid4().hex
        self.make_test = make_test
        self.columns = columns
        self.mode = mode
        self.tokenizer = tokenizer
        self.partitions = partitions


def _read(ray, data, columns: list, id_column: str | None):
    """The corpus as a Dataset with the needed columns and the doc column ``__doc``."""
    if isinstance(data, ray.data.Dataset):
        if id_column is None:
            raise CorpusError(
                "a ray.data.Dataset has no stable row order: pass id_column= (an integer "
                "column numbering the texts), or pass the files' paths"
            )
        ds, names = data, _schema_names(data)
    else:
        paths = _list_files(data)
        if id_column is None:
            return _read_by_position(ray, paths, columns)
        parquet = all(_is_parquet(p) for p in paths)
        try:
            ds = ray.data.read_parquet(paths) if parquet else ray.data.read_json(paths)
        except Exception as err:  # pyarrow and ray report unreadable files in many types
            raise CorpusError(f"cannot read the corpus {paths[:3]}: {err}") from err
        names = _schema_names(ds) if parquet else _jsonl_columns(paths[0])
    missing = [c for c in columns + [id_column] if c not in names]
    if missing:
        hint = " (or id_column=None to order texts by their place in the files)" if id_column in missing else ""
        raise CorpusError(f"the corpus has no column {missing}; its columns are {names}: name the right ones{hint}")
    return ds.select_columns(columns + [id_column]).rename_columns({id_column: "__doc"})


def _schema_names(ds) -> list:
    try:
        return list(ds.schema().names)
    except Exception as err:  # pyarrow and ray report unreadable files in many types
        raise CorpusError(f"cannot read the corpus: {err}") from err


def _list_files(data) -> list:
    """Files of `data` (a path or paths; directories listed recursively), sorted."""
    import pyarrow.fs as pafs

    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not paths:
        raise CorpusError("no corpus given: pass a path, a list of paths or a ray.data.Dataset")
    out = []
    for path in paths:
        path = os.fspath(path)
        try:
            fs, inner = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), os.path.abspath(path))
            info = fs.get_file_info(inner)
            if info.type == pafs.FileType.NotFound:
                raise FileNotFoundError(f"no such file or directory: {path}")
            if info.type == pafs.FileType.Directory:
                found = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
                files = [f.path for f in found if f.type == pafs.FileType.File and _is_corpus_file(f.path)]
                prefix = path.split("://", 1)[0] + "://" if "://" in path else ""
                out.extend(prefix + f for f in sorted(files))
            else:
                out.append(path)
        except (OSError, ValueError) as err:
            raise CorpusError(f"cannot read the corpus at {path}: {err}") from err
    if not out:
        raise CorpusError(f"no .jsonl, .json or .parquet files under {paths}")
    return sorted(out)


def _jsonl_columns(path: str) -> list:
    """The keys of the first record of a jsonl file (read here, without running Ray)."""
    import json

    import pyarrow.fs as pafs

    try:
        fs, inner = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
        with fs.open_input_stream(inner) as f:
            head = f.read(1 << 20)
        line = next((x for x in head.splitlines() if x.strip()), b"")
        record = json.loads(line)
    except (OSError, ValueError) as err:
        raise CorpusError(f"cannot read corpus file {path} as JSON lines: {err}") from err
    if not isinstance(record, dict):
        raise CorpusError(f"{path} is not JSON lines of objects: its first record is {type(record).__name__}")
    return list(record)


def _is_parquet(path: str) -> bool:
    return path.endswith((".parquet", ".pq"))


def _is_corpus_file(path: str) -> bool:
    return _is_parquet(path) or path.endswith((".jsonl", ".json", ".ndjson"))


def _read_by_position(ray, paths: list, columns: list):
    """Reads each file whole in one task, numbering its rows: doc = file index * 2**32 + row."""
    if len(paths) >= 2**32:
        raise CorpusError(f"{len(paths)} files: at most 2**32 - 1 can be ordered by position")
    files = ray.data.from_items([{"file": i, "path": p} for i, p in enumerate(paths)], override_num_blocks=len(paths))
    return files.map_batches(_read_files, fn_args=(columns,), batch_format="pyarrow", batch_size=1)


def _read_files(batch, columns: list):
    import pyarrow as pa

    tables = []
    for file, path in zip(batch.column("file").to_pylist(), batch.column("path").to_pylist()):
        table = _read_table(path)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise CorpusError(f"{path} has no column {missing}; its columns are {table.column_names}")
        if table.num_rows >= 2**32:
            raise CorpusError(f"{path} has {table.num_rows} rows: at most 2**32 - 1 can be ordered by position")
        doc = np.uint64(file) * np.uint64(2**32) + np.arange(table.num_rows, dtype=np.uint64)
        tables.append(table.select(columns).append_column("__doc", pa.array(doc)))
    return pa.concat_tables(tables)


def _read_table(path: str):
    import pyarrow.fs as pafs
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    try:
        fs, inner = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
        if _is_parquet(path):
            return pq.read_table(inner, filesystem=fs)
        with fs.open_input_stream(inner) as f:
            return pajson.read_json(f)
    except (OSError, ValueError) as err:
        raise CorpusError(f"cannot read corpus file {path}: {err}") from err


#: The sift workers built in this process, by run (a worker process serves many tasks).
_WORKERS: dict = {}


def _sift(batch, spec: "_Spec"):
    """A map_batches task: sifts one batch with this process's worker for the run."""
    worker = _WORKERS.get(spec.token)
    if worker is None:
        _WORKERS.clear()  # one run at a time per process: drop earlier runs' tests
        worker = _WORKERS[spec.token] = _Sift(spec)
    return worker(batch)


class _Sift:
    """A sift worker: builds the test once, then sifts batches (GIL released, rayon inside)."""

    def __init__(self, spec: _Spec):
        # One CPU per task: keep the core's thread pool to it (set before its first use).
        os.environ.setdefault("RAYON_NUM_THREADS", "1")
        self.spec = spec
        self.test = spec.make_test()._native
        self.encoder = None
        if spec.mode == "text":
            import greenmark

            config = self.test.config or greenmark.WatermarkConfig(self.test.vocab_size)
            # Only the tokenizer matters for encoding; the detector's key is never used.
            self.encoder = greenmark.TextDetector(spec.tokenizer, greenmark.Key.from_hex("00" * 32), config)

    def __call__(self, batch):
        import pyarrow as pa

        spec = self.spec
        docs = _column(batch, "__doc")
        if docs.null_count:
            raise CorpusError("the id column has null values: give every text an id")
        docs = np.asarray(docs.to_numpy(zero_copy_only=False))
        if docs.dtype.kind not in "iu":
            raise CorpusError(f"the id column must hold integers, got {docs.dtype}")
        if docs.dtype.kind == "i" and len(docs) and docs.min() < 0:
            raise CorpusError(f"the id column holds {docs.min()}: ids must be >= 0")
        first = _column(batch, spec.columns[0])
        if spec.mode == "text":
            texts = first.to_pylist()
            bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
            if bad is not None:
                raise CorpusError(f"text column row with id {docs[bad]} holds {type(texts[bad]).__name__}, not a string")
            ids = [np.asarray(self.encoder.encode(t), dtype=np.uint32) for t in texts]
            pooled = self.test.sift_batch(ids, doc_ids=docs)
        elif spec.mode == "open":
            pooled = self.test.sift_batch(first, doc_ids=docs, predictions=_column(batch, spec.columns[1]))
        else:
            prefixes = _column(batch, spec.columns[1]) if len(spec.columns) > 1 else None
            pooled = self.test.sift_batch(first, doc_ids=docs, prefixes=prefixes)
        return _split(pooled, spec.partitions, pa)


def _column(batch, name: str):
    column = batch.column(name)
    return column.combine_chunks() if hasattr(column, "combine_chunks") else column


def _split(pooled: list, partitions: int, pa):
    """One row per (part, key): the key's tuples whose fingerprint falls in the part, as
    list columns; the left-out counts ride on part 0."""
    rows = {name: [] for name in ("part", "key", *_LISTS, *_LEFT_OUT)}
    for key, p in enumerate(pooled):
        part = (p["fingerprint"] >> np.uint64(32)) % np.uint64(partitions)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(partitions + 1, dtype=np.uint64))
        for q in range(partitions):
            take = order[bounds[q] : bounds[q + 1]]
            if len(take) == 0 and (q != 0 or not any(p[n] for n in _LEFT_OUT)):
                continue
            rows["part"].append(q)
            rows["key"].append(key)
            for name in _LISTS:
                rows[name].append(p[name][take])
            for name in _LEFT_OUT:
                rows[name].append(p[name] if q == 0 else 0)
    return _table(rows, pa)


def _table(rows: dict, pa):
    """A pyarrow table of (part, key, list columns..., counts) from per-row numpy arrays."""
    out = {"part": pa.array(rows["part"], pa.int64()), "key": pa.array(rows["key"], pa.int64())}
    types = {"fingerprint": pa.uint64(), "score": pa.float64(), "doc": pa.uint64(), "position": pa.uint64(), "count": pa.uint64()}
    for name in _LISTS:
        parts = rows[name]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in parts], out=offsets[1:])
        values = np.concatenate(parts) if parts else np.zeros(0)
        out[name] = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values.astype(types[name].to_pandas_dtype(), copy=False), types[name]))
    for name in _LEFT_OUT:
        out[name] = pa.array(rows[name], pa.uint64())
    return pa.table(out)


def _merge(group, max_tuples):
    """One part: per key, the core's pool of the part's rows (each distinct fingerprint once
    at its first occurrence, its occurrences summed), folded to the budget if there is one."""
    import pyarrow as pa

    from greenmark._greenmark import RadioactivityTest as Native

    rows = {name: [] for name in ("part", "key", *_LISTS, *_LEFT_OUT)}
    part = int(group.column("part")[0].as_py())
    for key in np.unique(group.column("key").to_numpy()):
        sub = group.filter(pa.compute.equal(group.column("key"), key))
        left_out = {name: int(sub.column(name).to_numpy().sum(dtype=np.uint64)) for name in _LEFT_OUT}
        lists = (_column(sub, name).flatten().to_numpy() for name in _LISTS)
        pooled = Native.pool_sifted(*lists, max_tuples=max_tuples, **left_out)
        rows["part"].append(part)
        rows["key"].append(int(key))
        for name in (*_LISTS, *_LEFT_OUT):
            rows[name].append(pooled[name])
    return _table(rows, pa)


def _collect(merged, n_keys: int) -> list:
    """Per key: the parts' tuples concatenated, and the summed left-out counts."""
    chunks = [{name: [] for name in _LISTS} for _ in range(n_keys)]
    left_out = [dict.fromkeys(_LEFT_OUT, 0) for _ in range(n_keys)]
    for batch in merged.iter_batches(batch_format="pyarrow", batch_size=None):
        keys = batch.column("key").to_numpy()
        for row, key in enumerate(keys):
            for name in _LISTS:
                chunks[key][name].append(batch.column(name)[row].values.to_numpy())
            for name in _LEFT_OUT:
                left_out[key][name] += int(batch.column(name)[row].as_py())
    dtypes = {"fingerprint": np.uint64, "score": np.float64, "doc": np.uint64, "position": np.uint64, "count": np.uint64}
    out = []
    for key in range(n_keys):
        arrays = {name: np.concatenate(chunks[key][name]).astype(dtypes[name], copy=False) if chunks[key][name] else np.zeros(0, dtypes[name]) for name in _LISTS}
        out.append((arrays, left_out[key]))
    return out
