# One job per (task, backbone, method, seed): fit, then predict on every evaluation split.
# A fit job checkpoints every runtime.checkpoint_every steps and on SIGTERM/SIGUSR1; its
# retry (or a rerun) resumes from results/checkpoints/, deleted once the outputs exist.
# Post-hoc modifiers (<method>+ts) and deep ensembles reuse saved predictions; WiSE-FT
# (<method>+wise) interpolates the weights its base fit job kept.


rule fit:
    input:
        unpack(fit_inputs),
    output:
        predictions="results/runs/{task}/{backbone}/{method}/seed{seed}/predictions.npz",
        run="results/runs/{task}/{backbone}/{method}/seed{seed}/run.json",
    wildcard_constraints:
        method=FIT_WITHOUT_WEIGHTS,
    params:
        cell=cell_hash,
        features=fit_features_arg,
        save_weights=fit_save_weights_arg,
        out_dir=run_output_dir,
        # Not an output: it must survive a failed attempt, which Snakemake cleans up.
        checkpoint="results/checkpoints/{task}/{backbone}/{method}/seed{seed}/train.pt",
    log:
        "results/logs/fit/{task}/{backbone}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/fit/{task}/{backbone}/{method}/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=job_resource("fit", "gpu"),
        cpus_per_gpu=job_resource("fit", "cpus_per_gpu"),
        mem_mb=job_resource("fit", "mem_mb"),
        runtime=job_runtime("fit"),
    shell:
        "{PYTHON} -m bench fit --config {RESOLVED_CONFIG} --task {wildcards.task}"
        " --backbone {wildcards.backbone} --method {wildcards.method} --seed {wildcards.seed}"
        " {params.features} {params.save_weights} --threads {threads} --out {params.out_dir}"
        " --checkpoint {params.checkpoint} > {log} 2>&1"


# The same job for a method the grid also lists as <method>+wise: it keeps its fine-tuned
# weights, which the WiSE-FT job interpolates. (A run from before +wise was listed has no
# weights.pt, so Snakemake refits it.)
if WISE_BASES:

    use rule fit as fit_keeping_weights with:
        output:
            predictions="results/runs/{task}/{backbone}/{method}/seed{seed}/predictions.npz",
            run="results/runs/{task}/{backbone}/{method}/seed{seed}/run.json",
            weights="results/runs/{task}/{backbone}/{method}/seed{seed}/weights.pt",
        wildcard_constraints:
            method=_alternatives(WISE_BASES),


rule wise_ft:
    input:
        weights="results/runs/{task}/{backbone}/{base}/seed{seed}/weights.pt",
        base_run="results/runs/{task}/{backbone}/{base}/seed{seed}/run.json",
    output:
        predictions="results/runs/{task}/{backbone}/{base}+wise/seed{seed}/predictions.npz",
        run="results/runs/{task}/{backbone}/{base}+wise/seed{seed}/run.json",
        curve="results/runs/{task}/{backbone}/{base}+wise/seed{seed}/wise_curve.csv",
    wildcard_constraints:
        base=r"[a-z0-9_]+",
    params:
        cell=wise_cell_hash,
        out_dir=run_output_dir,
    log:
        "results/logs/wise_ft/{task}/{backbone}/{base}+wise/seed{seed}.log",
    benchmark:
        "results/benchmarks/wise_ft/{task}/{backbone}/{base}+wise/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=job_resource("wise_ft", "gpu"),
        cpus_per_gpu=job_resource("wise_ft", "cpus_per_gpu"),
        mem_mb=job_resource("wise_ft", "mem_mb"),
        runtime=job_runtime("wise_ft"),
    shell:
        "{PYTHON} -m bench fit --config {RESOLVED_CONFIG} --task {wildcards.task}"
        " --backbone {wildcards.backbone} --method {wildcards.base}+wise --seed {wildcards.seed}"
        " --base-weights {input.weights} --threads {threads} --out {params.out_dir} > {log} 2>&1"


rule posthoc:
    input:
        base="results/runs/{task}/{backbone}/{base}/seed{seed}/predictions.npz",
    output:
        predictions="results/runs/{task}/{backbone}/{base}+{modifier}/seed{seed}/predictions.npz",
        run="results/runs/{task}/{backbone}/{base}+{modifier}/seed{seed}/run.json",
    wildcard_constraints:
        # The base is a fit or a weights job (flyp, flyp+wise); the modifiers act on its
        # predictions (ts, ts+ts).
        base=f"{FIT_STEM}(?:\\+wise)?",
        modifier=PREDICTION_MODIFIERS,
    params:
        out_dir=run_output_dir,
    log:
        "results/logs/posthoc/{task}/{backbone}/{base}+{modifier}/seed{seed}.log",
    benchmark:
        "results/benchmarks/posthoc/{task}/{backbone}/{base}+{modifier}/seed{seed}.tsv"
    shell:
        "{PYTHON} -m bench fit --config {RESOLVED_CONFIG} --task {wildcards.task}"
        " --backbone {wildcards.backbone} --method {wildcards.base}+{wildcards.modifier}"
        " --seed {wildcards.seed} --base-predictions {input.base} --out {params.out_dir}"
        " > {log} 2>&1"


rule ensemble:
    input:
        ensemble_members,
    output:
        predictions="results/runs/{task}/{backbone}/{method}/ensemble/predictions.npz",
        run="results/runs/{task}/{backbone}/{method}/ensemble/run.json",
    params:
        members=ensemble_member_dirs,
        out_dir=run_output_dir,
    log:
        "results/logs/ensemble/{task}/{backbone}/{method}.log",
    benchmark:
        "results/benchmarks/ensemble/{task}/{backbone}/{method}.tsv"
    shell:
        "{PYTHON} -m bench ensemble --members {params.members} --out {params.out_dir} > {log} 2>&1"
