"""Measure the findings of :mod:`experiments.findings` on CIFAR-10 and judge them.

    python3 -m experiments findings --list
    python3 -m experiments findings --data-dir DIR --out OUT [--only F1,F3] [--seeds N]
        [--quick] [--jobs 2 | --launcher slurm ...]

Every finding's rows train on the same fixed split of the training files (1,000 images
held out, stratified by class), with the paper's recipe scaled to the epochs in
the registry: NAG, momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 1/2
and 3/4 of the run, and the paper's warm-up (400 of 64k iterations at lr 0.01) scaled
likewise where the paper used one. Seed k is the same for every row (initialisation, order
and augmentation), so seeds pair across rows. Runs live in ``OUT/runs/<row>/seed<k>``
(shared by findings that train the same network the same way; an interrupted run resumes,
finished ones are skipped), launched as ``experiments.launch`` says (``--jobs``,
``--launcher slurm``, ...); gradient-flow measurements in ``OUT/probe``. Writes
``OUT/findings.json``, ``OUT/findings.md`` and ``OUT/figures/<id>.png|pdf``.
"""
import os
import re
import statistics
import sys

from common.cli import UsageError
from common.files import lock_dir, read_json, write_json, write_text
from experiments import findings as registry
from experiments.launch import RUNNER_LOCK, is_done
from experiments.presets import RECIPE
from training.checkpoint import read_metrics

VALIDATION_IMAGES = 1000
PAPER_ITERATIONS, PAPER_WARMUP = RECIPE["num_iterations"], RECIPE["warmup_iterations"]
# --quick: the same findings on the smallest nets for one epoch, a plumbing check.
QUICK = dict(validation_images=100, num_examples=192, batch_size=32, probe_batch=16)
QUICK_WARNING = ("QUICK RUN: tiny networks, one epoch, a few hundred images: a plumbing "
                 "check whose verdicts mean nothing")


class Scale:
    """What a findings run trains on: the full protocol, or the ``--quick`` one."""

    def __init__(self, quick, num_train_images):
        self.quick = quick
        self.validation_images = QUICK["validation_images"] if quick else VALIDATION_IMAGES
        self.num_examples = QUICK["num_examples"] if quick else None
        self.batch_size = QUICK["batch_size"] if quick else RECIPE["batch_size"]
        self.probe_batch = QUICK["probe_batch"] if quick else RECIPE["batch_size"]
        available = num_train_images - self.validation_images
        if available < self.batch_size:
            raise ValueError(f"the data set has {num_train_images} training images: too few "
                             f"to hold out {self.validation_images} and train batches of "
                             f"{self.batch_size}")
        self.train_images = min(available, self.num_examples or available)
        self.batches_per_epoch = self.train_images // self.batch_size

    def depth(self, row):
        """The depth trained: the row's, or the smallest of its kind in a quick run."""
        if not self.quick:
            return row.num_layers
        return 11 if row.bottleneck else (8 if row.num_layers <= 20 else 20)

    def epochs(self, protocol):
        return 1 if self.quick else protocol.epochs


def schedule(protocol, scale):
    """(iterations, lr steps, warm-up iterations) of a row under ``protocol``."""
    iterations = scale.epochs(protocol) * scale.batches_per_epoch
    steps = sorted({max(1, round(iterations * f)) for f in (0.5, 0.75)})
    warmup = max(1, round(PAPER_WARMUP * iterations / PAPER_ITERATIONS)) \
        if protocol.warmup else 0
    return iterations, steps, warmup


def row_key(row, protocol, scale):
    """The folder name of a row's runs: everything that defines how it trains."""
    params = "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}"
                     for k, v in sorted(row.params.items()))
    kind = "bottleneck" if row.bottleneck else "basic"
    key = f"r{scale.depth(row)}-{row.unit}-{row.shortcut}{params}-{row.projection}-{kind}"
    if protocol.kind == "train":
        iterations, _, warmup = schedule(protocol, scale)
        key += f"-it{iterations}-wu{warmup}"
    return key + ("-quick" if scale.quick else "")


