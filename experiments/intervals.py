"""The statistics of the findings: over the seeds of a row, its mean and standard
deviation; over paired seeds, the mean difference and its 95 % interval (Student's t)."""
import math
import statistics


def summary(values):
    """The per-seed ``values``, their mean and their sample standard deviation (None where
    there are too few)."""
    return {"per_seed": values, "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None}


def t_quantile(df):
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (exact to 3
    decimals up to df 10, Cornish-Fisher expansion above)."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
    if df <= len(table):
        return table[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def interval(differences):
    """(mean, low, high): the mean of ``differences`` and its 95 % t interval (None, None
    for fewer than two values)."""
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, None, None
    half = t_quantile(len(differences) - 1) * statistics.stdev(differences) / \
        math.sqrt(len(differences))
    return mean, mean - half, mean + half
