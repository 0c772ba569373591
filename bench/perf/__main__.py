"""``python -m bench.perf``: measure this device, write its CSV and its docs table.

Examples::

    python -m bench.perf                       # preset by device: gpu on CUDA, cpu otherwise
    python -m bench.perf --preset smoke        # tiny models, seconds; prints, records nothing
    python -m bench.perf --only metrics,train_text --no-docs

Writes ``results/perf/<device>.csv`` (``--out-dir``) and replaces this device's section
of ``docs/performance.md`` (``--docs``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.perf.hardware import find_device, versions
from bench.perf.report import (
    compare_to_reference,
    markdown_table,
    merge_measures,
    read_csv,
    update_docs_section,
    write_csv,
)

PARTS = ("train_clip", "train_text", "inference", "metrics")


@dataclass(frozen=True)
class Preset:
    """Models and sizes of a run."""

    clip: str
    clip_options: dict
    train_batch: int
    train_steps: int
    warmup: int
    text: str
    text_tokens: int
    text_batch: int
    infer_batch: int
    infer_images: int
    infer_repeats: int
    metric_n: int
    metric_c: int
    compile: bool


PRESETS = {
    # The protocol: CLIP ViT-B/16 at 224 px, batch 256 (random weights: the same
    # compute, no download), BERT-base at 128 tokens, 50,000 x 1,000 logits.
    "gpu": Preset(
        "clip_vit_b16.openai", {"random_init": True}, 256, 20, 5,
        "bert_base.random", 128, 64, 1024, 8192, 3, 50_000, 1_000, True,
    ),
    # The same models on a CPU, with batches and step counts it finishes in minutes.
    "cpu": Preset(
        "clip_vit_b16.openai", {"random_init": True}, 8, 2, 1,
        "bert_base.random", 128, 8, 32, 64, 1, 50_000, 1_000, False,
    ),
    # Tiny models: checks that every measurement runs (the test suite's).
    "smoke": Preset(
        "clip_tiny.random", {}, 4, 1, 1, "tiny_bert.random", 16, 4, 4, 8, 1, 2_000, 50, False,
    ),
}  # fmt: skip


def run(args: argparse.Namespace) -> tuple:
    """Runs the requested parts; returns the device and its measurements."""
    from bench.perf.inference import InferenceSettings, image_inference
    from bench.perf.scoring import metric_scoring
    from bench.perf.training import TrainSettings, clip_training, text_training

    device = find_device(args.device, args.peak_tflops)
    preset = PRESETS[args.preset or ("gpu" if device.is_cuda else "cpu")]
    if args.compile != "auto":
        preset = replace(preset, compile=args.compile == "on")
    parts = args.only.split(",") if args.only else list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    print(f"device: {device.name}; peak bf16 {device.peak_tflops} TFLOP/s", file=sys.stderr)
    train = TrainSettings(
        preset.train_batch, preset.train_steps, preset.warmup, preset.compile, preset.compile
    )
    rows = []
    if "train_clip" in parts:
        rows += clip_training(device, preset.clip, preset.clip_options, train)
        _progress(rows)
    if "train_text" in parts:
        text = replace(train, batch_size=preset.text_batch)
        rows += text_training(
            device, preset.text, preset.text_tokens, text, tokenizer=args.text_tokenizer
        )
        _progress(rows)
    if "inference" in parts:
        settings = InferenceSettings(
            preset.infer_batch, preset.infer_images, preset.infer_repeats, preset.compile,
            preset.compile,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            rows += image_inference(
                device, preset.clip, preset.clip_options, settings, args.jpeg_dir or folder
            )
        _progress(rows)
    if "metrics" in parts:
        rows += metric_scoring(preset.metric_n, preset.metric_c)
        _progress(rows)
    return device, compare_to_reference(rows)


def _progress(rows) -> None:
    print(json.dumps(rows[-1].__dict__), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="default: by device")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="time the compiled variants (auto: the preset's choice)")  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak, if not in the table")
    parser.add_argument(
        "--out-dir", help="where the CSV goes (default: results/perf; smoke runs: none)"
    )
    parser.add_argument(
        "--docs", help="Markdown file to update (default: docs/performance.md; smoke: none)"
    )
    parser.add_argument("--no-docs", action="store_true", help="leave the docs alone")
    parser.add_argument("--jpeg-dir", help="folder for the JPEG files (default: a temporary one)")
    parser.add_argument(
        "--text-tokenizer",
        help="folder of BERT's uncased WordPiece tokenizer for bert_base.random (default: "
        "the one of the installed MiniLM package)",
    )
    args = parser.parse_args(argv)

    device, rows = run(args)
    context = {"device": device.name, "date": time.strftime("%Y-%m-%d"), **versions()}
    # Tiny models' figures would replace the device's real record: a smoke run writes
    # only where it is told to.
    smoke = args.preset == "smoke"
    out_dir = args.out_dir or (None if smoke else "results/perf")
    docs = None if args.no_docs else args.docs or (None if smoke else "docs/performance.md")
    records = [(context, row) for row in rows]
    if out_dir is None:
        print(markdown_table(rows))
        print("smoke run: nothing recorded (give --out-dir and --docs to write)", file=sys.stderr)
        return
    csv_path = Path(out_dir) / f"{device.slug}.csv"
    if args.only and csv_path.exists():
        # Keep the device's figures of the parts not rerun.
        earlier = read_csv(csv_path)
        others = sorted({c.get("device", "") for c, _ in earlier} - {device.name})
        if others:
            print(
                f"{csv_path}: dropping the figures of {', '.join(others)}, measured under "
                f"the same name; the record now holds {device.name}'s only",
                file=sys.stderr,
            )
        records = merge_measures(earlier, records)
    write_csv(records, csv_path)
    dates = sorted({c["date"] for c, _ in records})
    table = markdown_table([row for _, row in records])
    print(table)
    print(f"wrote {csv_path}", file=sys.stderr)
    if docs is not None:
        stamp = ", ".join(f"{k} {v}" for k, v in context.items() if k not in ("device", "date"))
        stamp = f"measured {' and '.join(dates)}; {stamp}"
        peak = f"{device.peak_tflops} TFLOP/s" if device.peak_tflops else "unknown (no MFU)"
        body = (
            f"### {device.name}\n\n"
            f"`python -m bench.perf --preset {args.preset or ('gpu' if device.is_cuda else 'cpu')}"
            f"`; {stamp}; dense bf16 peak {peak}.\n\n{table}\n"
        )
        update_docs_section(docs, device.slug, body)
        print(f"updated {docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
