"""Every bad config the tests try, in one table: the YAML a user wrote, the start of the one
line they must see after ``config error: `` (the key, the value as they wrote it, what is
allowed), further words the line must hold, and whether the case also goes through the real
workflow (``snakemake -n``; tests/workflow/test_config_errors.py) besides ``check_config``
(tests/test_config.py). A case that needs files names them (path, text).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BadConfig:
    id: str
    text: str
    head: str
    words: tuple[str, ...] = ()
    workflow: bool = False
    files: tuple[tuple[str, str], ...] = ()


POINTS_CSV = "hours,score\n1,2.1\n2,3.9\n3,6.2\n"

BAD_CONFIGS = [
    BadConfig(
        "lr-negative",
        "grid: {lr: [0.1, -0.1]}",
        "grid.lr[1] = -0.1: must be a number > 0",
        words=("must be a number > 0",),
        workflow=True,
    ),
    BadConfig("lr-zero", "grid: {lr: [0]}", "grid.lr[0] = 0: must be a number > 0", words=("> 0",), workflow=True),
    BadConfig("lr-nan", "grid: {lr: [0.1, .nan]}", "grid.lr[1] = .nan: ", words=("> 0", "NaN")),
    BadConfig("lr-infinite", "grid: {lr: [.inf]}", "grid.lr[0] = .inf: ", words=("infinity",)),
    BadConfig(
        "lr-not-a-number",
        "grid: {lr: [fast]}",
        'grid.lr[0] = "fast": must be a number > 0',
        words=("a number > 0",),
        workflow=True,
    ),
    BadConfig("lr-scalar-not-list", "grid: {lr: 0.1}", "grid.lr = 0.1: ", words=("non-empty list",)),
    BadConfig("lr-1e-3-read-as-string", "grid: {lr: [1e-3]}", 'grid.lr[0] = "1e-3": ', words=("YAML", "write 1.0e-3")),
    BadConfig("lr-1e6-quoted", "grid: {lr: ['1e6']}", 'grid.lr[0] = "1e6": ', words=("write 1.0e+6",)),
    BadConfig("lr-duplicate", "grid: {lr: [0.1, 0.2, 0.1]}", "grid.lr[2] = 0.1: ", words=("repeats grid.lr[0]",)),
    BadConfig(
        "diverged_factor-1e6-read-as-string",
        "analysis: {diverged_factor: 1e6}",
        'analysis.diverged_factor = "1e6": must be a number > 1; YAML reads 1e6 as a string',
        words=("must be a number > 1", "string", "write 1.0e+6"),
        workflow=True,
    ),
    BadConfig(
        "converged-typo",
        "analysis: {converged_below: 1.0e-6x}",
        'analysis.converged_below = "1.0e-6x": ',
        words=("> 0",),
    ),
    BadConfig(
        "1.0e6-no-sign", "analysis: {diverged_factor: 1.0e6}", 'analysis.diverged_factor = "1.0e6": ', words=("1.0e+6",)
    ),
    BadConfig("diverged_factor-1", "analysis: {diverged_factor: 1}", "analysis.diverged_factor = 1: ", words=("> 1",)),
    BadConfig("converged_below-0", "analysis: {converged_below: 0}", "analysis.converged_below = 0: ", words=("> 0",)),
    BadConfig(
        "lr-empty", "grid: {lr: []}", "grid.lr = []: must be a non-empty list", words=("non-empty list",), workflow=True
    ),
    BadConfig("seed-empty", "grid: {seed: []}", "grid.seed = []: ", words=("non-empty list",)),
    BadConfig("dataset-empty", "grid: {dataset: []}", "grid.dataset = []: ", words=("non-empty list",)),
    BadConfig("epochs-empty", "grid: {epochs: []}", "grid.epochs = []: ", words=("non-empty list",)),
    BadConfig("seed-duplicate", "grid: {seed: [1, 2, 1]}", "grid.seed[2] = 1: ", words=("repeats grid.seed[0]",)),
    BadConfig(
        "dataset-duplicate",
        "grid: {dataset: [tutorial, tutorial]}",
        'grid.dataset[1] = "tutorial": ',
        words=("repeats",),
    ),
    BadConfig("seed-negative", "grid: {seed: [-1]}", "grid.seed[0] = -1: ", words=("an integer from 0",)),
    BadConfig("seed-boolean", "grid: {seed: [true]}", "grid.seed[0] = true: ", words=("integer",)),
    BadConfig("seed-over-int32", "grid: {seed: [4294967296]}", "grid.seed[0] = 4294967296: ", words=("2147483647",)),
    BadConfig(
        "epochs-zero",
        "grid: {epochs: [0]}",
        "grid.epochs[0] = 0: must be an integer from 1",
        words=("an integer from 1",),
        workflow=True,
    ),
    BadConfig("epochs-negative", "grid: {epochs: [-5]}", "grid.epochs[0] = -5: ", words=("an integer from 1",)),
    BadConfig(
        "epochs-fractional",
        "grid: {epochs: [2.5]}",
        "grid.epochs[0] = 2.5: must be an integer",
        words=("integer",),
        workflow=True,
    ),
    BadConfig("device-tpu", "grid: {device: [cpu, tpu]}", 'grid.device[1] = "tpu": ', words=('"cpu", "cuda"',)),
    BadConfig("device-tpu-scalar", "grid: {device: tpu}", 'grid.device = "tpu": ', words=('"auto" or',)),
    BadConfig("device-cpu-not-in-a-list", "grid: {device: cpu}", 'grid.device = "cpu": ', words=("list",)),
    BadConfig("device-cuda-bad-index", "grid: {device: ['cuda:x']}", 'grid.device[0] = "cuda:x": ', words=("cuda:N",)),
    BadConfig("device-duplicate", "grid: {device: [cpu, cpu]}", 'grid.device[1] = "cpu": ', words=("repeats",)),
    BadConfig(
        "dataset-unknown-typo",
        "grid: {dataset: [tutorial, noisey]}",
        'grid.dataset[1] = "noisey": no such dataset; did you mean "noisy"?',
        words=('did you mean "noisy"?', "tutorial, noisy"),
        workflow=True,
    ),
    BadConfig(
        "dataset-unknown",
        "grid: {dataset: [mnist]}",
        'grid.dataset[0] = "mnist": ',
        words=("no such dataset (defined in datasets: tutorial, noisy)",),
    ),
    BadConfig(
        "trainig",
        "trainig: {engine: loop}",
        'trainig = {"engine": "loop"}: ',
        words=("unknown key", "did you mean training?"),
    ),
    BadConfig(
        "grid-lrs",
        "grid: {lrs: [0.1]}",
        "grid.lrs = [0.1]: unknown key; did you mean grid.lr?",
        words=("did you mean grid.lr?",),
        workflow=True,
    ),
    BadConfig("lr-at-top-level", "lr: [0.1]", "lr = [0.1]: ", words=("did you mean grid.lr?",)),
    BadConfig(
        "analysis-diverge_factor",
        "analysis: {diverge_factor: 1.0e+3}",
        "analysis.diverge_factor = 1000.0: ",
        words=("did you mean analysis.diverged_factor?",),
    ),
    BadConfig("timing-enable", "timing: {enable: false}", "timing.enable = false: ", words=("timing.enabled",)),
    BadConfig(
        "dtype",
        "training: {dtype: float16}",
        'training.dtype = "float16": must be "float32"',
        words=('"float32" or "float64"',),
        workflow=True,
    ),
    BadConfig("engine", "training: {engine: [loop, fast]}", 'training.engine[1] = "fast": ', words=('"loop" or',)),
    BadConfig(
        "init",
        "training: {init: ones}",
        'training.init = "ones": must be "zeros" or "normal"',
        words=('"zeros" or "normal"',),
        workflow=True,
    ),
    BadConfig("init-empty-list", "training: {init: []}", "training.init = []: ", words=("non-empty list",)),
    BadConfig(
        "batch0",
        "training: {batch_size: 0}",
        'training.batch_size = 0: must be "full"',
        words=('"full" or an integer >= 1',),
        workflow=True,
    ),
    BadConfig("batch0-in-list", "training: {batch_size: [full, 0]}", "training.batch_size[1] = 0: ", words=(">= 1",)),
    BadConfig("batch-half", "training: {batch_size: half}", 'training.batch_size = "half": ', words=('"full"',)),
    BadConfig(
        "batch-not-mini", "training: {batch_size: 64}", "training.batch_size = 64: ", words=("full batch", "64 points")
    ),
    BadConfig("record-neg", "training: {record_every: -1}", "training.record_every = -1: ", words=(">= 0",)),
    BadConfig("chunk_epochs-0", "training: {chunk_epochs: 0}", "training.chunk_epochs = 0: ", words=(">= 1",)),
    BadConfig("dtype-empty-value", "training: {dtype: null}", "training.dtype = null: ", words=("float32",)),
    BadConfig("grid-empty", "grid:", "grid = null: ", words=("a mapping",)),
    BadConfig("grid-a-list", "grid: [0.1, 0.2]", "grid = [0.1, 0.2]: ", words=("a mapping",)),
    BadConfig("jobs0", "sharding: {jobs_per_device: 0}", "sharding.jobs_per_device = 0: ", words=("from 1",)),
    BadConfig("max-runs0", "sharding: {max_runs_per_job: 0}", "sharding.max_runs_per_job = 0: ", words=(">= 1",)),
    BadConfig(
        "one-job-per-run",
        "grid: {lr: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.010, 0.011, 0.012, 0.013, 0.014, 0.015, 0.016, 0.017, 0.018, 0.019, 0.020, 0.021, 0.022, 0.023, 0.024, 0.025, 0.026, 0.027, 0.028, 0.029, 0.030, 0.031, 0.032, 0.033, 0.034, 0.035, 0.036, 0.037, 0.038, 0.039, 0.040, 0.041, 0.042, 0.043, 0.044, 0.045, 0.046, 0.047, 0.048, 0.049, 0.050, 0.051, 0.052, 0.053, 0.054, 0.055, 0.056, 0.057, 0.058, 0.059, 0.060, 0.061, 0.062, 0.063, 0.064, 0.065, 0.066, 0.067, 0.068, 0.069, 0.070, 0.071, 0.072, 0.073, 0.074, 0.075, 0.076, 0.077, 0.078, 0.079, 0.080, 0.081, 0.082, 0.083, 0.084, 0.085, 0.086, 0.087, 0.088, 0.089, 0.090, 0.091, 0.092, 0.093, 0.094, 0.095, 0.096, 0.097, 0.098, 0.099, 0.100], seed: [1, 2, 3, 4, 5, 6, 7, 8], optimizer: [sgd]}\nsharding: {max_runs_per_job: 1}",
        "sharding.max_runs_per_job = 1: ",
        words=("makes 1600 training jobs", "at most 1000"),
    ),
    BadConfig(
        "timing-on", "timing: {enabled: yes please}", 'timing.enabled = "yes please": ', words=("true or false",)
    ),
    BadConfig("timing-engines", "timing: {engines: [loop, loop]}", 'timing.engines[1] = "loop": ', words=("repeats",)),
    BadConfig("timing-size0", "timing: {sizes: [0]}", "timing.sizes[0] = 0: ", words=(">= 1",)),
    BadConfig("timing-min-run-time", "timing: {min_run_time: 0}", "timing.min_run_time = 0: ", words=("> 0",)),
    BadConfig("verify-sample-negative", "verify: {sample: -1}", "verify.sample = -1: ", words=(">= 0",)),
    BadConfig(
        "dataset-name-shell-semicolon",
        "datasets: {'a; rm -rf /': {x: [1], y: [2]}}",
        'datasets["a; rm -rf /"] = "a; rm -rf /": ',
        words=("bad dataset name", "letters, digits"),
    ),
    BadConfig(
        "dataset-name-shell-substitution",
        "datasets: {'$(touch x)': {x: [1], y: [2]}}",
        'datasets["$(touch x)"] = "$(touch x)": ',
        words=("bad dataset name",),
    ),
    BadConfig(
        "grid-backtick",
        "grid: {dataset: ['`touch x`']}",
        'grid.dataset[0] = "`touch x`": ',
        words=("starts with a letter",),
    ),
    BadConfig("dataset-name-int", "datasets: {1: {x: [1], y: [2]}}", "datasets[1] = 1: ", words=("bad dataset name",)),
    BadConfig(
        "x-y-length-mismatch",
        "datasets: {tutorial: {x: [1, 2, 3], y: [2, 4]}}",
        "datasets.tutorial.y = [2, 4]: ",
        words=("2 values but x has 3",),
    ),
    BadConfig(
        "x-not-numbers",
        "datasets: {tutorial: {x: [1, two, 3], y: [2, 4, 6]}}",
        'datasets.tutorial.x[1] = "two": ',
        words=("a number",),
    ),
    BadConfig(
        "x-nan", "datasets: {tutorial: {x: [1, .nan], y: [2, 4]}}", "datasets.tutorial.x[1] = .nan: ", words=("NaN",)
    ),
    BadConfig(
        "no-y", "datasets: {tutorial: {x: [1, 2]}}", 'datasets.tutorial = {"x": [1, 2]}: ', words=("missing key y",)
    ),
    BadConfig(
        "dataset-empty-map", "datasets: {mine: {}}", "datasets.mine = {}: ", words=("missing key x", "{csv: FILE")
    ),
    BadConfig("dataset-null", "datasets: {mine: }", "datasets.mine = null: ", words=("a mapping",)),
    BadConfig(
        "synth-no-n", "datasets: {mine: {synthetic: {slope: 3}}}", "datasets.mine.synthetic", words=("missing key n",)
    ),
    BadConfig(
        "synth-n0", "datasets: {mine: {synthetic: {n: 0}}}", "datasets.mine.synthetic.n = 0: ", words=("from 1",)
    ),
    BadConfig(
        "synth-noise-negative",
        "datasets: {mine: {synthetic: {n: 5, noise: -1}}}",
        "datasets.mine.synthetic.noise = -1: ",
        words=(">= 0",),
    ),
    BadConfig(
        "synth-noize",
        "datasets: {mine: {synthetic: {n: 5, noize: 1}}}",
        "datasets.mine.synthetic.noize = 1: ",
        words=("did you mean datasets.mine.synthetic.noise?",),
    ),
    BadConfig(
        "synth-x-range-reversed",
        "datasets: {mine: {synthetic: {n: 5, x_min: 2, x_max: 1}}}",
        "datasets.mine.synthetic.x_max = 1: ",
        words=(">= x_min (2)",),
    ),
    BadConfig(
        "dataset-two-kinds",
        "datasets: {mine: {x: [1], y: [2], synthetic: {n: 3}}}",
        "datasets.mine.x = [1]: ",
        words=("unknown key", "allowed in datasets.mine: synthetic", "a dataset is {x: [...]"),
    ),
    BadConfig(
        "csv-file-missing",
        "datasets: {mine: {csv: data/missing.csv, x: hours, y: score}}\ngrid: {dataset: [mine]}\n",
        'datasets.mine.csv = "data/missing.csv": ',
        words=("file not found", "relative to the working directory"),
    ),
    BadConfig(
        "csv-column-wrong",
        "datasets: {mine: {csv: data/points.csv, x: hours, y: scores}}\ngrid: {dataset: [mine]}\n",
        'datasets.mine.y = "scores": ',
        words=("no such column", 'did you mean "score"?', "hours, score"),
    ),
    BadConfig(
        "csv-text-cell",
        "datasets: {mine: {csv: data/bad.csv, x: hours, y: score}}\ngrid: {dataset: [mine]}\n",
        'datasets.mine.csv = "data/bad.csv": ',
        words=("line 3, column 'score': 'lots' is not a number",),
    ),
    BadConfig(
        "csv-no-y-column",
        "datasets: {mine: {csv: data/points.csv, x: hours}}",
        "datasets.mine",
        words=("missing key y", "column"),
    ),
    BadConfig(
        "optimizer-x-sgd-nesterov",
        "optimizers: {x: {sgd: {nesterov: true}}}",
        "optimizers.x.sgd.nesterov = true",
        words=("needs momentum > 0",),
    ),
    BadConfig(
        "optimizer-x-sgd-nesterov-2",
        "optimizers: {x: {sgd: {nesterov: true, momentum: 0.9, dampening: 0.1}}}",
        "optimizers.x.sgd.nesterov = true",
        words=("needs dampening 0",),
    ),
    BadConfig(
        "edge-empty-range",
        "edge: {lr_min: 1.0, lr_max: 0.5}",
        "edge.lr_min = 1.0: must be below edge.lr_max (0.5)",
        words=("[lr_min, lr_max]",),
    ),
    BadConfig(
        "timing-optimizer-undefined",
        "optimizers: {sgd: {sgd: {}}}\ntiming: {optimizers: [sgd, nesterov]}",
        'timing.optimizers[1] = "nesterov": no such optimizer',
        words=("defined in optimizers: sgd",),
    ),
    BadConfig(
        "optimizer-x-sgd-momentum",
        "optimizers: {x: {sgd: {momentum: -0.9}}}",
        "optimizers.x.sgd.momentum = -0.9",
        words=("must be a number >= 0",),
    ),
    BadConfig(
        "optimizer-x-sgd-weight_decay",
        "optimizers: {x: {sgd: {weight_decay: -1}}}",
        "optimizers.x.sgd.weight_decay = -1",
        words=(">= 0",),
    ),
    BadConfig(
        "optimizer-x-sgd-momentum-2",
        "optimizers: {x: {sgd: {momentum: 1e-1}}}",
        "optimizers.x.sgd.momentum",
        words=("write 1.0e-1",),
    ),
    BadConfig(
        "optimizer-x-adam-eps", "optimizers: {x: {adam: {eps: -1.0}}}", "optimizers.x.adam.eps = -1.0", words=(">= 0",)
    ),
    BadConfig(
        "optimizer-x-adam-betas",
        "optimizers: {x: {adam: {betas: [0.9]}}}",
        "optimizers.x.adam.betas = [0.9]",
        words=("two numbers",),
    ),
    BadConfig(
        "optimizer-x-adam-betas1",
        "optimizers: {x: {adam: {betas: [0.9, 1.0]}}}",
        "optimizers.x.adam.betas[1] = 1.0",
        words=("< 1",),
    ),
    BadConfig(
        "optimizer-x-adam-momentum",
        "optimizers: {x: {adam: {momentum: 0.9}}}",
        "optimizers.x.adam.momentum = 0.9",
        words=("betas, eps",),
    ),
    BadConfig(
        "optimizer-x-adamw",
        "optimizers: {x: {adamw: {}}}",
        "optimizers.x.adamw",
        words=("did you mean optimizers.x.adam?",),
    ),
    BadConfig("optimizer-x", "optimizers: {x: {}}", "optimizers.x = {}", words=("one key",)),
    BadConfig("optimizer-x-2", "optimizers: {x: {sgd: {}, adam: {}}}", "optimizers.x", words=("one key",)),
    BadConfig(
        "optimizer-grid-optimizer1",
        "grid: {optimizer: [sgd, heavy-ball]}",
        'grid.optimizer[1] = "heavy-ball"',
        words=('did you mean "heavy_ball"?',),
    ),
    BadConfig(
        "optimizer-grid-optimizer0",
        "optimizers: {mine: {sgd: {}}}",
        'grid.optimizer[0] = "sgd"',
        words=("grid.optimizer was not given",),
    ),
    BadConfig("optimizer-grid-optimizer", "grid: {optimizer: []}", "grid.optimizer = []", words=("non-empty",)),
    BadConfig("workflow-lr-nan", "grid: {lr: [.nan]}", "grid.lr[0] = .nan: must be a number > 0", workflow=True),
    BadConfig(
        "workflow-device-tpu", "grid: {device: [tpu]}", 'grid.device[0] = "tpu": must be "cpu", "cuda"', workflow=True
    ),
    BadConfig(
        "csv-missing",
        "datasets: {mine: {csv: data/missing.csv, x: hours, y: score}}\ngrid: {dataset: [mine], lr: [0.1], seed: [1], epochs: [10]}\n",
        'datasets.mine.csv = "data/missing.csv": file not found',
        workflow=True,
    ),
    BadConfig(
        "csv-wrong-column",
        "datasets: {mine: {csv: data/points.csv, x: hours, y: scores}}\ngrid: {dataset: [mine], lr: [0.1], seed: [1], epochs: [10]}\n",
        'datasets.mine.y = "scores": no such column in data/points.csv',
        workflow=True,
        files=(("data/points.csv", POINTS_CSV),),
    ),
    BadConfig(
        "workflow-engine",
        "training: {engine: fast}",
        'training.engine = "fast": must be "loop" or "batched"',
        workflow=True,
    ),
    BadConfig(
        "dataset-name-shell",
        "datasets: {'$(touch pwned)': {x: [1, 2], y: [2, 4]}}\ngrid: {dataset: ['$(touch pwned)']}",
        'datasets["$(touch pwned)"] = "$(touch pwned)": bad dataset name',
        workflow=True,
    ),
]

#: The cases that also go through the real workflow.
THROUGH_WORKFLOW = [case for case in BAD_CONFIGS if case.workflow]
