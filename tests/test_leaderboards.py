"""Leaderboards on a synthetic results tree: summary statistics, every view and format,
missing cells with their reasons, the README index and the claims table."""

from __future__ import annotations

import html.parser
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT
from scipy.stats import rankdata

from bench.io import SplitPrediction, atomic_write_json, save_predictions
from bench.reporting import claims as claims_mod
from bench.reporting import render, views
from bench.reporting.aggregate import aggregate
from bench.reporting.report import build_reports
from bench.reporting.score import save_examples, score_run
from bench.tasks.base import SplitInfo

METHODS = {"full_ft": 1.0, "good": 2.0, "bad": 0.3}  # method -> logit margin of the label
SEEDS = ("0", "1", "2")
N = 150


def _logits(rng, labels, margin, classes=4):
    z = rng.normal(size=(labels.shape[0], classes)).astype(np.float32)
    z[np.arange(labels.shape[0]), labels] += margin
    return z


def _write_run(root: Path, task: str, method: str, seed: str, splits: dict) -> None:
    run_dir = root / "results" / "runs" / task / "bb" / method / f"seed{seed}"
    save_predictions(run_dir / "predictions.npz", splits, ["a", "b", "c", "d"])
    atomic_write_json(
        run_dir / "run.json",
        {
            "cell": {"task": task, "backbone": "bb", "method": method, "seed": seed},
            "config_hash": "abc",
            "hardware": {"device": "cpu"},
        },
    )
    examples = {}
    atomic_write_json(run_dir / "metrics.json", score_run(run_dir, examples))
    save_examples(run_dir / "examples.npz", examples)


def _benchmark(root: Path, task: str, method: str, seed: str, seconds: float) -> None:
    path = root / "results" / "benchmarks" / "fit" / task / "bb" / method / f"seed{seed}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\tmax_rss\n{seconds}\t100.0\n")


@pytest.fixture(scope="module")
def results_tree(tmp_path_factory):
    """Two tasks ('t' with shifts and OOD, 'fs' base-to-new), three methods x three seeds.

    ``bad`` seed 2 on 't' failed (a fit log, no results); method ``never`` was expected on
    't' but never ran. Every method predicts the same examples (pairing).
    """
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    labels = {name: rng.integers(0, 4, N) for name in ("val", "test", "shift_v2", "shift_r")}
    new_labels = rng.integers(0, 4, N)
    expected = []
    for method, margin in METHODS.items():
        for seed in SEEDS:
            for task in ("t", "fs"):
                expected.append(
                    {
                        "task": task,
                        "backbone": "bb",
                        "method": method,
                        "seed": seed,
                        "run_dir": f"results/runs/{task}/bb/{method}/seed{seed}",
                    }
                )
            if (method, seed) == ("bad", "2"):
                log = root / "results" / "logs" / "fit" / "t" / "bb" / "bad" / "seed2.log"
                log.parent.mkdir(parents=True)
                log.write_text("loading\nRuntimeError: CUDA out of memory\n")
            else:
                splits = {
                    name: SplitPrediction(
                        SplitInfo(name, {"val": "val", "test": "id"}.get(name, "shift")),
                        y,
                        _logits(rng, y, margin if name in ("val", "test") else margin / 2),
                        "logits",
                    )
                    for name, y in labels.items()
                }
                splits["ood_x"] = SplitPrediction(
                    SplitInfo("ood_x", "ood"),
                    np.full(60, -1),
                    _logits(rng, np.zeros(60, int), 0),
                    "logits",
                )
                _write_run(root, "t", method, seed, splits)
                _benchmark(root, "t", method, seed, 10.0 * (1 + len(method)))
            fewshot = {
                "test": SplitPrediction(
                    SplitInfo("test", "id"),
                    labels["test"],
                    _logits(rng, labels["test"], margin),
                    "logits",
                ),
                "test_new": SplitPrediction(
                    SplitInfo("test_new", "new"),
                    new_labels,
                    _logits(rng, new_labels, margin / 3),
                    "logits",
                ),
            }
            _write_run(root, "fs", method, seed, fewshot)
    expected.append(
        {
            "task": "t",
            "backbone": "bb",
            "method": "never",
            "seed": "0",
            "run_dir": "results/runs/t/bb/never/seed0",
        }
    )
    metrics = sorted(str(p) for p in (root / "results" / "runs").glob("*/*/*/*/metrics.json"))
    aggregate(metrics, root / "results" / "benchmarks", root / "results")
    written = build_reports(root / "results", expected, "full_ft", n_boot=300, seed=0)
    summary = pd.read_parquet(root / "results" / "tables" / "summary.parquet")
    return root, summary, written