def train_command(row, protocol, scale, run_dir, data_dir, seed):
    """The ``train_cifar`` command line of one seed of ``row``."""
    iterations, steps, warmup = schedule(protocol, scale)
    cmd = [sys.executable, "-m", "train_cifar", "--data-dir", data_dir,
           "--output-dir", run_dir, "--seed", str(seed), "--num-layers", str(scale.depth(row)),
           "--unit", row.unit, "--shortcut", row.shortcut, "--projection", row.projection,
           "--bottleneck", "yes" if row.bottleneck else "no",
           "--validation-images", str(scale.validation_images),
           "--num-iters", str(iterations), "--lr-step-iters", ",".join(map(str, steps)),
           "--warmup-iters", str(warmup), "--warmup-lr", str(RECIPE["warmup_lr"]),
           "--lr", str(RECIPE["lr"]), "--mom", str(RECIPE["mom"]), "--wd", str(RECIPE["wd"]),
           "--batch-size", str(scale.batch_size), "--optimizer", RECIPE["optimizer"],
           "--no-plots"]
    for name, value in row.params.items():
        cmd += ["--shortcut-param", f"{name}={value}"]
    if scale.num_examples:  # no more than the data set has beside the held-out images
        cmd += ["--num-examples", str(scale.train_images)]
    return cmd


def run_dir(out_dir, finding, row, scale, seed):
    kind = "probe" if finding.protocol.kind == "probe" else "runs"
    return os.path.join(out_dir, kind, row_key(row, finding.protocol, scale), f"seed{seed}")


def training_runs(findings, out_dir, data_dir, scale, seeds):
    """[(run dir, train command)] of every seed of every row of the training ``findings``,
    each run once however many findings share it."""
    runs = {}
    for finding in findings:
        if finding.protocol.kind != "train":
            continue
        for row in finding.rows:
            for seed in range(seeds):
                path = run_dir(out_dir, finding, row, scale, seed)
                runs.setdefault(path, train_command(row, finding.protocol, scale, path,
                                                    data_dir, seed))
    return list(runs.items())


def training_numbers(path):
    """The metrics of a finished run's last epoch, or None before it finished."""
    records = read_metrics(path) if is_done(path) else []
    if not records:
        return None
    last = records[-1]
    return {"train_loss": last["train_loss"], "train_error": 100.0 * (1 - last["train_acc"]),
            "val_error": 100.0 * (1 - last["val_acc"]), "val_loss": last["val_loss"],
            "train_seconds": sum(r.get("epoch_seconds", 0.0) for r in records)}


def probe_batch(data_dir, scale):
    """The first ``scale.probe_batch`` training images of the findings' split, normalised
    with the training images' statistics, and their labels."""
    import numpy as np

    from data import cifar_folder, cifar_mean_std, load_cifar, stratified_split
    images, labels = load_cifar(cifar_folder(data_dir, "cifar10"))
    train, _ = stratified_split(labels, scale.validation_images)
    images, labels = images[train], labels[train]
    mean, std = cifar_mean_std(images)
    x = (images[:scale.probe_batch].astype(np.float32) - mean[:, None, None]) / std[:, None, None]
    return x, labels[:scale.probe_batch].astype(np.float32)


LAST_CONV = re.compile(r"^(stage\d+_unit\d+)_conv(\d)_weight$")
UNIT = re.compile(r"^stage(\d+)_unit(\d+)$")


def without_branches(arg_params):
    """A copy of ``arg_params`` with the last convolution of every residual branch zeroed,
    so that F = 0 and dE/dx_l is the shortcut term of Eqn. 5 / Eqn. 8 alone."""
    last = {}
    for name in arg_params:
        match = LAST_CONV.match(name)
        if match and int(match[2]) > last.get(match[1], (0, None))[0]:
            last[match[1]] = (int(match[2]), name)
    params = dict(arg_params)
    for _, name in last.values():
        params[name] = params[name] * 0
    return params


def shortcut_factor(units, grad_norm):
    """Geometric mean of |dE/dx_l| / |dE/dx_{l+1}| over consecutive units of one stage
    whose shortcut is not a projection (from each stage's second unit on)."""
    import numpy as np
    ratios = []
    for (a, ga), (b, gb) in zip(zip(units, grad_norm), zip(units[1:], grad_norm[1:])):
        (sa, ua), (sb, _) = UNIT.match(a).groups(), UNIT.match(b).groups()
        if sa == sb and int(ua) >= 2:
            ratios.append(ga / gb)
    if not ratios:
        raise ValueError("the net needs three units a stage to measure the shortcut term")
    return float(np.exp(np.mean(np.log(ratios))))


