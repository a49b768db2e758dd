"""Ingest: generate each country's synthetic viewing data (see recsys.py for how) as .npz artifacts."""
import recsys  # first: sets BLAS threads before numpy loads
import os
import numpy as np
import kaon_step as k

p = k.inputs()
out = {}
for i, c in enumerate(p["countries"]):
    rows, cols, counts = recsys.generate(
        seed=p["seed"] * 1000 + c["seed"], users=c["users"], titles=c["titles"], taste_rank=c["tasteRank"],
        taste_strength=c["tasteStrength"], popularity_weight=c["popularityWeight"],
        views_per_user=c["viewsPerUser"], null_rate=c["nullRate"], day=p.get("day"))
    path = os.path.join(k.output_dir(), "interactions-%s.npz" % c["code"])
    np.savez_compressed(path, user=rows, title=cols, count=counts, users=c["users"], titles=c["titles"])
    ref = k.save_artifact(path, name="interactions-%s.npz" % c["code"], media_type="application/x-npz")
    out[c["code"]] = {"interactions": ref, "rows": int(rows.shape[0]), "users": c["users"], "titles": c["titles"]}
    k.progress((i + 1) / len(p["countries"]), "generated %s: %d views" % (c["code"], rows.shape[0]))
k.output({"date": p["date"], "datasets": out})
