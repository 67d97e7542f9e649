"""``python3 -m plots.confusion PREDICTIONS --out PREFIX``: the confusion matrix and the
per-class accuracy of a test set's predictions.

PREDICTIONS is the JSON that ``training.classify --test-set DIR --predictions FILE``
writes: the classes and their names, every image's label and its five most probable
classes. The figure (PREFIX.png and PREFIX.pdf) shows, row by true class, the share of
its images given to each class; the table gives each class's images, top-1 and top-5
accuracy and the class it is most often mistaken for.
"""
import argparse

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.cli import run_main
from common.files import atomic_path, read_json
from plots.output import report


def read_predictions(path):
    """(labels, top-5 predictions (N, 5), class names, crops) of a predictions file;
    ValueError naming the file where it is not one."""
    record = read_json(path)
    try:
        labels = np.asarray(record["labels"], np.int64)
        top5 = np.asarray(record["top5"], np.int64)
        names = list(record.get("names") or record["classes"])
        crops = record.get("crops", "")
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: not a predictions file of training.classify") from None
    if top5.ndim != 2 or len(top5) != len(labels) or len(labels) == 0:
        raise ValueError(f"{path}: its labels and predictions do not match")
    return labels, top5, names, crops


def confusion_matrix(labels, predicted, num_classes):
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class_table(labels, top5, names):
    """Markdown: each class's images, top-1 and top-5 accuracy (%), and the class its
    images are most often given instead; a last row for all images."""
    matrix = confusion_matrix(labels, top5[:, 0], len(names))
    in_top5 = (top5 == labels[:, None]).any(axis=1)
    rows = ["| class | images | top-1 accuracy (%) | top-5 accuracy (%) | most often taken for |",
            "|---|---:|---:|---:|---|"]
    for c, name in enumerate(names):
        mine = labels == c
        count = int(mine.sum())
        if count == 0:
            continue
        others = matrix[c].copy()
        others[c] = 0
        confused = f"{names[others.argmax()]} ({others.max()})" if others.max() else "-"
        rows.append(f"| {name} | {count} | {100 * matrix[c, c] / count:.1f} | "
                    f"{100 * in_top5[mine].mean():.1f} | {confused} |")
    rows.append(f"| all | {len(labels)} | {100 * np.mean(top5[:, 0] == labels):.2f} | "
                f"{100 * in_top5.mean():.2f} | |")
    return "\n".join(rows) + "\n"


def plot_confusion(matrix, names, out_prefix, title=None):
    """Write the row-normalised confusion matrix to OUT_PREFIX.png and .pdf; returns the
    paths."""
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(names) + 2)
    fig = Figure(figsize=(size + 1, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(names) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class's images")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    paths = []
    for ext in ("png", "pdf"):
        path = f"{out_prefix}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150)
        paths.append(path)
    return paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m plots.confusion",
                                description="The confusion matrix and per-class accuracy "
                                            "of a test set's predictions.")
    p.add_argument("predictions", help="the JSON of training.classify --predictions")
    p.add_argument("--out", required=True, metavar="PREFIX",
                   help="write PREFIX.png and PREFIX.pdf")
    p.add_argument("--title", help="figure title")
    p.add_argument("--table", metavar="FILE", help="also write the markdown table to FILE")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    labels, top5, names, crops = read_predictions(args.predictions)
    matrix = confusion_matrix(labels, top5[:, 0], len(names))
    report(plot_confusion(matrix, names, args.out, args.title),
           per_class_table(labels, top5, names), args.table)
    return 0


if __name__ == "__main__":
    run_main(main, prog="python3 -m plots.confusion")
