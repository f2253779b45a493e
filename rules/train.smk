# One training run per (dataset, game, noise, batch size, seed) (SPEC §2–§4, Appendix B).


rule train:
    input:
        lambda w: dataset_marker(w.dataset),
    output:
        ckpt=f"{RUNS}/{{game}}-{{dataset}}-b{{batch}}-p{{p}}-s{{seed}}/final.ckpt",
        log=f"{RUNS}/{{game}}-{{dataset}}-b{{batch}}-p{{p}}-s{{seed}}/train_log.csv",
    params:
        data_dir=DATA_DIR,
        spec=lambda w: (
            f"{PRESETS[w.game]}:{w.dataset}_{w.p}" if w.game == "nlg"
            else f"{PRESETS[w.game]}:{w.dataset}"
        ),
        overrides=lambda w: override_args(
            {**config["train"].get("overrides", {}), "batch_size": w.batch, "random_seed": w.seed}
        ),
        run_dir=lambda w, output: os.path.dirname(output.ckpt),
    log:
        f"{LOGS}/train/{{game}}-{{dataset}}-b{{batch}}-p{{p}}-s{{seed}}.log",
    threads: 1
    resources:
        mem_mb=lambda w: 4000 + 2 * table_mb(w.dataset),
        runtime=train_runtime,
        # On SLURM: SIGTERM 2 min before the time limit, so that training checkpoints.
        slurm_extra="--signal=TERM@120",
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src python workflow/scripts/train.py --config={params.spec} {params.overrides}"
        " --data-dir {params.data_dir} --run-dir {params.run_dir} --no-progress > {log} 2>&1"
