from collections import Counter
import kaon_step as k

p = k.inputs()
counts = Counter(p["words"])
k.progress(1.0, "counted %d words" % len(p["words"]))
k.output({
    "total": len(p["words"]),
    "distinct": len(counts),
    "top": [[w, n] for w, n in counts.most_common(p["top"])],
})
