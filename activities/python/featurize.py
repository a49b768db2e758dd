"""Featurize one country: per user, hold out a fraction of their titles for evaluation."""
import recsys  # first: sets BLAS threads before numpy loads
import os
import numpy as np
import kaon_step as k

p = k.inputs()
z = np.load(k.input_path("interactions"))
users, titles = int(z["users"]), int(z["titles"])
(tr, tc, tn), (hr, hc) = recsys.split(z["user"], z["title"], z["count"], users, p["holdoutFraction"], p["seed"])
train = os.path.join(k.output_dir(), "train-%s.npz" % p["country"])
holdout = os.path.join(k.output_dir(), "holdout-%s.npz" % p["country"])
np.savez_compressed(train, user=tr, title=tc, count=tn, users=users, titles=titles)
np.savez_compressed(holdout, user=hr, title=hc, users=users, titles=titles)
k.output({
    "train": k.save_artifact(train, media_type="application/x-npz"),
    "holdout": k.save_artifact(holdout, media_type="application/x-npz"),
    "trainRows": int(tr.shape[0]), "holdoutRows": int(hr.shape[0]), "users": users, "titles": titles,
})
