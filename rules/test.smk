# The paper's tests and the language measures per trained model (SPEC §7, §9).


rule test:
    input:
        ckpt=f"{RUNS}/{{run}}/final.ckpt",
        data=lambda w: dataset_marker(run_dataset(w.run)),
    output:
        csv=f"{RUNS}/{{run}}/tests/test{{mode}}.csv",
        parquet=f"{RUNS}/{{run}}/tests/test{{mode}}.parquet",
    params:
        data_dir=DATA_DIR,
        overrides=override_args(config.get("eval_overrides", {})),
    log:
        f"{LOGS}/test/{{run}}-{{mode}}.log",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=4 * 60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src python workflow/scripts/test.py --mode {wildcards.mode} --checkpoint {input.ckpt}"
        " --data-dir {params.data_dir} --out {output.csv} {params.overrides} > {log} 2>&1"


rule measures:
    input:
        ckpt=f"{RUNS}/{{run}}/final.ckpt",
        data=lambda w: dataset_marker(run_dataset(w.run)),
        message=f"{RUNS}/{{run}}/tests/testmessage.csv",
    output:
        csv=f"{RUNS}/{{run}}/measures.csv",
        parquet=f"{RUNS}/{{run}}/measures.parquet",
    params:
        data_dir=DATA_DIR,
        overrides=override_args(config.get("eval_overrides", {})),
    log:
        f"{LOGS}/test/{{run}}-measures.log",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=2 * 60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src python workflow/scripts/test.py --mode measures --checkpoint {input.ckpt}"
        " --data-dir {params.data_dir} --message-results {input.message} --out {output.csv}"
        " {params.overrides} > {log} 2>&1"
