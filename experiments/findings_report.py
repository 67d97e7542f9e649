"""The findings' report: ``findings.md`` (the verdicts, then each finding's protocol, rows
and comparisons) and each finding's figure."""
import os

from experiments import findings as registry
from experiments.markdown import cell, format_number
from experiments.scale import QUICK_WARNING, run_dir
from training.rundir import FINDINGS_FIGURES


def comparison_line(c):
    low, high = c["ci95"]
    interval = "" if low is None else f" [{format_number(low, 3)}, {format_number(high, 3)}]"
    seeds = f"{c['holds']} of {len(c['seeds'])}"
    return (f"| {cell(c['claim'])} | {cell(registry.METRICS[c['metric']])} | "
            f"{format_number(c['mean_difference'], 3)}{interval} | {seeds} | **{c['verdict']}** |")


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
            cells = [f"{format_number(values[m]['mean'], 3)} ± "
                     f"{format_number(values[m]['std'], 3)}" for m in metrics]
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
