"""Measure the findings of :mod:`experiments.findings` on CIFAR-10 and judge them.

    python3 -m experiments findings --list
    python3 -m experiments findings --data-dir DIR --out OUT [--only F1,F3] [--seeds N]
        [--quick] [--jobs 2 | --launcher slurm ...]

Every finding's rows train with the paper's CIFAR recipe (``training.recipe``) scaled to
the length in the registry: lr steps at 1/2 and 3/4 of the run, and the paper's warm-up
(400 of 64k iterations at lr 0.01) scaled likewise where the protocol has one. A protocol
on the test set trains on every training image and tests on the test batch; the others
hold out 1,000 training images (stratified by class, fixed) to validate on. Seed k is the
same for every row (initialisation, order and augmentation), so seeds pair across rows.
Runs live in ``OUT/runs/<row>/seed<k>`` (shared by findings that train the same network
the same way) and go through ``experiments.runner``: an interrupted run resumes, finished
ones are skipped, ``--jobs`` and ``--launcher slurm`` spread them out. Gradient-flow
measurements go to ``OUT/probe``. Writes ``OUT/findings.json``, ``OUT/findings.md`` and
``OUT/figures/<id>.png|pdf``.
"""
import os
import re
import statistics
from dataclasses import dataclass

from common.cli import UsageError
from common.files import read_json, write_json, write_text
from experiments import findings as registry
from experiments.runner import fmt, run_plan, train_command
from training.recipe import CIFAR
from training.rundir import (FINDINGS_FIGURES, FINDINGS_JSON, FINDINGS_MD, error_percent,
                             finished_metrics)

VALIDATION_IMAGES = 1000
# --quick: the same findings on the smallest nets for one epoch, a plumbing check.
QUICK = dict(validation_images=100, num_examples=192, batch_size=32, probe_batch=16)
QUICK_WARNING = ("QUICK RUN: tiny networks, one epoch, a few hundred images: a plumbing "
                 "check whose verdicts mean nothing")


@dataclass(frozen=True)
class Scale:
    """What a findings run trains on, from a data folder of ``num_train_images``
    training images: the registry's protocols, or the ``--quick`` ones."""
    quick: bool
    num_train_images: int

    @property
    def batch_size(self):
        return QUICK["batch_size"] if self.quick else CIFAR.batch_size

    @property
    def probe_batch(self):
        return QUICK["probe_batch"] if self.quick else CIFAR.batch_size

    def validation_images(self, protocol):
        """Training images held out to validate on (0: the protocol tests on the test set)."""
        if protocol.test_set:
            return 0
        return QUICK["validation_images"] if self.quick else VALIDATION_IMAGES

    def train_images(self, protocol):
        held_out = self.validation_images(protocol)
        available = self.num_train_images - held_out
        if available < self.batch_size:
            raise ValueError(f"the data set has {self.num_train_images} training images: too "
                             f"few to hold out {held_out} and train batches of "
                             f"{self.batch_size}")
        return min(available, QUICK["num_examples"]) if self.quick else available

    def depth(self, row):
        """The depth trained: the row's, or the smallest of its kind in a quick run."""
        if not self.quick:
            return row.num_layers
        return 11 if row.bottleneck else (8 if row.num_layers <= 20 else 20)

    def schedule(self, protocol):
        """The ``training.recipe.Schedule`` of a row under ``protocol``: its iterations, or
        its epochs of this data (one epoch in a quick run)."""
        batches = self.train_images(protocol) // self.batch_size
        if self.quick:
            iterations = batches
        else:
            iterations = protocol.iterations or protocol.epochs * batches
        return CIFAR.scaled(iterations, warmup=protocol.warmup)

    def data_flags(self, protocol):
        """The flags that choose the images a run trains and validates on."""
        flags = []
        if not protocol.test_set:
            flags += ["--validation-images", str(self.validation_images(protocol))]
        if self.quick:  # no more than the data set has beside the held-out images
            flags += ["--num-examples", str(self.train_images(protocol))]
        return flags


def row_key(row, protocol, scale):
    """The folder name of a row's runs: everything that defines how it trains."""
    params = "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}"
                     for k, v in sorted(row.params.items()))
    key = f"r{scale.depth(row)}-{row.unit}-{row.shortcut}{params}-{row.projection}-{row.branch}"
    if protocol.kind == "train":
        schedule = scale.schedule(protocol)
        key += f"-it{schedule.iterations}-wu{schedule.warmup_iterations}"
        key += "-test" if protocol.test_set else ""
    return key + ("-quick" if scale.quick else "")


def run_dir(out_dir, finding, row, scale, seed):
    kind = "probe" if finding.protocol.kind == "probe" else "runs"
    return os.path.join(out_dir, kind, row_key(row, finding.protocol, scale), f"seed{seed}")


def seeds_of(finding, seeds=None):
    """The seeds measured for ``finding``: ``seeds`` where given, else its protocol's."""
    return seeds or finding.protocol.seeds


