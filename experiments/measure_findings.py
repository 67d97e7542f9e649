"""Measure the findings of :mod:`experiments.findings` on CIFAR-10 and judge them.

    python3 -m experiments findings --list
    python3 -m experiments findings --data-dir DIR --out OUT [--only F1,F3] [--seeds N]
        [--quick] [--jobs 2 | --launcher slurm ...]

Each finding's rows train at the scale of ``experiments.scale`` (the paper's CIFAR recipe
shrunk to the registry's length, in ``OUT/runs/<row key>/seed<k>``, shared by findings
that train the same network the same way). Seed k is the same for every row
(initialisation, order and augmentation), so seeds pair across rows. The runs go through
``experiments.runner``: an interrupted run resumes, finished ones are skipped, ``--jobs``
and ``--launcher slurm`` spread them out. Gradient-flow measurements
(``experiments.flow``) go to ``OUT/probe``. What they measured is judged by
``experiments.verdicts`` and written by ``experiments.findings_report``:
``OUT/findings.json``, ``OUT/findings.md`` and ``OUT/figures/<id>.png|pdf``.
"""
import os

from common.cli import UsageError
from common.files import write_json, write_text
from experiments import findings as registry
from experiments.findings_report import draw, markdown
from experiments.flow import run_probe
from experiments.runner import run_plan, train_command
from experiments.scale import QUICK_WARNING, Scale, run_dir, seeds_of
from experiments.verdicts import finding_record
from training.rundir import FINDINGS_JSON, FINDINGS_MD


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
