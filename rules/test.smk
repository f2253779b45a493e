# The paper's tests and the language measures per trained model (docs/tests.md), in one job:
# the model, the test split and the compiled evaluation functions are shared by all tests.
TEST_STEMS = {mode: f"{RUNS}/{{run}}/tests/test{mode}" for mode in sorted(TESTS)}
if "measures" in config["tests"]:
    TEST_STEMS["measures"] = f"{RUNS}/{{run}}/measures"


rule test:
    input:
        ckpt=f"{RUNS}/{{run}}/final.ckpt",
        data=lambda w: dataset_marker(run_dataset(w.run)),
    output:
        csv=[f"{stem}.csv" for stem in TEST_STEMS.values()],
        parquet=[f"{stem}.parquet" for stem in TEST_STEMS.values()],
    params:
        data_dir=DATA_DIR,
        modes=lambda w, output: [
            a for mode, csv in zip(TEST_STEMS, output.csv) for a in ("--mode", mode, "--out", csv)
        ],
        overrides=override_args(config.get("eval_overrides", {})),
    log:
        f"{LOGS}/test/{{run}}.log",
    benchmark:
        f"{LOGS}/benchmarks/test/{{run}}.tsv"
    threads: 1
    group: "test"
    resources:
        mem_mb=lambda w: 4000 + 2 * table_mb(run_dataset(w.run)),
        runtime=eval_runtime,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/test.py --checkpoint {input.ckpt:q} {params.modes:q}"
        " --data-dir {params.data_dir:q} {params.overrides:q}"
