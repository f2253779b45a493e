# noisy-emcom: raw data → TFDS logit datasets → training per (dataset, game, noise, batch, seed)
# → tests, measures and ETL per model → tables, figures and an HTML report.
#
#   snakemake --cores all                                # embedded default (config/config.yaml)
#   snakemake --cores all --configfile config/quick.yaml # smoke test of the whole DAG
#   snakemake --profile profiles/slurm --configfile config/paper.yaml

import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


# `--configfile X` replaces the default config (Snakemake would otherwise merge X into it).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# The config is checked before any job: the schema here, every job's settings in common.smk.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from noisy_emcom.configs import workflow as config_check

try:
    validate(config, "config/schema.yaml")
except WorkflowError as err:
    sys.exit(config_check.message(workflow.configfiles, err))


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/test.smk"
include: "rules/etl.smk"
include: "rules/report.smk"


rule all:
    input:
        report_outputs(),
    default_target: True