def _rows(summary, task, split, metric):
    return summary[
        (summary.task == task) & (summary.split == split) & (summary.metric == metric)
    ].set_index("method")


def test_summary_statistics_match_the_tidy_table(results_tree):
    root, summary, _ = results_tree
    table = pd.read_parquet(root / "results" / "tables" / "runs.parquet")
    acc = table[(table.task == "t") & (table.split == "test") & (table.metric == "cls/acc")]
    rows = _rows(summary, "t", "test", "cls/acc")
    for method, values in acc.groupby("method")["value"]:
        assert rows.loc[method, "mean"] == pytest.approx(values.mean())
        assert rows.loc[method, "std"] == pytest.approx(values.std(ddof=1))
        assert rows.loc[method, "n"] == len(values)
        assert rows.loc[method, "ci_low"] <= rows.loc[method, "mean"] <= rows.loc[method, "ci_high"]
    assert rows.loc["bad", "n"] == 2 and rows.loc["bad", "n_expected"] == 3
    # The bootstrap's full-sample value is the table's seed mean.
    boot = pd.read_parquet(root / "results" / "tables" / "bootstrap.parquet")
    point = boot[
        (boot.task == "t") & (boot.split == "test") & (boot.metric == "cls/acc")
    ].set_index("method")
    assert point.loc["good", "point"] == pytest.approx(rows.loc["good", "mean"])
    # Clearly better and worse methods are flagged against the reference; the reference is not.
    assert rows.loc["good", "significant"] and rows.loc["good", "diff"] > 0
    assert rows.loc["bad", "significant"] and rows.loc["bad", "diff"] < 0
    assert np.isnan(rows.loc["full_ft", "p_value"])
    # Shift mean per run, then over seeds.
    shift = table[(table.task == "t") & (table.split_kind == "shift") & (table.metric == "cal/ece")]
    per_run = shift.groupby(["method", "seed"])["value"].mean().groupby("method").mean()
    mean_rows = _rows(summary, "t", "shift (mean)", "cal/ece")
    assert mean_rows.loc["good", "mean"] == pytest.approx(per_run["good"])
    # Base-to-new: harmonic mean per run.
    fs = table[(table.task == "fs") & (table.metric == "cls/acc")].pivot_table(
        index=["method", "seed"], columns="split", values="value"
    )
    hm = (2 * fs.test * fs.test_new / (fs.test + fs.test_new)).groupby("method").mean()
    assert _rows(summary, "fs", "base-to-new", "base_new/hm").loc["good", "mean"] == pytest.approx(
        hm["good"]
    )
    costs = _rows(summary, "t", "cost", "cost/fit_seconds")
    assert costs.loc["good", "mean"] == pytest.approx(50.0)


def test_cell_status_names_failed_and_missing_runs(results_tree):
    root, _, _ = results_tree
    cells = pd.read_csv(root / "results" / "tables" / "cells.csv", keep_default_na=False)
    failed = cells[cells.status == "failed"]
    assert failed[["method", "seed"]].values.tolist() == [["bad", 2]]
    assert "CUDA out of memory" in failed.reason.iloc[0] and "seed2.log" in failed.reason.iloc[0]
    assert cells[cells.method == "never"].status.tolist() == ["not run"]


def test_markdown_marks_best_second_significance_and_missing(results_tree):
    root, summary, _ = results_tree
    text = (root / "results" / "leaderboard" / "by_task" / "t__bb.md").read_text()
    id_block = text.split("### t · bb · ID (test)")[1].split("###")[0]
    rows = {
        line.split("|")[1].strip(): line for line in id_block.splitlines() if line.startswith("| ")
    }
    acc = _rows(summary, "t", "test", "cls/acc")
    good = f"{acc.loc['good', 'mean'] * 100:.1f}"
    second = f"{acc.loc['full_ft', 'mean'] * 100:.1f}"
    assert f"**{good}**" in rows["good"] and "▲" in rows["good"]
    assert f"<ins>{second}</ins>" in rows["full_ft (ref)"]
    assert "▼" in rows["bad"] and "| 2/3 |" in rows["bad"]
    assert "— *not run*" in rows["never"]
    assert "bad: 2/3 runs (2: failed)" in id_block
    assert re.search(r"\[\d+\.\d, \d+\.\d\]", rows["good"])  # the bootstrap interval


def test_csv_is_numbers_only(results_tree):
    root, _, _ = results_tree
    frame = pd.read_csv(root / "results" / "leaderboard" / "by_task" / "t__bb.csv")
    text_columns = set(frame.select_dtypes("object").columns)
    assert text_columns <= {"table", "method", "missing"}
    assert frame.filter(like="_mean").dtypes.map(lambda d: d.kind == "f").all()
    board = pd.read_csv(root / "results" / "leaderboard" / "leaderboard.csv")
    assert board.select_dtypes("object").columns.tolist() == ["task", "backbone", "method"]


