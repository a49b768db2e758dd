# Scores one config of a sweep per item: what is above score() runs once per process, score() once per item.
import math

import kaon_step as k

WEIGHTS = {"lr": -0.3, "depth": 0.05}  # stands for a model loaded once: joblib.load(...), torch.load(...)


def score(item):
    if item["lr"] <= 0:
        k.bad_input("field 'lr': %s is not positive" % item["lr"])  # this item fails, not retried
    k.progress(0.5, "scoring lr=%g depth=%d" % (item["lr"], item["depth"]))
    s = WEIGHTS["lr"] * math.log(item["lr"]) + WEIGHTS["depth"] * item["depth"]
    k.log_metric("score", s)
    return {"lr": item["lr"], "depth": item["depth"], "score": s}


k.run_items(score)
