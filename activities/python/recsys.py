"""Shared numerics of the retrain-recommender pipeline: synthetic data, split, metrics. numpy only.

The data is synthetic. Each country has users with latent tastes and titles with latent traits (a planted
low-rank structure of rank `taste_rank`), plus a Zipf popularity skew. A user's views are sampled from
softmax(taste_strength * <user, title> + popularity_weight * log-popularity); counts are 1 + Poisson(0.6).
A "hard" country has a higher taste rank and weaker popularity, so a small-rank model underfits it.
"""
import os

# One BLAS thread: results are reproducible bit for bit, and countries train in parallel on separate cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings)


def generate(seed, users, titles, taste_rank, taste_strength, popularity_weight, views_per_user, null_rate=0.0, day=None):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(users, taste_rank)) / np.sqrt(taste_rank)
    q = rng.normal(size=(titles, taste_rank))
    log_pop = -np.log(np.arange(1, titles + 1))
    rng.shuffle(log_pop)
    if day is not None:
        # Another day of the same world: the tastes stay, the views are sampled afresh.
        rng = np.random.default_rng([seed, day])
    logits = taste_strength * (p @ q.T) + popularity_weight * log_pop[None, :]
    rows, cols = [], []
    for u in range(users):
        z = logits[u] - logits[u].max()
        w = np.exp(z)
        w /= w.sum()
        n = int(np.clip(rng.poisson(views_per_user), 5, titles // 2))
        items = rng.choice(titles, size=n, replace=False, p=w)
        rows.extend([u] * n)
        cols.extend(items.tolist())
    rows = np.asarray(rows, dtype=np.int32)
    cols = np.asarray(cols, dtype=np.int32)
    counts = (1 + rng.poisson(0.6, size=rows.shape[0])).astype(np.float32)
    if null_rate > 0:
        counts[rng.random(rows.shape[0]) < null_rate] = np.nan
    return rows, cols, counts


def split(rows, cols, counts, users, holdout_fraction, seed):
    """Per user, hold out a fraction of their titles (at least one) for evaluation."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(rows.shape[0]), rows))
    rows, cols, counts = rows[order], cols[order], counts[order]
    test = np.zeros(rows.shape[0], dtype=bool)
    starts = np.searchsorted(rows, np.arange(users))
    ends = np.searchsorted(rows, np.arange(users), side="right")
    for s, e in zip(starts, ends):
        k = max(1, int(round((e - s) * holdout_fraction)))
        if e - s > k:
            test[s:s + k] = True
    return (rows[~test], cols[~test], counts[~test]), (rows[test], cols[test])


def dense(rows, cols, counts, users, titles):
    m = np.zeros((users, titles), dtype=np.float32)
    np.add.at(m, (rows, cols), np.log1p(counts))
    return m


def ranking_metrics(scores, train_rows, train_cols, test_rows, test_cols, k):
    """recall@k and NDCG@k over users with held-out titles; titles seen in training are excluded."""
    scores = scores.copy()
    scores[train_rows, train_cols] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :k]
    truth = {}
    for u, i in zip(test_rows.tolist(), test_cols.tolist()):
        truth.setdefault(u, set()).add(i)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recall, ndcg = [], []
    for u, items in truth.items():
        hits = np.array([t in items for t in top[u]], dtype=float)
        recall.append(hits.sum() / min(len(items), k))
        ideal = discounts[: min(len(items), k)].sum()
        ndcg.append((hits * discounts).sum() / ideal)
    return float(np.mean(recall)), float(np.mean(ndcg))