def run_probe(finding, out_dir, data_dir, scale, seeds, log=print):
    """Measure |dE/dx_l| at initialisation for every seed of every row, as initialised
    and with the residual branches switched off (cached as JSON)."""
    import numpy as np

    import symbols
    from experiments.probe import gradient_flow, init_params
    batch = None
    for row in finding.rows:
        for seed in range(seeds):
            path = run_dir(out_dir, finding, row, scale, seed) + ".json"
            if os.path.isfile(path):
                continue
            batch = batch or probe_batch(data_dir, scale)
            net = symbols.get_symbol(10, scale.depth(row), (3, 32, 32), unit=row.unit,
                                     shortcut=row.shortcut, projection=row.projection,
                                     probe=True, **row.params)
            arg_params, aux_params = init_params(net, batch[0].shape, seed)
            result = gradient_flow(net, *batch, arg_params, aux_params)
            grads = np.asarray(result["grad_norm"])
            alone = gradient_flow(net, *batch, without_branches(arg_params), aux_params)
            result.update(grad_spread=float(grads.max() / grads.min()),
                          log10_grad_ratio=float(np.log10(grads[0] / grads[-1])),
                          shortcut_grad_norm=alone["grad_norm"],
                          shortcut_factor=shortcut_factor(alone["units"], alone["grad_norm"]))
            write_json(path, result)
            log(f"{path}: |dE/dx_l| spread x{result['grad_spread']:.3g}, shortcut term "
                f"x{result['shortcut_factor']:.4f} a unit")


def probe_numbers(path):
    if not os.path.isfile(path + ".json"):
        return None
    result = read_json(path + ".json")
    return {k: result[k] for k in ("grad_spread", "log10_grad_ratio", "shortcut_factor",
                                   "grad_norm", "units")}


def collect(finding, out_dir, scale, seeds):
    """{row name: {seed: numbers}} of the seeds measured so far."""
    read = probe_numbers if finding.protocol.kind == "probe" else training_numbers
    measured = {}
    for row in finding.rows:
        per_seed = {s: read(run_dir(out_dir, finding, row, scale, s)) for s in range(seeds)}
        measured[row.name] = {s: n for s, n in per_seed.items() if n is not None}
    return measured


