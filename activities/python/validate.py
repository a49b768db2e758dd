"""Validate data quality per country: schema, row counts, null rates, id ranges. Writes a report artifact."""
import recsys  # first: sets BLAS threads before numpy loads
import json
import os
import numpy as np
import kaon_step as k

p = k.inputs()
report, problems = {}, []
for code, d in sorted(p["datasets"].items()):
    z = np.load(k.input_path("datasets.%s.interactions" % code))
    checks = {}
    missing = [f for f in ("user", "title", "count") if f not in z.files]
    checks["schema"] = {"ok": not missing, "missing": missing}
    if not missing:
        user, title, count = z["user"], z["title"], z["count"]
        n = int(count.shape[0])
        nulls = float(np.isnan(count).mean()) if n else 1.0
        in_range = bool(n and user.min() >= 0 and user.max() < d["users"] and title.min() >= 0 and title.max() < d["titles"])
        checks["rows"] = {"ok": n >= p["minRows"], "value": n, "min": p["minRows"]}
        checks["nullRate"] = {"ok": nulls <= p["maxNullRate"], "value": round(nulls, 4), "max": p["maxNullRate"]}
        checks["idRange"] = {"ok": in_range}
    for name, c in checks.items():
        if not c["ok"]:
            problems.append("%s: %s check failed (%s)" % (code, name, json.dumps({x: y for x, y in c.items() if x != "ok"})))
    report[code] = checks
path = os.path.join(k.output_dir(), "data-quality.json")
with open(path, "w") as f:
    json.dump({"date": p["date"], "ok": not problems, "problems": problems, "countries": report}, f, indent=2)
k.output({"ok": not problems, "problems": problems, "report": k.save_artifact(path, media_type="application/json")})
