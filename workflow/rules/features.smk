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
        gpu=1,
        mem_mb=16000,
        runtime=60,
    shell:
        "{PYTHON} -m bench features --config {RESOLVED_CONFIG} --task {wildcards.task}"
        " --backbone {wildcards.backbone} --threads {threads} --out {output} > {log} 2>&1"
