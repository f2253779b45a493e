# Ease of transfer learning: a new listener on a frozen speaker, trained and tested in one job
# per model × task × ETL dataset × noise × decoding (docs/etl.md).
ETL = config.get("etl", {})
ETL_DIR = f"{RUNS}/{{run}}/etl/{{task}}-{{etl_dataset}}-p{{noise}}-{{decoding}}"


rule etl:
    input:
        ckpt=f"{RUNS}/{{run}}/final.ckpt",
        data=lambda w: dataset_marker(w.etl_dataset),
    output:
        listener=f"{ETL_DIR}/listener.ckpt",
        curve=f"{ETL_DIR}/curve.csv",
        results=f"{ETL_DIR}/results.csv",
    params:
        data_dir=DATA_DIR,
        # --config and its overrides, built by the function the DAG check validates.
        args=lambda w: etl_args(config, w.etl_dataset, w.task, w.noise, w.decoding),
        out_dir=lambda w, output: os.path.dirname(output.listener),
        png=lambda w, output: (
            ["--png", f"{os.path.dirname(output.results)}/reconstructions.png"]
            if w.task == "reconstruction" else []
        ),
    log:
        f"{LOGS}/etl/{{run}}-{{task}}-{{etl_dataset}}-p{{noise}}-{{decoding}}.log",
    benchmark:
        f"{LOGS}/benchmarks/etl/{{run}}-{{task}}-{{etl_dataset}}-p{{noise}}-{{decoding}}.tsv"
    threads: 1
    group: "etl"
    resources:
        mem_mb=lambda w: 4000 + 2 * table_mb(w.etl_dataset),
        runtime=etl_runtime,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/etl_train.py --checkpoint {input.ckpt:q} {params.args:q}"
        " --data-dir {params.data_dir:q} --out-dir {params.out_dir:q}"
        " --results {output.results:q} {params.png:q}"
