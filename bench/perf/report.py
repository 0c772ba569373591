"""One tidy table of measurements, written as a CSV per device and a Markdown section."""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bench.io import atomic_write_bytes


@dataclass
class Measurement:
    """One figure of a performance run.

    Attributes:
        measure: What was timed (``train_flyp``, ``extract_jpeg``, ...).
        implementation: Whose code: ``engine`` (the suite's), ``plain eager`` /
            ``plain compiled`` (a hand-written PyTorch loop doing the same work), or a
            decoder's name.
        value: The figure, in ``unit``.
        unit: ``img/s``, ``seq/s`` or ``s``.
        batch_size: Examples per step or batch.
        achieved_tflops: Model FLOPs per second (training and inference), in TFLOP/s.
        mfu: ``achieved_tflops`` / the device's dense bf16 peak.
        vs_reference: This row against the measure's reference row (the best plain
            loop in the same run): above 1 is faster.
        detail: Model, input sizes, settings.
    """

    measure: str
    implementation: str
    value: float
    unit: str
    batch_size: int | None = None
    achieved_tflops: float | None = None
    mfu: float | None = None
    vs_reference: float | None = None
    detail: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.unit != "s"


def compare_to_reference(rows: list[Measurement]) -> list[Measurement]:
    """Fills ``vs_reference``: each row against the fastest plain loop of its measure.

    Measures without a plain loop (decoders) are compared with their slowest row, so
    the column reads as a speed-up over the baseline decoder.
    """
    by_measure: dict[str, list[Measurement]] = {}
    for row in rows:
        by_measure.setdefault(row.measure, []).append(row)
    for group in by_measure.values():
        plain = [r for r in group if r.implementation.startswith("plain")] or group
        speed = [r.value if r.higher_is_better else 1.0 / r.value for r in plain]
        reference = max(speed) if plain is not group else min(speed)
        for row in group:
            own = row.value if row.higher_is_better else 1.0 / row.value
            row.vs_reference = own / reference if reference > 0 else None
    return rows


#: A measurement and the context of the run that took it (device, date, versions).
Record = tuple[dict[str, str], Measurement]


def write_csv(records: list[Record], path: str | os.PathLike) -> None:
    """Writes each measurement with its run's context columns on its line."""
    names = list(dict.fromkeys(k for context, _ in records for k in context))
    names += [f.name for f in fields(Measurement)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for context, row in records:
        writer.writerow({**context, **asdict(row)})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue().encode())


def read_csv(path: str | os.PathLike) -> list[Record]:
    """The records of a CSV :func:`write_csv` wrote."""
    numeric = {"value", "achieved_tflops", "mfu", "vs_reference"}
    names = {f.name for f in fields(Measurement)}
    records = []
    with open(path) as handle:
        for line in csv.DictReader(handle):
            values: dict = {}
            for name in names:
                text = line.get(name, "")
                if name in numeric:
                    values[name] = float(text) if text else None
                elif name == "batch_size":
                    values[name] = int(text) if text else None
                else:
                    values[name] = text
            context = {k: v for k, v in line.items() if k not in names}
            records.append((context, Measurement(**values)))
    return records


def merge_measures(earlier: list[Record], new: list[Record]) -> list[Record]:
    """``new`` in place of the records of the same measures in ``earlier``, the rest kept.

    A run of some parts (``--only``) then updates a device's record without dropping
    the figures of the other parts (which keep their own date and versions), so a GPU
    with a short time limit per command can be measured in several commands. Records of
    another machine under the same file name (``cpu-2-cores`` is any two-core CPU) are
    dropped, not mixed in: a record holds one machine's figures.
    """
    machines = {context.get("device") for context, _ in new}
    earlier = [record for record in earlier if record[0].get("device") in machines]
    replaced = {row.measure for _, row in new}
    order = list(dict.fromkeys(r.measure for _, r in earlier + new))
    merged = [record for record in earlier if record[1].measure not in replaced] + new
    return sorted(merged, key=lambda record: order.index(record[1].measure))


def _format(value: float | None) -> str:
    """Three significant digits, thousands separated (``1,723``, ``21.6``, ``0.00201``)."""
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def markdown_table(rows: list[Measurement]) -> str:
    """The rows as a Markdown table (figures rounded for reading; the CSV keeps all)."""
    header = (
        "| measure | implementation | value | unit | batch | TFLOP/s | MFU | vs plain | detail |"
    )
    lines = [header, "|" + "---|" * 9]
    first = {}
    for position, r in enumerate(rows):
        first.setdefault(r.measure, position)
    # Rows of a measure together, measures in the order they were taken.
    for r in sorted(rows, key=lambda r: first[r.measure]):
        mfu = "" if r.mfu is None else f"{100 * r.mfu:.1f}%"
        ratio = "" if r.vs_reference is None else f"{r.vs_reference:.2f}x"
        lines.append(
            f"| {r.measure} | {r.implementation} | {_format(r.value)} | {r.unit} | "
            f"{r.batch_size or ''} | {_format(r.achieved_tflops)} | {mfu} | {ratio} | "
            f"{r.detail} |"
        )
    return "\n".join(lines)


def update_docs_section(path: str | os.PathLike, slug: str, body: str) -> None:
    """Replaces (or appends) the section of device ``slug`` in a Markdown file.

    The section lies between ``<!-- perf:<slug>:start -->`` and ``<!-- perf:<slug>:end -->``
    markers, so rerunning on a device replaces its own table and leaves the others.
    """
    path = Path(path)
    start, end = f"<!-- perf:{slug}:start -->", f"<!-- perf:{slug}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Performance\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_bytes(path, (text if text.endswith("\n") else text + "\n").encode())