def test_latex_is_booktabs_and_compiles(results_tree, tmp_path):
    root, _, _ = results_tree
    latex = (root / "results" / "leaderboard" / "by_task" / "t__bb.tex").read_text()
    for table in latex.split(r"\begin{table}")[1:]:
        assert table.index(r"\toprule") < table.index(r"\midrule") < table.index(r"\bottomrule")
        spec = re.search(r"\\begin\{tabular\}\{(lr*)\}", table).group(1)
        body = table.split(r"\midrule")[1].split(r"\bottomrule")[0]
        for line in body.strip().splitlines():
            assert line.count(" & ") == len(spec) - 1, line
    assert r"\textbf{" in latex and r"\underline{" in latex and r"{\scriptsize$\pm$" in latex
    assert r"\blacktriangle" in latex and r"\textit{not run}" in latex
    assert "_" not in latex.replace(r"\_", "").split("\n", 2)[2].replace("tab:", "")
    if shutil.which("pdflatex") is None:
        pytest.skip("no TeX engine here: structure checked above")
    document = tmp_path / "tables.tex"
    document.write_text(render.latex_document(latex))
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000


class _TableParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables = 0
        self.values = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("class") == "sortable":
            self.tables += 1
        if tag == "td" and "data-value" in attrs:
            self.values.append(attrs["data-value"])
        if tag == "script":
            self.scripts += 1


def test_html_page_has_every_view_sortable(results_tree):
    root, summary, _ = results_tree
    page = (root / "results" / "leaderboard" / "index.html").read_text()
    parser = _TableParser()
    parser.feed(page)
    assert parser.tables >= 8 and parser.scripts == 1
    numeric = [v for v in parser.values if re.fullmatch(r"-?[\d.e+-]+", v)]
    assert numeric and "" in parser.values  # numbers to sort by, and missing cells
    assert "http" not in page.split("<script>")[1]  # no network at view time


def test_metric_view_mean_rank_is_the_mean_of_per_task_ranks(results_tree):
    _, summary, _ = results_tree
    cells = None
    view = next(v for v in views.metric_views(summary, cells) if v.slug == "id_acc")
    per_task = []
    for column in view.columns[:-1]:
        values = [view.entry(m, column.key).mean for m in view.rows]
        per_task.append(rankdata([-v for v in values]))
    expected = np.mean(per_task, axis=0)
    got = [view.entry(m, "mean_rank").mean for m in view.rows]
    np.testing.assert_allclose(got, expected)


def test_shift_table_columns_follow_the_literature_order(results_tree):
    root, summary, _ = results_tree
    shift = views.shift_views(summary, None)
    acc = next(v for v in shift if v.slug == "t__bb__acc")
    assert [c.header for c in acc.columns] == ["ID", "V2", "R", "avg shifts"]
    assert (root / "results" / "leaderboard" / "shift" / "t__bb__ece.md").exists()
    avg = acc.entry("good", "avg").mean
    rows = _rows(summary, "t", "shift (mean)", "cls/acc")
    assert avg == pytest.approx(rows.loc["good", "mean"])


def test_base_to_new_view(results_tree):
    root, summary, _ = results_tree
    view = views.base_to_new_view(summary, None)
    assert [c.header for c in view.columns] == ["base", "new", "HM"]
    text = (root / "results" / "leaderboard" / "base_to_new.md").read_text()
    assert "fs · bb" in text


def test_readme_indexes_every_file_and_links_existing_definitions(results_tree):
    root, _, written = results_tree
    folder = root / "results" / "leaderboard"
    readme = (folder / "README.md").read_text()
    for path in written:
        if path.parent.is_relative_to(folder) and path.name != "README.md":
            rel = path.relative_to(folder)
            pattern = str(rel.with_suffix("")) if rel.parent != Path(".") else rel.name
            assert pattern.split(".")[0] in readme, rel
    anchors = {}
    for doc in ("metrics.md", "leaderboards.md"):
        headings = re.findall(r"^#+ (.+)$", (REPO_ROOT / "docs" / doc).read_text(), re.M)
        anchors[doc] = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    for doc, anchor in re.findall(r"\(\.\./\.\./docs/([a-z]+\.md)#([a-z0-9-]+)\)", readme):
        assert anchor in anchors[doc], f"{doc}#{anchor}"


def _claims_file(tmp_path, claims):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": claims}))
    return path


def _claim(**overrides):
    claim = {
        "id": "c",
        "paper": "P",
        "where": "Table 1",
        "source": "s",
        "evidence": "primary",
        "task": "t",
        "backbone": "*",
        "split": "id",
        "metric": "cal/ece",
        "method": "full_ft+ts",
        "reference": "full_ft",
        "expect": "lower",
        "config": "config/config.yaml",
    }
    claim.update(overrides)
    return claim


