"""Run a table of the Identity Mappings paper and compare it with the paper.

    python3 -m experiments table2 --data-dir cifar --out runs/table2 [--rows a,b]
        [--repeats 5] [--budget 300] [--jobs 2 | --gpus 0,1,2,3 | --launcher slurm ...]
    python3 -m experiments table2 --out runs/table2 --report
    python3 -m experiments status runs/table2
    python3 -m experiments findings --data-dir cifar --out runs/findings [--quick]
    python3 -m experiments --list
"""
import os
import sys

from common.cli import run_main


def parse_args(argv=None):
    """(the parsed flags, the flags that pass through to train_cifar.py)."""
    from common.cli import Parser
    p = Parser(prog="python -m experiments", description=__doc__.splitlines()[0],
               allow_abbrev=False)  # the training script's flags pass through whole
    p.add_argument("table", nargs="?", help="table1, table2 or table3")
    p.add_argument("--list", action="store_true", help="list the tables' rows and exit")
    p.add_argument("--data-dir", help="CIFAR folder (the table's data set; see --download)")
    p.add_argument("--out", help="folder of the runs, the table and the figure")
    p.add_argument("--rows", help="comma-separated rows to run (default: all)")
    p.add_argument("--repeats", type=int, default=1, help="runs per row (the paper: 5)")
    p.add_argument("--budget", type=int, metavar="ITERS",
                   help="smoke check: ITERS iterations, ResNet-20/29, a data subset; "
                        "not comparable with the paper")
    p.add_argument("--budget-examples", type=int, default=5000,
                   help="training images of a --budget run")
    p.add_argument("--download", action="store_true", help="download CIFAR if missing")
    p.add_argument("--report", action="store_true", help="only rebuild table.md, table.csv "
                   "and the figure from the runs finished so far")
    from experiments.launch import add_launch_args
    add_launch_args(p)
    args, extra = p.parse_known_args(argv)
    if args.report and not (args.table and args.out):
        p.error("--report needs a table and --out")
    if not args.list and not args.report and not (args.table and args.data_dir and args.out):
        p.error("give a table, --data-dir and --out (or --list)")
    return args, extra + (["--download"] if args.download else [])


def check_train_flags(args, train_args, launch):
    """Refuse, in one line and before any run starts, the flags ``train_args`` passed
    through to train_cifar.py that it would refuse (a misspelt flag, a bad value), parsed
    by its own parser; devices and dtype only where the runs train here, as ``launch``
    (the ``LaunchConfig``) says (Slurm's nodes check their own)."""
    from training.args import CifarConfig, check_args, cifar_parser
    argv = ["--data-dir", args.data_dir, "--output-dir", args.out, "--num-layers", "20"]
    argv += (["--gpus", ",".join(launch.gpus)] if launch.gpus else []) + train_args
    flags = cifar_parser("python -m experiments").parse_args(argv)
    if launch.launcher == "local":
        check_args(flags, CifarConfig)


def status_main(argv):
    from common.cli import Parser
    p = Parser(prog="python -m experiments status",
               description="where the runs of a table (or any folder of runs) stand")
    p.add_argument("out", help="folder of the runs (--out of the table)")
    args = p.parse_args(argv)
    from experiments.status import format_status, table_status
    print(format_status(table_status(args.out)))


def findings_main(argv):
    from experiments.measure_findings import main as measure_main
    return measure_main(argv)


SUBCOMMANDS = {"status": status_main, "findings": findings_main}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args, train_args = parse_args(argv)
    from experiments.launch import launch_config
    from experiments.tables import list_rows, report_table, run_table
    if args.list:
        return print(list_rows())
    launch = launch_config(args)
    rows = args.rows.split(",") if args.rows else None
    if args.report:
        results, figure = report_table(args.table, args.out, rows, args.repeats, args.budget)
    else:
        check_train_flags(args, train_args, launch)
        results, figure = run_table(args.table, args.out, args.data_dir, rows, args.repeats,
                                    args.budget, args.budget_examples, train_args,
                                    launch_config=launch)
        if launch.launcher == "slurm":
            print(f"submitted; follow with: python3 -m experiments status {args.out}")
            return
    from training.rundir import TABLE_MD
    print(open(os.path.join(args.out, TABLE_MD)).read())
    print("figure:", ", ".join(figure) or "none (no run has finished an epoch)")
    missing = sum(len(r["missing"]) for r in results)
    if missing and not args.report:
        sys.exit(f"python -m experiments: {missing} run(s) missing from the table: see the "
                 "FAILED lines above")


if __name__ == "__main__":
    run_main(main, prog="python -m experiments")
