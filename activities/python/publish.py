"""Publish a country's winning model to the registry with a model card: metrics JSON, a PNG plot, lineage."""
import json
import os
import shutil
import tempfile
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import kaon_step as k

p = k.inputs()
m = p["metrics"]
country_dir = os.path.join(os.path.abspath(p["registry"]), p["country"])
version = p["version"]
os.makedirs(country_dir, exist_ok=True)
# Build the card in a temp folder and rename it into place: a crash never leaves half a model card.
stage = tempfile.mkdtemp(prefix=".publish-", dir=country_dir)
shutil.copyfile(k.input_path("model"), os.path.join(stage, "model.npz"))
card = {"country": p["country"], "version": version, "date": p["date"], "metrics": m, "hyperparameters": p["hyperparameters"], "previousChampion": p.get("champion")}
with open(os.path.join(stage, "metrics.json"), "w") as f:
    json.dump(card, f, indent=2)
with open(os.path.join(stage, "lineage.json"), "w") as f:
    json.dump(p["lineage"], f, indent=2)
fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
labels = ["recall@%d" % m["k"], "NDCG@%d" % m["k"]]
model_v = [m["recallAtK"], m["ndcgAtK"]]
base_v = [m["baseline"]["recallAtK"], m["baseline"]["ndcgAtK"]]
xs = range(len(labels))
ax.bar([x - 0.2 for x in xs], model_v, width=0.4, label="model (rank %d)" % p["hyperparameters"]["rank"])
ax.bar([x + 0.2 for x in xs], base_v, width=0.4, label="popularity baseline")
ax.set_xticks(list(xs), labels)
ax.set_title("%s recommender %s: lift %+.0f%%" % (p["country"], version, 100 * m["lift"]))
ax.legend()
fig.tight_layout()
plot = os.path.join(stage, "metrics.png")
fig.savefig(plot)
final = os.path.join(country_dir, version)
if os.path.exists(final):
    shutil.rmtree(final)
os.rename(stage, final)
pointer = os.path.join(country_dir, ".current.tmp")
with open(pointer, "w") as f:
    json.dump({"version": version, "metrics": m}, f)
os.replace(pointer, os.path.join(country_dir, "current.json"))
# A Model Registry version (MLflow, when MLFLOW_TRACKING_URI is set), linked back to this run and step.
k.register_model(
    "recommender-%s" % p["country"],
    p["model"],
    description="%s recommender %s (NDCG@%d %.4f, lift %+.0f%%), published by Kaon run %s" % (p["country"], version, m["k"], m["ndcgAtK"], 100 * m["lift"], os.environ.get("KAON_RUN_ID", "")),
    tags={"kaon.version": version, "kaon.registry_path": final},
)
shutil.copyfile(os.path.join(final, "metrics.png"), os.path.join(k.output_dir(), "metrics-%s.png" % p["country"]))
k.output({"country": p["country"], "version": version, "path": final, "card": k.save_artifact(os.path.join(k.output_dir(), "metrics-%s.png" % p["country"]), media_type="image/png")})