def training_runs(findings, out_dir, data_dir, scale, seeds=None):
    """[(run dir, train command)] of every seed of every row of the training ``findings``,
    each run once however many findings share it."""
    runs = {}
    for finding in findings:
        protocol = finding.protocol
        if protocol.kind != "train":
            continue
        for row in finding.rows:
            for seed in range(seeds_of(finding, seeds)):
                path = run_dir(out_dir, finding, row, scale, seed)
                runs.setdefault(path, train_command(
                    row, path, data_dir, seed, scale.schedule(protocol), scale.depth(row),
                    scale.batch_size, scale.data_flags(protocol), ["--no-plots"]))
    return list(runs.items())


def training_numbers(path, protocol):
    """The metrics of a finished run's last epoch, or None before it finished; the
    evaluation error is ``test_error`` on a protocol on the test set, else ``val_error``."""
    records = finished_metrics(path)
    if not records:
        return None
    last = records[-1]
    evaluated = "test" if protocol.test_set else "val"
    return {"train_loss": last["train_loss"], "train_error": error_percent(last, "train_acc"),
            f"{evaluated}_error": error_percent(last),
            f"{evaluated}_loss": last["val_loss"],
            "train_seconds": sum(r.get("epoch_seconds", 0.0) for r in records)}


def probe_batch(data_dir, scale, protocol):
    """The first ``scale.probe_batch`` training images of the findings' split, normalised
    with the training images' statistics, and their labels."""
    import numpy as np

    from data import cifar_folder, cifar_mean_std, load_cifar, normalize, stratified_split
    images, labels = load_cifar(cifar_folder(data_dir, "cifar10"))
    train, _ = stratified_split(labels, scale.validation_images(protocol))
    images, labels = images[train], labels[train]
    mean, std = cifar_mean_std(images)
    x = normalize(images[:scale.probe_batch], mean, std)
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


def run_probe(finding, out_dir, data_dir, scale, seeds=None, log=print):
    """Measure |dE/dx_l| at initialisation for every seed of every row, as initialised
    and with the residual branches switched off (cached as JSON)."""
    import numpy as np

    import symbols
    from experiments.probe import gradient_flow, init_params
    batch = None
    for row in finding.rows:
        for seed in range(seeds_of(finding, seeds)):
            path = run_dir(out_dir, finding, row, scale, seed) + ".json"
            if os.path.isfile(path):
                continue
            batch = batch or probe_batch(data_dir, scale, finding.protocol)
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


def probe_numbers(path, protocol):
    if not os.path.isfile(path + ".json"):
        return None
    result = read_json(path + ".json")
    return {k: result[k] for k in ("grad_spread", "log10_grad_ratio", "shortcut_factor",
                                   "grad_norm", "units")}


