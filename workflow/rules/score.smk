# Metrics, and the per-example arrays the bootstrap resamples, from saved predictions:
# adding a metric never retrains anything.


rule score:
    input:
        predictions="results/runs/{task}/{backbone}/{method}/{run}/predictions.npz",
        run="results/runs/{task}/{backbone}/{method}/{run}/run.json",
    output:
        metrics="results/runs/{task}/{backbone}/{method}/{run}/metrics.json",
        examples="results/runs/{task}/{backbone}/{method}/{run}/examples.npz",
    wildcard_constraints:
        run=r"seed\d+|ensemble",
    params:
        run_dir=run_input_dir,
    log:
        "results/logs/score/{task}/{backbone}/{method}/{run}.log",
    benchmark:
        "results/benchmarks/score/{task}/{backbone}/{method}/{run}.tsv"
    shell:
        "{PYTHON} -m bench score --run-dir {params.run_dir} --out {output.metrics}"
        " --examples {output.examples} > {log} 2>&1"
