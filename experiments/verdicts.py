"""What the findings' runs measured, and the records that judge them: a finished run's
numbers (``training.rundir.finished_metrics``), a probe's cached numbers, each row's mean
and spread over the seeds, the comparisons and verdicts of ``experiments.findings``, and
the protocol each finding was measured with."""
from experiments import findings as registry
from experiments.flow import probe_numbers
from experiments.intervals import summary
from experiments.scale import run_dir, seeds_of
from training.recipe import CIFAR
from training.rundir import FINDINGS_FIGURES, error_percent, finished_metrics


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


def collect(finding, out_dir, scale, seeds=None):
    """{row name: {seed: numbers}} of the seeds measured so far."""
    read = probe_numbers if finding.protocol.kind == "probe" else training_numbers
    measured = {}
    for row in finding.rows:
        per_seed = {s: read(run_dir(out_dir, finding, row, scale, s), finding.protocol)
                    for s in range(seeds_of(finding, seeds))}
        measured[row.name] = {s: n for s, n in per_seed.items() if n is not None}
    return measured


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