def summary(values):
    return {"per_seed": values, "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None}


def evaluate(finding, measured):
    """The comparisons' results and the finding's verdict from ``measured``."""
    comparisons = []
    for c in finding.comparisons:
        better = {s: n[c.metric] for s, n in measured[c.better].items()}
        worse = c.worse if not isinstance(c.worse, str) else \
            {s: n[c.metric] for s, n in measured[c.worse].items()}
        result = registry.judge(better, worse, c.margin)
        comparisons.append(dict(result, claim=c.text, metric=c.metric, better=c.better,
                                worse=c.worse, margin=c.margin))
    return comparisons, registry.overall([c["verdict"] for c in comparisons])


def protocol_record(finding, scale):
    """What the finding's rows trained on, for the report."""
    record = {"kind": finding.protocol.kind, "validation_images": scale.validation_images,
              "depths": {r.name: scale.depth(r) for r in finding.rows}}
    if finding.protocol.kind == "probe":
        record.update(batch=scale.probe_batch, what="one batch of training images, "
                      "initialisation of each seed, BatchNorm in training mode")
        return record
    iterations, steps, warmup = schedule(finding.protocol, scale)
    record.update(epochs=scale.epochs(finding.protocol), iterations=iterations,
                  lr_steps=steps, warmup_iterations=warmup, warmup_lr=RECIPE["warmup_lr"],
                  training_images=scale.train_images, batch_size=scale.batch_size,
                  lr=RECIPE["lr"], momentum=RECIPE["mom"], weight_decay=RECIPE["wd"],
                  optimizer=RECIPE["optimizer"],
                  projection={r.name: r.projection for r in finding.rows})
    return record


def finding_record(finding, out_dir, scale, seeds):
    measured = collect(finding, out_dir, scale, seeds)
    comparisons, verdict = evaluate(finding, measured)
    metrics = sorted({c.metric for c in finding.comparisons} |
                     ({"train_loss", "train_error", "val_error"}
                      if finding.protocol.kind == "train" else set()))
    rows = {name: {m: summary([n[m] for _, n in sorted(per_seed.items())]) for m in metrics}
            for name, per_seed in measured.items()}
    seconds = sum(n.get("train_seconds", 0.0) for per_seed in measured.values()
                  for n in per_seed.values())
    return {"id": finding.id, "title": finding.title, "paper": finding.paper,
            "claim": finding.claim, "verdict": verdict, "seeds": seeds,
            "seeds_measured": {name: sorted(p) for name, p in measured.items()},
            "protocol": protocol_record(finding, scale),
            "numbers": {"rows": rows, "comparisons": comparisons},
            "train_seconds": seconds, "figure": f"figures/{finding.id}.png",
            "quick": scale.quick}, measured


def fmt(value, digits=3):
    """``value`` with ``digits`` decimals, or ``digits`` significant digits where it is
    very large or small; '-' for None."""
    if value is None:
        return "-"
    if value and not 1e-2 <= abs(value) < 1e4:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


def cell(text):
    """``text`` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|")


def comparison_line(c):
    low, high = c["ci95"]
    interval = "" if low is None else f" [{fmt(low)}, {fmt(high)}]"
    seeds = f"{c['holds']} of {len(c['seeds'])}"
    return (f"| {cell(c['claim'])} | {cell(registry.METRICS[c['metric']])} | "
            f"{fmt(c['mean_difference'])}{interval} | {seeds} | **{c['verdict']}** |")


def markdown(records, scale, seeds):
    """findings.md: the verdicts table, then each finding's rows and comparisons."""
    lines = ["# Findings of He et al. 2015 and 2016, measured on CIFAR-10", ""]
    if scale.quick:
        lines += [f"**{QUICK_WARNING}.**", ""]
    lines += [f"Real CIFAR-10 training images: {scale.train_images} for training, "
              f"{scale.validation_images} held out for validation (stratified, fixed); "
              f"{seeds} seeds paired across rows. Reduced scale: see each finding's protocol. "
              "Verdict rule (fixed before the runs, `experiments/findings.py`): reproduced "
              "when the paper's ordering holds for the mean over seeds and in at least two "
              "thirds of the seeds; not reproduced when the mean ordering is reversed; "
              "inconclusive otherwise. Differences are the mean over seeds of (expected "
              "worse - expected better) with a 95 % t interval; positive agrees with the paper.",
              "", "| finding | paper | verdict |", "|---|---|---|"]
    lines += [f"| {r['id']}: {r['title']} | {r['paper']} | **{r['verdict']}** |" for r in records]
    for r in records:
        p = r["protocol"]
        lines += ["", f"## {r['id']}: {r['title']}", "", f"*{r['paper']}.* {r['claim']}", ""]
        if p["kind"] == "train":
            lines.append(f"Protocol: {p['epochs']} epochs ({p['iterations']} iterations of "
                         f"{p['batch_size']}), lr {p['lr']} / 10 at iterations "
                         f"{', '.join(map(str, p['lr_steps']))}, warm-up "
                         f"{p['warmup_iterations']} iterations at {p['warmup_lr']}; depths "
                         + ", ".join(f"{n} {d}" for n, d in p["depths"].items()) + ".")
        else:
            lines.append(f"Protocol: {p['what']}, batch {p['batch']}; depths "
                         + ", ".join(f"{n} {d}" for n, d in p["depths"].items()) + ".")
        metrics = list(next(iter(r["numbers"]["rows"].values())))
        lines += ["", "| row | " + " | ".join(f"{cell(registry.METRICS[m])}, mean ± std"
                                                  for m in metrics) + " | seeds |",
                  "|---|" + "---|" * (len(metrics) + 1)]
        for name, values in r["numbers"]["rows"].items():
            cells = [f"{fmt(values[m]['mean'])} ± {fmt(values[m]['std'])}" for m in metrics]
            lines.append(f"| {name} | " + " | ".join(cells) +
                         f" | {len(r['seeds_measured'][name])} |")
        lines += ["", "| expected | metric | difference [95 % CI] | holds in | verdict |",
                  "|---|---|---|---|---|"] + [comparison_line(c)
                                              for c in r["numbers"]["comparisons"]]
        lines += ["", f"![{r['id']}]({r['figure']})"]
    return "\n".join(lines) + "\n"


def draw(finding, out_dir, scale, seeds, measured):
    from plots.seeds import plot_seeded_profiles, plot_seeded_runs
    prefix = os.path.join(out_dir, "figures", finding.id)
    title = f"{finding.id}: {finding.title}" + (" (QUICK RUN)" if scale.quick else "")
    groups = {row.name: [run_dir(out_dir, finding, row, scale, s) for s in sorted(
        measured[row.name])] for row in finding.rows}
    if finding.protocol.kind == "probe":
        profiles = {name: [measured[name][s]["grad_norm"] for s in sorted(measured[name])]
                    for name in groups}
        return plot_seeded_profiles(profiles, prefix, title=title)
    metric = "train_error" if any(c.metric == "train_error" for c in finding.comparisons) \
        else "train_loss"
    return plot_seeded_runs(groups, prefix, train_key=metric, title=title)


def run_findings(data_dir, out_dir, only=None, seeds=3, quick=False, launch_args=None,
                 log=print):
    """Run (or resume) the findings, then write findings.json, findings.md and figures.

    The gradient-flow probes run here; the training runs go through
    :func:`experiments.launch.launch` as ``launch_args`` say (default: one at a time here;
    with Slurm this returns once they are submitted, and reports what has finished)."""
    from data import cifar_folder, load_cifar
    from experiments.launch import describe_status, launch, parse_launch_args
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    selected = registry.get_findings(only)
    _, labels = load_cifar(cifar_folder(data_dir, "cifar10"))
    scale = Scale(quick, len(labels))
    # one findings run per OUT at a time (each training locks its own folder)
    with lock_dir(out_dir, RUNNER_LOCK):
        if quick:
            log(QUICK_WARNING)
        for finding in selected:
            if finding.protocol.kind == "probe":
                run_probe(finding, out_dir, data_dir, scale, seeds, log)
        failures = launch(training_runs(selected, out_dir, data_dir, scale, seeds),
                          launch_args or parse_launch_args(), log,
                          slurm_folder=os.path.join(out_dir, "slurm"))
        for f in failures:
            log(f"FAILED {f['run_dir']} ({describe_status(f['status'])}): {f['last_line']}")
        records = []
        for finding in selected:
            record, measured = finding_record(finding, out_dir, scale, seeds)
            if any(measured.values()):
                draw(finding, out_dir, scale, seeds, measured)
            records.append(record)
        write_json(os.path.join(out_dir, "findings.json"), records)
        write_text(os.path.join(out_dir, "findings.md"), markdown(records, scale, seeds))
        return records


def list_findings():
    for f in registry.FINDINGS:
        print(f"{f.id}  {f.title}\n    {f.paper}\n    {f.claim}")
        kind = "probe at initialisation" if f.protocol.kind == "probe" else \
            f"{f.protocol.epochs} epochs"
        print(f"    rows ({kind}): " + "; ".join(f"{r.name} ({r.num_layers})" for r in f.rows))


def parse_args(argv=None):
    from common.cli import Parser
    from experiments.launch import add_launch_args
    p = Parser(prog="python -m experiments findings",
               description="Measure the papers' findings on CIFAR-10 and judge them.")
    p.add_argument("--list", action="store_true", help="list the findings and exit")
    p.add_argument("--data-dir", help="CIFAR-10 folder (real training batches)")
    p.add_argument("--out", help="folder of the runs, findings.json/.md and figures")
    p.add_argument("--only", help="comma-separated findings to run, e.g. F1,F3")
    p.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    p.add_argument("--quick", action="store_true", help=QUICK_WARNING)
    add_launch_args(p)
    args = p.parse_args(argv)
    if not args.list and not (args.data_dir and args.out):
        p.error("give --data-dir and --out (or --list)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        return list_findings()
    only = args.only.split(",") if args.only else None
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    records = run_findings(args.data_dir, args.out, only, args.seeds, args.quick, args)
    for r in records:
        print(f"{r['id']}: {r['verdict']}")
    print(f"wrote {os.path.join(args.out, 'findings.md')}")