def collect(finding, out_dir, scale, seeds=None):
    """{row name: {seed: numbers}} of the seeds measured so far."""
    read = probe_numbers if finding.protocol.kind == "probe" else training_numbers
    measured = {}
    for row in finding.rows:
        per_seed = {s: read(run_dir(out_dir, finding, row, scale, s), finding.protocol)
                    for s in range(seeds_of(finding, seeds))}
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
    protocol = finding.protocol
    record = {"kind": protocol.kind, "validation_images": scale.validation_images(protocol),
              "test_set": protocol.test_set,
              "depths": {r.name: scale.depth(r) for r in finding.rows}}
    if finding.protocol.kind == "probe":
        record.update(batch=scale.probe_batch, what="one batch of training images, "
                      "initialisation of each seed, BatchNorm in training mode")
        return record
    schedule = scale.schedule(protocol)
    train_images = scale.train_images(protocol)
    record.update(epochs=round(schedule.iterations / (train_images // scale.batch_size), 2),
                  iterations=schedule.iterations, lr_steps=list(schedule.lr_steps),
                  warmup_iterations=schedule.warmup_iterations, warmup_lr=CIFAR.warmup_lr,
                  training_images=train_images, batch_size=scale.batch_size, lr=CIFAR.lr,
                  momentum=CIFAR.momentum, weight_decay=CIFAR.weight_decay,
                  optimizer=CIFAR.optimizer,
                  projection={r.name: r.projection for r in finding.rows})
    return record


def finding_record(finding, out_dir, scale, seeds=None):
    measured = collect(finding, out_dir, scale, seeds)
    comparisons, verdict = evaluate(finding, measured)
    evaluated = "test_error" if finding.protocol.test_set else "val_error"
    metrics = sorted({c.metric for c in finding.comparisons} |
                     ({"train_loss", "train_error", evaluated}
                      if finding.protocol.kind == "train" else set()))
    rows = {name: {m: summary([n[m] for _, n in sorted(per_seed.items())]) for m in metrics}
            for name, per_seed in measured.items()}
    seconds = sum(n.get("train_seconds", 0.0) for per_seed in measured.values()
                  for n in per_seed.values())
    return {"id": finding.id, "title": finding.title, "paper": finding.paper,
            "claim": finding.claim, "verdict": verdict, "seeds": seeds_of(finding, seeds),
            "seeds_measured": {name: sorted(p) for name, p in measured.items()},
            "protocol": protocol_record(finding, scale),
            "numbers": {"rows": rows, "comparisons": comparisons},
            "train_seconds": seconds, "figure": f"{FINDINGS_FIGURES}/{finding.id}.png",
            "quick": scale.quick}, measured


def cell(text):
    """``text`` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|")


def comparison_line(c):
    low, high = c["ci95"]
    interval = "" if low is None else f" [{fmt(low, 3)}, {fmt(high, 3)}]"
    seeds = f"{c['holds']} of {len(c['seeds'])}"
    return (f"| {cell(c['claim'])} | {cell(registry.METRICS[c['metric']])} | "
            f"{fmt(c['mean_difference'], 3)}{interval} | {seeds} | **{c['verdict']}** |")


def markdown(records, quick=False):
    """findings.md: the verdicts table, then each finding's rows and comparisons."""
    lines = ["# Findings of He et al. 2015 and 2016, measured on CIFAR-10", ""]
    if quick:
        lines += [f"**{QUICK_WARNING}.**", ""]
    lines += ["Seeds are paired across rows. Reduced scale: see each finding's protocol. "
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
            evaluated = "tested on the test batch" if p.get("test_set") else \
                f"validated on {p['validation_images']} held-out images"
            lines.append(f"Protocol: {p['training_images']} training images, {evaluated}, "
                         f"{r['seeds']} seeds; {p['epochs']:g} epochs ({p['iterations']} "
                         f"iterations of {p['batch_size']}), lr {p['lr']} / 10 at iterations "
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
            cells = [f"{fmt(values[m]['mean'], 3)} ± {fmt(values[m]['std'], 3)}" for m in metrics]
            lines.append(f"| {name} | " + " | ".join(cells) +
                         f" | {len(r['seeds_measured'][name])} |")
        lines += ["", "| expected | metric | difference [95 % CI] | holds in | verdict |",
                  "|---|---|---|---|---|"] + [comparison_line(c)
                                              for c in r["numbers"]["comparisons"]]
        lines += ["", f"![{r['id']}]({r['figure']})"]
    return "\n".join(lines) + "\n"


def draw(finding, out_dir, scale, measured):
    from plots.seeds import plot_seeded_profiles, plot_seeded_runs
    prefix = os.path.join(out_dir, FINDINGS_FIGURES, finding.id)
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


def run_findings(data_dir, out_dir, only=None, seeds=None, quick=False, launch_config=None,
                 log=print):
    """Run (or resume) the findings (each with its protocol's seeds, or ``seeds``), then
    write findings.json, findings.md and figures.

    The gradient-flow probes run here; the training runs go through
    ``experiments.runner.run_plan`` as ``launch_config`` says (default: one at a time here;
    with Slurm this returns once they are submitted, and reports what has finished)."""
    from data import cifar_folder, load_cifar
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    selected = registry.get_findings(only)
    folder = cifar_folder(data_dir, "cifar10")
    _, labels = load_cifar(folder)
    scale = Scale(quick, len(labels))
    check_test_batch(selected, folder)
    runs = training_runs(selected, out_dir, data_dir, scale, seeds)

    def probes():
        for finding in selected:
            if finding.protocol.kind == "probe":
                run_probe(finding, out_dir, data_dir, scale, seeds, log)

    def report():
        records = []
        for finding in selected:
            record, measured = finding_record(finding, out_dir, scale, seeds)
            if any(measured.values()):
                draw(finding, out_dir, scale, measured)
            records.append(record)
        write_json(os.path.join(out_dir, FINDINGS_JSON), records)
        write_text(os.path.join(out_dir, FINDINGS_MD), markdown(records, quick))
        return records

    plan = {"findings": [f.id for f in selected], "seeds": seeds, "quick": quick}
    return run_plan(out_dir, plan, runs, launch_config, log,
                    warning=QUICK_WARNING if quick else None, before=probes, report=report)


def check_test_batch(findings, folder):
    """A one-line error when a finding tests on the test batch and ``folder`` has none."""
    from data.cifar import layout
    need = [f.id for f in findings if f.protocol.test_set]
    (test,) = layout("cifar10").test
    if need and not os.path.isfile(os.path.join(folder, test)):
        raise UsageError(f"{', '.join(need)}: tested on the test batch, and {folder} has no "
                         f"{test} (the whole CIFAR-10 has one)")


def list_findings():
    for f in registry.FINDINGS:
        print(f"{f.id}  {f.title}\n    {f.paper}\n    {f.claim}")
        p = f.protocol
        length = f"{p.iterations} iterations" if p.iterations else f"{p.epochs} epochs"
        kind = "probe at initialisation" if p.kind == "probe" else \
            f"{length}, {'tested on the test batch' if p.test_set else 'held-out images'}"
        kind += f", {p.seeds} seeds"
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
    p.add_argument("--seeds", type=int,
                   help="seeds per row (default: each finding's, in the registry)")
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
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    from experiments.launch import launch_config
    records = run_findings(args.data_dir, args.out, only, args.seeds, args.quick,
                           launch_config(args))
    for r in records:
        print(f"{r['id']}: {r['verdict']}")
    print(f"wrote {os.path.join(args.out, FINDINGS_MD)}")
