import kaon_step as k

best, scored = None, 0
for line in k.read_sweep("sweep"):
    if line["ok"]:
        scored += 1
        if best is None or line["output"]["score"] > best["score"]:
            best = line["output"]
k.output({**best, "scored": scored})
