"""Evaluate recall@k and NDCG@k on the holdout, for the model and for a popularity baseline; publish a model card."""
import os
import recsys  # first: sets BLAS threads before numpy loads
import numpy as np
import kaon_step as k

p = k.inputs()
model = np.load(k.input_path("model"))
train = np.load(k.input_path("train"))
hold = np.load(k.input_path("holdout"))
users, titles, kk = int(train["users"]), int(train["titles"]), p["k"]
recall, ndcg = recsys.ranking_metrics(model["W"] @ model["H"], train["user"], train["title"], hold["user"], hold["title"], kk)
popularity = np.bincount(train["title"], minlength=titles).astype(float)
b_recall, b_ndcg = recsys.ranking_metrics(np.tile(popularity, (users, 1)), train["user"], train["title"], hold["user"], hold["title"], kk)
lift = round(ndcg / b_ndcg - 1, 6) if b_ndcg > 0 else 0.0
rank = int(model["W"].shape[1])

# The model card: what was evaluated, how it did against the baseline, and a plot (matplotlib, headless).
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
labels = ["recall@%d" % kk, "NDCG@%d" % kk]
xs = range(len(labels))
ax.bar([x - 0.2 for x in xs], [recall, ndcg], width=0.4, label="model (rank %d)" % rank)
ax.bar([x + 0.2 for x in xs], [b_recall, b_ndcg], width=0.4, label="popularity baseline")
ax.set_xticks(list(xs), labels)
ax.set_title("%s, rank %d: lift %+.0f%%" % (p["country"], rank, 100 * lift))
ax.legend()
fig.tight_layout()
plot = os.path.join(os.environ.get("KAON_WORK_DIR") or ".", "metrics-%s-r%d.png" % (p["country"], rank))
fig.savefig(plot)
k.card(
    "Model card %s (rank %d)" % (p["country"], rank),
    "\n".join([
        "Matrix factorisation recommender for **%s**, rank %d, %d users × %d titles." % (p["country"], rank, users, titles),
        "",
        "| metric | model | popularity baseline |",
        "|---|---|---|",
        "| recall@%d | %.4f | %.4f |" % (kk, recall, b_recall),
        "| NDCG@%d | %.4f | %.4f |" % (kk, ndcg, b_ndcg),
        "",
        "NDCG lift over the baseline: **%+.1f%%**." % (100 * lift),
        "",
        "![metrics](%s)" % os.path.basename(plot),
    ]),
    images=[plot],
)
k.output({
    "recallAtK": round(recall, 6), "ndcgAtK": round(ndcg, 6),
    "baseline": {"recallAtK": round(b_recall, 6), "ndcgAtK": round(b_ndcg, 6)},
    "lift": lift, "k": kk,
})
