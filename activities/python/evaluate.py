"""Evaluate recall@k and NDCG@k on the holdout, for the model and for a popularity baseline."""
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
k.output({
    "recallAtK": round(recall, 6), "ndcgAtK": round(ndcg, 6),
    "baseline": {"recallAtK": round(b_recall, 6), "ndcgAtK": round(b_ndcg, 6)},
    "lift": round(ndcg / b_ndcg - 1, 6) if b_ndcg > 0 else 0.0, "k": kk,
})
