# One training run per (dataset, game, noise, batch size, seed) (docs/science.md, docs/config.md#run-ids-and-layout).


rule train:
    input:
        lambda w: dataset_marker(w.dataset),
    output:
        ckpt=f"{RUNS}/{{game}}-{{dataset}}-b{{batch}}-p{{p}}-s{{seed}}/final.ckpt",
        log=f"{RUNS}/{{game}}-{{dataset}}-b{{batch}}-p{{p}}-s{{seed}}/train_log.csv",
    params:
        data_dir=DATA_DIR,
        # --config and its overrides, built by the function the DAG check validates.
        args=lambda w: train_args(config, w.game, w.dataset, w.p, w.batch, w.seed),
        run_dir=lambda w, output: os.path.dirname(output.ckpt),
    log:
        f"{LOGS}/train/{{game}}-{{dataset}}-b{{batch}}-p{{p}}-s{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/train/{{game}}-{{dataset}}-b{{batch}}-p{{p}}-s{{seed}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda w: 4000 + 2 * table_mb(w.dataset),
        runtime=train_runtime,
        # On SLURM: SIGTERM 2 min before the time limit, so that training checkpoints.
        slurm_extra="--signal=TERM@120",
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/train.py {params.args:q}"
        " --data-dir {params.data_dir:q} --run-dir {params.run_dir:q} --no-progress"
