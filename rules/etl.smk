# Ease of transfer learning: a new listener on a frozen speaker, per task (SPEC §8).
ETL = config.get("etl", {})
ETL_DIR = f"{RUNS}/{{run}}/etl/{{task}}-{{etl_dataset}}-p{{noise}}-{{decoding}}"


rule etl_train:
    input:
        ckpt=f"{RUNS}/{{run}}/final.ckpt",
        data=lambda w: dataset_marker(w.etl_dataset),
    output:
        listener=f"{ETL_DIR}/listener.ckpt",
        curve=f"{ETL_DIR}/curve.csv",
    params:
        data_dir=DATA_DIR,
        sweep=lambda w: f"etl:{w.etl_dataset}_{w.task}_{w.noise}",
        overrides=lambda w: override_args(
            {
                **ETL.get("overrides", {}),
                **ETL.get("task_overrides", {}).get(w.task, {}),
                "etl.decoding": w.decoding,
            }
        ),
        out_dir=lambda w, output: os.path.dirname(output.listener),
    log:
        f"{LOGS}/etl/{{run}}-{{task}}-{{etl_dataset}}-p{{noise}}-{{decoding}}-train.log",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=4 * 60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src python workflow/scripts/etl_train.py --checkpoint {input.ckpt} --config={params.sweep}"
        " {params.overrides} --data-dir {params.data_dir} --out-dir {params.out_dir} > {log} 2>&1"


rule etl_test:
    input:
        ckpt=f"{RUNS}/{{run}}/final.ckpt",
        listener=f"{ETL_DIR}/listener.ckpt",
        data=lambda w: dataset_marker(w.etl_dataset),
    output:
        results=f"{ETL_DIR}/results.csv",
    params:
        data_dir=DATA_DIR,
        png=lambda w, output: (
            f"--png {os.path.dirname(output.results)}/reconstructions.png"
            if w.task == "reconstruction" else ""
        ),
    log:
        f"{LOGS}/etl/{{run}}-{{task}}-{{etl_dataset}}-p{{noise}}-{{decoding}}-test.log",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src python workflow/scripts/etl_test.py --checkpoint {input.ckpt} --listener {input.listener}"
        " --data-dir {params.data_dir} --out {output.results} {params.png} > {log} 2>&1"
