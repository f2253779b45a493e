# Path helpers and the experiment grid; no science here.
import functools
import itertools
import math

from noisy_emcom.configs import parse_cli
from noisy_emcom.configs.workflow import etl_args, override_args, train_args
from noisy_emcom.data.own import source_of as own_source
from noisy_emcom.data.own import image_files as own_image_files
from noisy_emcom.data.own import table_bytes as own_table_bytes

RESULTS = config["results"]
DATA_DIR = config["data_dir"]
RUNS = f"{RESULTS}/runs"
LOGS = f"{RESULTS}/logs"
CONDA_ENV = os.path.join("..", config["conda_env"])
# Jobs of the same shapes (every seed's tests, every run's ETL task) share compiled XLA code.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(f"{RESULTS}/.jax_cache"))
# Config `xla_flags` are appended to the XLA_FLAGS that jobs inherit (set here, not required).
if config.get("xla_flags"):
    os.environ.update(XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {config['xla_flags']}".strip())

TFDS_NAMES = {
    "imagenet": "byol_imagenet2012",
    "celeba_logits": "byol_celeb_a2_logits",
    "celeba_noimg": "byol_celeb_a2_noimg",
    "celeba": "byol_celeb_a2",
    "shapes_logits": "shapes_logits",
    "shapes_noimg": "shapes_noimg",
    "shapes": "shapes",
}
# User datasets (docs/data.md#your-own-data): one TFDS dataset own_<name> each.
OWN = config.get("own_data", {})
TFDS_NAMES.update({name: f"own_{name}" for name in OWN})
TESTS = {"channel", "message", "input", "topsim"} & set(config["tests"])


wildcard_constraints:
    game="lg_s|lg_rl|nlg",
    dataset="[a-z][a-z0-9_]*",
    batch=r"\d+",
    p=r"[0-9]+\.[0-9]+",
    seed=r"\d+",
    run=r"(lg_s|lg_rl|nlg)-[a-z][a-z0-9_]*-b\d+-p[0-9]+\.[0-9]+-s\d+",
    mode="channel|message|input|topsim",
    task="discrimination|discriminationdist|classification|attribute|reconstruction",
    etl_dataset="[a-z][a-z0-9_]*",
    noise=r"[0-9]+\.[0-9]+",
    decoding="sample|greedy",
    split="train|valid|test",


def family(dataset):
    return config_check.family(dataset, OWN)


def dataset_version(dataset):
    if dataset in OWN:
        return "1.0.0"
    source = config["data"].get(family(dataset), {}).get("source", "none")
    return "1.0.0" if source == "published" else "2.0.0"


def dataset_marker(dataset):
    """The dataset_info.json that exists once the TFDS dataset is complete."""
    return f"{DATA_DIR}/{TFDS_NAMES[dataset]}/{dataset_version(dataset)}/dataset_info.json"


def markers(family_name):
    return [dataset_marker(d) for d in TFDS_NAMES if family(d) == family_name]


def own_args(name):
    """build_own.py arguments of own_data.<name> (docs/data.md#your-own-data)."""
    e = OWN[name]
    kind, path = own_source(e)
    args = [f"--{kind}", path]
    args += ["--file-list", e["file_list"]] if e.get("file_list") else []
    args += ["--checkpoint", e["checkpoint"]] if e.get("checkpoint") else []
    for key, value in e.get("encoder", {}).items():
        args += [f"--encoder-{key.replace('_', '-')}", str(value)]
    args += ["--test-fraction", str(e.get("test_fraction", 0.25))]
    return args + ["--split-seed", str(e.get("split_seed", 0))]


def run_dataset(run):
    return run.split("-")[1]


def run_ids():
    """Every training run of the grid: <game>-<dataset>-b<B>-p<p>-s<seed>."""
    for game, dataset, p, batch, seed in config_check.runs(config):
        yield f"{game}-{dataset}-b{batch}-p{p}-s{seed}"


def etl_dirs(run):
    """ETL output folders of one run: tasks on datasets of the run's dataset family."""
    e = config.get("etl", {})
    for etl_dataset, tasks in e.get("tasks", {}).items():
        if family(etl_dataset) != family(run_dataset(run)):
            continue
        for task, noise, decoding in itertools.product(
            tasks, e.get("noise", [0.0]), e.get("decodings", ["sample"])
        ):
            p = config_check.id_number(noise, "etl.noise")
            yield f"{RUNS}/{run}/etl/{task}-{etl_dataset}-p{p}-{decoding}"


# Every job's script config is resolved and validated now, before any job starts.
try:
    config_check.check(config, dataset_marker)
except config_check.ConfigError as err:
    sys.exit(config_check.message(workflow.configfiles, err))


def test_outputs():
    return [f"{RUNS}/{run}/tests/test{mode}.csv" for run in run_ids() for mode in sorted(TESTS)]


def measures_outputs():
    if "measures" not in config["tests"]:
        return []
    return [f"{RUNS}/{run}/measures.csv" for run in run_ids()]


def train_logs():
    return [f"{RUNS}/{run}/train_log.csv" for run in run_ids()]


def etl_results():
    return [f"{d}/results.csv" for run in run_ids() for d in etl_dirs(run)]


def etl_curves():
    return [f"{d}/curve.csv" for run in run_ids() for d in etl_dirs(run)]


# Report items: which tables and figures exist depends on the result families produced.
REPORT_DIR = f"{RESULTS}/report"
FAMILY_TABLES = {
    "channel": "table_channel",
    "message": "table_message",
    "input": "table_input",
    "topsim": "table_topsim",
    "measures": "table_redundancy",
    "etl": "table_etl",
}
FAMILY_FIGURES = {
    "channel": ["fig_accuracy_vs_p"],
    "message": ["fig_accuracy_vs_erased"],
    "measures": ["fig_erasure_sensitivity"],
    "train": ["fig_learning_curves"],
    "etl": ["fig_etl"],
}


def report_families():
    present = set(config["tests"]) | {"train"}
    return present | ({"etl"} if etl_results() else set())


def report_items():
    """(path, caption, category) of every table and figure the report stage writes."""
    fams = report_families()
    items = [
        (f"{REPORT_DIR}/tables/{t}.md", f"../report/captions/{t}.rst", "Tables")
        for f, t in FAMILY_TABLES.items()
        if f in fams
    ]
    items += [
        (f"{REPORT_DIR}/figures/{n}.png", f"../report/captions/{n}.rst", "Figures")
        for f, names in FAMILY_FIGURES.items()
        if f in fams
        for n in names
    ]
    items.append((f"{REPORT_DIR}/tables/claims.md", "../report/captions/claims.rst", "Claims"))
    return items


def report_outputs():
    return [f"{REPORT_DIR}/manifest.json"] + [path for path, _, _ in report_items()]


# Cluster requests: time limits (minutes) and memory (MB) of the jobs, derived from the config
# with generous margins (a local run ignores them). Assumed: 200 training steps/s at batch 64
# (2-core CPU: ~400 steps/s at B = 16), 128 ETL examples/s, float32 features up to 2,048 wide.
# A job submitted again after a time-out or cancel (`attempt` 2, 3) gets a longer limit.
TRAIN_EXAMPLES = {"imagenet": 1_281_167, "celeba": 162_770}
FEATURE_BYTES = 4 * 2048


def table_mb(dataset):
    """MB of a dataset's training feature table held in memory."""
    if dataset in OWN:
        return 1 + own_table_bytes(OWN[dataset]) // 2**20
    n = config["data"].get("shapes", {}).get("num_train", 0) if family(dataset) == "shapes" else None
    return 1 + (n if n is not None else TRAIN_EXAMPLES[family(dataset)]) * FEATURE_BYTES // 2**20


# The resolved script configs of the jobs (those the DAG check validated): the resources come
# from their values, not from the config file's (`--config` gives nested values as text).
@functools.cache
def train_job_config(game, dataset, p, batch, seed):
    return parse_cli(train_args(config, game, dataset, p, batch, seed))[0]


@functools.cache
def etl_job_config(etl_dataset, task, noise, decoding):
    return parse_cli(etl_args(config, etl_dataset, task, noise, decoding))[0]


def train_runtime(wildcards, attempt):
    w = wildcards
    cfg = train_job_config(w.game, w.dataset, w.p, w.batch, w.seed)
    return attempt * (10 + math.ceil(cfg.training_steps * (1 + cfg.batch_size / 64) / (200 * 60)))


def etl_runtime(wildcards, attempt):
    w = wildcards
    cfg = etl_job_config(w.etl_dataset, w.task, w.noise, w.decoding).etl
    return attempt * (10 + math.ceil(cfg.training_steps * cfg.batch_size / (128 * 60)))


def eval_runtime(wildcards, attempt):
    return attempt * (10 + 30 * len(TEST_STEMS))


def own_inputs(name):
    """The files a user dataset is built from (a change rebuilds it): the table, or every image
    of the folder, plus the file list and the BYOL checkpoint when given."""
    entry = OWN[name]
    kind, path = own_source(entry)
    files = [path] if kind == "table" else list(own_image_files(path))
    return files + [entry[k] for k in ("file_list", "checkpoint") if entry.get(k)]
