"""Train the recommender with Spark MLlib ALS (implicit feedback) on the same train split as the sklearn trainer.

Same input and output as activities/python/train.py, so evaluate, the validation loop and champion/challenger
do not change: the model is an .npz with W (users x rank) and H (rank x titles), scored as W @ H.
The train split is small here, so the driver reads the .npz and hands it to Spark; a large input would be read
by the executors straight from storage instead (spark.read.parquet("s3a://bucket/train/"), see the README).
"""
import os
import numpy as np
import kaon_step as k
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession

p = k.inputs()
z = np.load(k.input_path("train"))
users, titles, rank = int(z["users"]), int(z["titles"]), p["rank"]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
# log1p counts as confidence, as the sklearn trainer factorises log1p counts.
rows = [(int(u), int(t), float(np.log1p(c))) for u, t, c in zip(z["user"], z["title"], z["count"])]
df = spark.createDataFrame(rows, ["user", "title", "confidence"]).repartition(4).cache()
# One ALS iteration per epoch. Implicit ALS needs some regularisation to be well posed: l2 = 0 (the grid's
# default) means Spark's default regParam, 0.1.
als = ALS(rank=rank, maxIter=p["epochs"], regParam=p["l2"] if p["l2"] > 0 else 0.1, alpha=1.0, implicitPrefs=True,
          userCol="user", itemCol="title", ratingCol="confidence", seed=p["seed"], coldStartStrategy="drop")
model = als.fit(df)
w = np.zeros((users, rank), dtype=np.float32)
h = np.zeros((rank, titles), dtype=np.float32)
for r in model.userFactors.collect():
    w[r["id"]] = r["features"]
for r in model.itemFactors.collect():
    h[:, r["id"]] = r["features"]
# Implicit ALS fits preferences (1 where a user watched), so its loss is measured against those.
pref = np.zeros((users, titles), dtype=np.float32)
pref[z["user"], z["title"]] = 1.0
loss = float(np.linalg.norm(pref - w @ h) / np.linalg.norm(pref))
path = os.path.join(k.output_dir(), "model-%s-r%d.npz" % (p["country"], rank))
np.savez_compressed(path, W=w, H=h)
k.output({"model": k.save_artifact(path, media_type="application/x-npz"), "rank": rank, "epochs": p["epochs"], "relativeLoss": round(loss, 6)})
spark.stop()
