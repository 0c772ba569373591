# One job per (task, backbone, method, seed): fit, then predict on every evaluation split.
# A fit job checkpoints every runtime.checkpoint_every steps and on SIGTERM/SIGUSR1; its
# retry (or a rerun) resumes from results/checkpoints/, deleted once the outputs exist.
# Post-hoc modifiers (<method>+ts) and deep ensembles reuse saved predictions.


rule fit:
    input:
        unpack(fit_inputs),
    output:
        predictions="results/runs/{task}/{backbone}/{method}/seed{seed}/predictions.npz",
        run="results/runs/{task}/{backbone}/{method}/seed{seed}/run.json",
    wildcard_constraints:
        method=r"[a-z0-9_]+",
    params:
        cell=cell_hash,
        features=fit_features_arg,
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
        " {params.features} --threads {threads} --out {params.out_dir}"
        " --checkpoint {params.checkpoint} > {log} 2>&1"


rule posthoc:
    input:
        base="results/runs/{task}/{backbone}/{base}/seed{seed}/predictions.npz",
    output:
        predictions="results/runs/{task}/{backbone}/{base}+{modifier}/seed{seed}/predictions.npz",
        run="results/runs/{task}/{backbone}/{base}+{modifier}/seed{seed}/run.json",
    wildcard_constraints:
        base=r"[a-z0-9_]+",
        modifier=r"[a-z0-9_+]+",
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
