"""Train a matrix-factorisation model (scikit-learn NMF on log1p counts), reporting progress per epoch."""
import recsys  # first: sets BLAS threads before numpy loads
import os
import warnings
import numpy as np
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
import kaon_step as k

warnings.filterwarnings("ignore", category=ConvergenceWarning)  # we stop by epochs on purpose
p = k.inputs()
z = np.load(k.input_path("train"))
m = recsys.dense(z["user"], z["title"], z["count"], int(z["users"]), int(z["titles"]))
rank, epochs, per_epoch = p["rank"], p["epochs"], p["itersPerEpoch"]
w = h = None
for e in range(epochs):
    if w is None:
        nmf = NMF(n_components=rank, init="nndsvda", solver="mu", max_iter=per_epoch, random_state=p["seed"], alpha_W=p["l2"], alpha_H="same")
        w = nmf.fit_transform(m)
    else:
        nmf = NMF(n_components=rank, init="custom", solver="mu", max_iter=per_epoch, alpha_W=p["l2"], alpha_H="same")
        w = nmf.fit_transform(m, W=w, H=h)
    h = nmf.components_
    loss = float(np.linalg.norm(m - w @ h) / np.linalg.norm(m))
    k.log_metric("relative_loss", loss, step=e + 1)
    k.progress((e + 1) / epochs, "%s rank %d epoch %d/%d loss %.4f" % (p["country"], rank, e + 1, epochs, loss))
path = os.path.join(k.output_dir(), "model-%s-r%d.npz" % (p["country"], rank))
np.savez_compressed(path, W=w.astype(np.float32), H=h.astype(np.float32))
k.output({"model": k.save_artifact(path, media_type="application/x-npz"), "rank": rank, "epochs": epochs, "relativeLoss": round(loss, 6)})
