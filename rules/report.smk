# Tables, figures and the claims check from every run's tidy results (docs/tests.md, docs/science.md#claims).


rule report:
    input:
        tests=test_outputs(),
        measures=measures_outputs(),
        train_logs=train_logs(),
        etl=etl_results(),
        etl_curves=etl_curves(),
    output:
        f"{REPORT_DIR}/manifest.json",
        f"{REPORT_DIR}/results.md",
        *[report(path, caption=caption, category=cat) for path, caption, cat in report_items()],
    params:
        out_dir=lambda w, output: os.path.dirname(output[0]),
        flags=lambda w, input: [
            a
            for name, files in input.items()
            if files
            for a in (f"--{name.replace('_', '-')}", *files)
        ],
    log:
        f"{LOGS}/report.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/report.py {params.flags:q} --out-dir {params.out_dir:q}"
