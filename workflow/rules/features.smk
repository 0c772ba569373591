# Frozen-encoder features, computed once per (task, backbone) for every split and read
# by every frozen-feature method and seed.


rule features:
    input:
        stamp=features_stamp,
    output:
        features_file("{task}", "{backbone}"),
    log:
        "results/logs/features/{task}/{backbone}.log",
    benchmark:
        "results/benchmarks/features/{task}/{backbone}.tsv"
    threads: 2
    resources:
        gpu=job_resource("features", "gpu"),
        cpus_per_gpu=job_resource("features", "cpus_per_gpu"),
        mem_mb=job_resource("features", "mem_mb"),
        runtime=job_runtime("features"),
    shell:
        "{PYTHON} -m bench features --config {RESOLVED_CONFIG} --task {wildcards.task}"
        " --backbone {wildcards.backbone} --threads {threads} --out {output} > {log} 2>&1"