def test_claims_direction_reproduction_and_not_run(results_tree, tmp_path):
    _, summary, _ = results_tree
    summary = summary.copy()
    summary.loc[summary.method == "good", "method"] = "full_ft+ts"  # a registered name
    acc = _rows(summary, "t", "test", "cls/acc")
    claims = [
        _claim(id="ts_lower_ece"),
        _claim(id="acc_higher", metric="cls/acc", expect="higher"),
        _claim(
            id="repro",
            metric="cls/acc",
            reference=None,
            expect="reproduce",
            tolerance=0.001,
            values={"test": float(acc.loc["full_ft+ts", "mean"]), "shift_v2": 0.99},
        ),
        _claim(id="future", method="unwritten_method", reference="another_one"),
        _claim(id="elsewhere", task="imagenet", config="config/paper/imagenet_shifts.yaml"),
    ]
    loaded = claims_mod.load_claims(_claims_file(tmp_path, claims))
    results = {
        (r["claim"]["id"], r["split"]): r for r in claims_mod.evaluate_claims(loaded, summary)
    }
    ece = _rows(summary, "t", "test", "cal/ece")
    assert results[("ts_lower_ece", "id")]["holds"] == (
        ece.loc["full_ft+ts", "mean"] < ece.loc["full_ft", "mean"]
    )
    assert results[("acc_higher", "id")]["holds"] is True
    assert results[("repro", "test")]["holds"] is True
    assert results[("repro", "shift_v2")]["holds"] is False
    assert results[("future", "id")]["status"] == "not run"
    assert (
        "`unwritten_method`, `another_one` is not implemented"
        in results[("future", "id")]["reason"]
    )
    assert (
        "--configfile config/paper/imagenet_shifts.yaml" in results[("elsewhere", "id")]["reason"]
    )
    text = claims_mod.render_claims(list(results.values()), "claims.yaml")
    assert "## Not run" in text and "results/runs/t/bb/full_ft+ts/seed* (3 runs)" in text
    assert "of 4 evaluated claims hold; 2 not run" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expect": "better"}, "expect must be one of"),
        ({"metric": "cal/nope"}, "unknown metric"),
        ({"expect": "reproduce"}, "needs values"),
        ({"split": None, "reference": None}, "needs split and reference"),
    ],
)
def test_bad_claims_are_rejected_with_the_fix(tmp_path, change, message):
    claim = _claim(**change)
    claim = {k: v for k, v in claim.items() if v is not None}
    with pytest.raises(claims_mod.ClaimsError, match=message):
        claims_mod.load_claims(_claims_file(tmp_path, [claim]))


def test_shipped_claims_file_is_valid():
    claims = claims_mod.load_claims(REPO_ROOT / "config" / "claims.yaml")
    assert len(claims) >= 15
    assert {c["evidence"] for c in claims} == {"primary", "secondary", "abstract"}
    for claim in claims:
        assert (REPO_ROOT / claim["config"]).exists(), claim["id"]


def test_examples_file_round_trips(results_tree):
    root, _, _ = results_tree
    from bench.reporting.score import load_examples

    kinds, arrays = load_examples(
        root / "results" / "runs" / "t" / "bb" / "good" / "seed0" / "examples.npz"
    )
    assert kinds == {
        "val": "val",
        "test": "id",
        "shift_v2": "shift",
        "shift_r": "shift",
        "ood_x": "ood",
    }
    assert set(arrays["test"]) == {"confidence", "correct", "nll"} and set(arrays["ood_x"]) == {
        "confidence"
    }
    metrics = json.loads(
        (root / "results" / "runs" / "t" / "bb" / "good" / "seed0" / "metrics.json").read_text()
    )
    assert arrays["test"]["correct"].mean() == pytest.approx(
        metrics["splits"]["test"]["metrics"]["cls/acc"]
    )


def test_a_task_left_out_for_missing_data_is_named(results_tree, tmp_path):
    from bench.reporting.leaderboards import write_leaderboards
    from bench.reporting.summary import cell_status

    root, summary, _ = results_tree
    skipped = {
        "clinc150": {
            "backbones": ["minilm_l6"],
            "methods": ["full_ft"],
            "reason": "task data missing (nlp/clinc150/data_full.json missing)",
        }
    }
    cells = cell_status([], root / "results", skipped)
    write_leaderboards(summary, cells, tmp_path, n_boot=300)
    text = (tmp_path / "leaderboard.md").read_text()
    assert "### Not in these tables" in text
    assert "clinc150 · minilm_l6: not run: task data missing (nlp/clinc150/data_full.json" in text
