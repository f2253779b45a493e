# Datasets (docs/data.md): the generated `shapes` family, BYOL features of raw CelebA/ImageNet,
# or the published TFRecord datasets converted to array_record.
from pathlib import Path
SHAPES = config["data"].get("shapes", {})
CELEBA = config["data"].get("celeba", {})
IMAGENET = config["data"].get("imagenet", {})
SHAPES_DIR = f"{RESULTS}/data/shapes"


rule shapes_raw:
    output:
        temp(f"{SHAPES_DIR}/raw/{{split}}.npz"),
    params:
        num=lambda w: SHAPES[f"num_{w.split}"],
        seed=SHAPES.get("seed", 0),
    log:
        f"{LOGS}/data/shapes_raw_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/data/shapes_raw_{{split}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/make_shapes.py --split {wildcards.split:q} --num {params.num:q}"
        " --seed {params.seed:q} --out {output:q}"


rule shapes_encoder:
    input:
        f"{SHAPES_DIR}/raw/train.npz",
    output:
        params=f"{SHAPES_DIR}/encoder/params.npz",
        metrics=f"{SHAPES_DIR}/encoder/metrics.json",
    params:
        enc=lambda w: SHAPES["encoder"],
    log:
        f"{LOGS}/data/shapes_encoder.log",
    benchmark:
        f"{LOGS}/benchmarks/data/shapes_encoder.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/train_encoder.py --train {input:q} --out-params {output.params:q}"
        " --out-metrics {output.metrics:q} --width {params.enc[width]}"
        " --steps {params.enc[steps]} --batch-size {params.enc[batch_size]}"
        " --learning-rate {params.enc[learning_rate]} --seed {params.enc[seed]}"


rule shapes_features:
    input:
        params=rules.shapes_encoder.output.params,
        raw=f"{SHAPES_DIR}/raw/{{split}}.npz",
    output:
        temp(f"{SHAPES_DIR}/features/{{split}}.npz"),
    log:
        f"{LOGS}/data/shapes_features_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/data/shapes_features_{{split}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/encode_shapes.py --params {input.params:q} --raw {input.raw:q}"
        " --out {output:q}"


SPLITS = ("train", "valid", "test")


rule shapes_tfds:
    input:
        raw=expand(f"{SHAPES_DIR}/raw/{{split}}.npz", split=SPLITS),
        features=expand(f"{SHAPES_DIR}/features/{{split}}.npz", split=SPLITS),
        params=rules.shapes_encoder.output.params,
        metrics=rules.shapes_encoder.output.metrics,
    output:
        markers("shapes"),
    params:
        data_dir=lambda w, output: Path(output[0]).parents[2],
        raw=lambda w, input: [a for s, f in zip(SPLITS, input.raw) for a in ("--raw", f"{s}={f}")],
        features=lambda w, input: [
            a for s, f in zip(SPLITS, input.features) for a in ("--features", f"{s}={f}")
        ],
    log:
        f"{LOGS}/data/shapes_tfds.log",
    benchmark:
        f"{LOGS}/benchmarks/data/shapes_tfds.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/build_tfds.py --family shapes --data-dir {params.data_dir:q} --overwrite"
        " {params.raw:q} {params.features:q} --encoder-params {input.params:q}"
        " --encoder-metrics {input.metrics:q}"


rule byol_features:
    # Raw images (paths in the config, not tracked as inputs) → BYOL ResNet-50 logits.
    output:
        protected(f"{RESULTS}/data/{{family}}/byol_features.npz"),
    wildcard_constraints:
        family="celeba|imagenet",
    params:
        root=lambda w: config["data"][w.family]["root"],
        checkpoint=lambda w: config["data"][w.family]["checkpoint"],
    log:
        f"{LOGS}/data/byol_features_{{family}}.log",
    threads: 8
    resources:
        mem_mb=32000,
        runtime=24 * 60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/extract_byol.py --source {wildcards.family:q} --root {params.root:q}"
        " --checkpoint {params.checkpoint:q} --out {output:q}"


if CELEBA.get("source") == "raw":

    rule celeba_tfds:
        input:
            f"{RESULTS}/data/celeba/byol_features.npz",
        output:
            markers("celeba"),
        params:
            data_dir=DATA_DIR,
            root=CELEBA.get("root"),
            split_rule=CELEBA.get("split_rule", "custom"),
        log:
            f"{LOGS}/data/celeba_tfds.log",
        threads: 2
        resources:
            mem_mb=32000,
            runtime=6 * 60,
        conda:
            CONDA_ENV
        shell:
            "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/build_tfds.py --family celeba --root {params.root:q}"
            " --features {input:q} --split-rule {params.split_rule:q} --data-dir {params.data_dir:q}"
            " --overwrite"


if IMAGENET.get("source") == "raw":

    rule imagenet_tfds:
        input:
            f"{RESULTS}/data/imagenet/byol_features.npz",
        output:
            markers("imagenet"),
        params:
            data_dir=DATA_DIR,
        log:
            f"{LOGS}/data/imagenet_tfds.log",
        threads: 2
        resources:
            mem_mb=64000,
            runtime=6 * 60,
        conda:
            CONDA_ENV
        shell:
            "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/build_tfds.py --family imagenet --features {input:q}"
            " --data-dir {params.data_dir:q} --overwrite"


rule convert_published:
    # A published TFRecord dataset: <published>/<tfds_name>/1.0.0 → array_record (needs [tf]).
    output:
        f"{DATA_DIR}/{{tfds_name}}/1.0.0/dataset_info.json",
    wildcard_constraints:
        tfds_name="byol_[a-z0-9_]+",
    params:
        data_dir=lambda w, output: Path(output[0]).parents[2],
        src=lambda w: (
            f"{config['data'][family(SWEEP_OF[w.tfds_name])]['published']}/{w.tfds_name}/1.0.0"
        ),
        sweep=lambda w: SWEEP_OF[w.tfds_name],
    log:
        f"{LOGS}/data/convert_{{tfds_name}}.log",
    threads: 2
    resources:
        mem_mb=32000,
        runtime=6 * 60,
    conda:
        "../envs/convert.yaml"  # the CPU environment plus TensorFlow, which only this rule needs
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/convert_published.py --src {params.src:q} --dataset {params.sweep:q}"
        " --data-dir {params.data_dir:q} --overwrite"


SWEEP_OF = {tfds: sweep for sweep, tfds in TFDS_NAMES.items() if sweep not in OWN}


rule own_tfds:
    # A user's table or image folder → TFDS dataset own_<name> with provenance.json beside it.
    input:
        lambda w: own_inputs(w.name),
    output:
        marker=f"{DATA_DIR}/own_{{name}}/1.0.0/dataset_info.json",
        provenance=f"{DATA_DIR}/own_{{name}}/1.0.0/provenance.json",
    wildcard_constraints:
        name="|".join(OWN) or "(?!)",
    params:
        data_dir=lambda w, output: str(Path(output.marker).parents[2]),
        args=lambda w: own_args(w.name),
    log:
        f"{LOGS}/data/own_{{name}}.log",
    threads: 2
    resources:
        mem_mb=16000,
        runtime=6 * 60,
    conda:
        CONDA_ENV
    shell:
        "PYTHONPATH=src bash workflow/scripts/logged.sh {log:q} python workflow/scripts/build_own.py --dataset {wildcards.name:q} {params.args:q}"
        " --data-dir {params.data_dir:q} --overwrite"
