"""File formats of a cell: predictions.npz, run.json, metrics.json; atomic writes.

``predictions.npz`` holds, for every evaluated split ``s``:

* ``s/labels``: ``int64 [N]`` (``-1`` for OOD inputs);
* either ``s/logits``: ``float32 [N, C]``, or ``s/logprobs``: ``float32 [S, N, C]``
  (Monte Carlo samples of log-probabilities, e.g. Bayesian methods, ensembles);

plus ``__splits__``: a JSON string with each split's kind, family and severity, and
``__classnames__``: a JSON list, so a predictions file is self-describing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import CorruptFileError
from bench.tasks.base import SplitInfo

PREDICTION_KINDS = ("logits", "logprobs")


@contextlib.contextmanager
def reading(path: str | os.PathLike):
    """Turns any failure to parse ``path`` into one :class:`bench.errors.CorruptFileError`.

    A truncated or foreign file (a copy interrupted mid-transfer, a disk error) then
    ends the job with one line naming the file and the fix, not a traceback from
    inside numpy's zip reader.
    """
    try:
        yield
    except FileNotFoundError as error:
        raise CorruptFileError(
            path, "missing", "rerun snakemake, which remakes missing outputs"
        ) from error
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise CorruptFileError(
            path,
            f"{type(error).__name__}: {error}",
            "delete it and rerun snakemake, which remakes it and everything that reads it",
        ) from error


@dataclass
class SplitPrediction:
    """Predictions on one split.

    Attributes:
        info: The split's static description.
        labels: ``int64 [N]``.
        values: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        kind: ``logits`` or ``logprobs``.
    """

    info: SplitInfo
    labels: np.ndarray
    values: np.ndarray
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in PREDICTION_KINDS:
            raise ValueError(
                f"prediction kind must be one of {PREDICTION_KINDS}, got {self.kind!r}"
            )
        expected_ndim = 2 if self.kind == "logits" else 3
        if self.values.ndim != expected_ndim:
            raise ValueError(
                f"split {self.info.name!r}: {self.kind} must have {expected_ndim} dims, "
                f"got shape {self.values.shape}"
            )
        if self.values.shape[-2] != len(self.labels):
            raise ValueError(
                f"split {self.info.name!r}: {self.values.shape[-2]} predictions for "
                f"{len(self.labels)} labels"
            )


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yields a binary handle whose content replaces ``path`` only once complete.

    The handle writes to a temporary file in the same folder, which is fsynced and
    renamed over ``path`` when the block ends, or removed if it raises. A reader (or a
    crash) never sees a half-written file, and an earlier result is replaced only by a
    complete new one. Streams, so a large object (a checkpoint) is never held in memory
    as bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; results are shared on clusters, so honour the umask instead.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_npz(
    path: str | os.PathLike, arrays: dict[str, np.ndarray], compressed: bool = True
) -> None:
    """Writes a ``.npz`` of ``arrays`` atomically (see :func:`atomic_write_bytes`)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_parquet(path: str | os.PathLike, frame: Any) -> None:
    """Writes a pandas DataFrame as parquet (no index) atomically."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


SCHEMA_DIR = Path(__file__).resolve().parents[1] / "workflow" / "schemas"


def atomic_write_json(path: str | os.PathLike, obj: Any, schema: str | None = None) -> None:
    """Writes JSON atomically (sorted keys, NaN written as null).

    Args:
        path: Destination.
        obj: JSON-serialisable content.
        schema: File name in ``workflow/schemas`` to validate against before writing,
            so an invalid record never replaces a valid one.

    Raises:
        jsonschema.ValidationError: If ``schema`` is given and the content violates it.
    """
    obj = _nan_to_none(obj)
    if schema is not None:
        import jsonschema

        jsonschema.validate(obj, json.loads((SCHEMA_DIR / schema).read_text()))
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def save_predictions(
    path: str | os.PathLike, predictions: dict[str, SplitPrediction], classnames: list[str]
) -> None:
    """Writes a predictions.npz atomically (see module docstring for the layout)."""
    arrays: dict[str, np.ndarray] = {}
    infos = {}
    for name, pred in predictions.items():
        arrays[f"{name}/labels"] = np.asarray(pred.labels, dtype=np.int64)
        arrays[f"{name}/{pred.kind}"] = np.asarray(pred.values, dtype=np.float32)
        infos[name] = asdict(pred.info)
    arrays["__splits__"] = np.array(json.dumps(infos))
    arrays["__classnames__"] = np.array(json.dumps(list(classnames)))
    atomic_write_npz(path, arrays)


def load_predictions(path: str | os.PathLike) -> tuple[dict[str, SplitPrediction], list[str]]:
    """Reads a predictions.npz into ``({split: SplitPrediction}, classnames)``.

    Raises:
        CorruptFileError: The file is missing, truncated or not a predictions file.
    """
    with reading(path), np.load(path, allow_pickle=False) as data:
        infos = json.loads(str(data["__splits__"]))
        classnames = json.loads(str(data["__classnames__"]))
        out = {}
        for name, info in infos.items():
            kind = "logits" if f"{name}/logits" in data else "logprobs"
            out[name] = SplitPrediction(
                info=SplitInfo(**info),
                labels=data[f"{name}/labels"],
                values=data[f"{name}/{kind}"],
                kind=kind,
            )
    return out, classnames
