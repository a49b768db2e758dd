"""Kaon step helper for Python scripts run by python() / command() steps. Dependency-free.

    import kaon_step as k
    p = k.inputs()                       # the step's validated input
    k.progress(0.5, "fitting")
    model = k.save_artifact("model.pkl", name="model")
    k.card("Model card", "accuracy **0.93**", images=["plot.png"])
    k.log_metric("accuracy", 0.93)        # run state, board, MLflow (when configured)
    k.output({"model": model, "accuracy": 0.93})

Messages go to a dedicated pipe ($KAON_PROTOCOL_FD; a file, $KAON_PROTOCOL_FILE, in Spark drivers) as JSON lines, so print() and logging never collide with
them. Exit code 65 (see bad_input) means "bad input, do not retry"; any other non-zero exit is retried.
"""

import json
import math
import os
import sys
import threading

BAD_INPUT_EXIT_CODE = 65

_lock = threading.Lock()
_stream = None
_inputs = None
_output_written = False


def _channel():
    global _stream
    if _stream is None:
        # A Spark driver is a grandchild of spark-submit's JVM, which closes inherited fds: Kaon gives it a file.
        file = os.environ.get("KAON_PROTOCOL_FILE")
        if file:
            _stream = open(file, "a", encoding="utf-8")
            return _stream
        fd = os.environ.get("KAON_PROTOCOL_FD")
        if fd is None:
            return None  # not run by Kaon: messages go to stderr (see _send)
        _stream = os.fdopen(int(fd), "w", encoding="utf-8", closefd=False)
    return _stream


def _send(message):
    # allow_nan=False: NaN/Infinity are not JSON; fail here, with a Python traceback, not in the worker.
    line = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n"
    with _lock:
        stream = _channel()
        if stream is None:
            sys.stderr.write("kaon: " + line)
            sys.stderr.flush()
            return
        stream.write(line)
        stream.flush()


def inputs():
    """The step's input (validated by Kaon against the step's schema), loaded from $KAON_INPUT."""
    global _inputs
    if _inputs is None:
        path = os.environ.get("KAON_INPUT")
        if not path:
            raise RuntimeError("KAON_INPUT is not set: run this script as a Kaon step, or set KAON_INPUT=input.json to try it by hand")
        with open(path, encoding="utf-8") as f:
            _inputs = json.load(f)
    return _inputs


def input_paths():
    """Local file paths of the input's artifacts, by field path: {"features": "/tmp/...", "models[0]": ...}."""
    return json.loads(os.environ.get("KAON_INPUT_PATHS") or "{}")


def input_path(field):
    """Local file path of the artifact input at `field` (e.g. "features" or "models[0]")."""
    paths = input_paths()
    if field not in paths:
        known = ", ".join(sorted(paths)) or "none"
        raise KeyError("no artifact input at %r (artifact inputs: %s)" % (field, known))
    return paths[field]


def read_sweep(field):
    """Stream the results of a k.map sweep passed in the input at `field`: yields one dict per item, in item
    order: {"i": 0, "ok": True, "output": {...}} or {"i": 3, "ok": False, "error": "...", "status": "failed"}."""
    path = input_path(field + ".results")
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def output_dir():
    """A folder whose files become artifacts of this step when it succeeds."""
    return os.environ.get("KAON_OUTPUT_DIR") or os.getcwd()


def progress(fraction, message=""):
    """Report progress (fraction in [0, 1], or None); Kaon heartbeats it to Temporal."""
    if fraction is not None:
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("progress fraction must be between 0 and 1, got %r" % fraction)
    msg = {"type": "progress", "fraction": fraction}
    if message:
        msg["message"] = str(message)
    _send(msg)


def log(message, level="info"):
    """A log line at a level (debug, info, warn, error), kept apart from stdout."""
    if level not in ("debug", "info", "warn", "warning", "error"):
        raise ValueError("log level must be debug, info, warn or error, got %r" % level)
    _send({"type": "log", "level": level, "message": str(message)})


def save_artifact(path, name=None, media_type=None):
    """Keep the file at `path` as an artifact; returns a placeholder to put in output(), replaced by its ArtifactRef."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError("save_artifact: no file at %s" % path)
    name = name or os.path.basename(path)
    msg = {"type": "artifact", "path": path, "name": name}
    if media_type:
        msg["mediaType"] = media_type
    _send(msg)
    return {"$artifact": name}


def card(title, markdown, images=None):
    """Publish a card (markdown + image files, e.g. a model card with a plot). Kaon stores it as artifacts when the
    step succeeds and links it from the run state; the board shows it. In the markdown, ![plot](plot.png) places an
    image by its file name; images it does not name are shown after the text."""
    if not isinstance(title, str) or not title.strip():
        raise ValueError("card: title must be a non-empty string, got %r" % (title,))
    if not isinstance(markdown, str):
        raise ValueError("card: markdown must be a string, got %r" % type(markdown).__name__)
    paths = []
    for img in images or []:
        p = os.path.abspath(str(img))
        if not os.path.isfile(p):
            raise FileNotFoundError("card %r: no image file at %s" % (title, p))
        paths.append(p)
    _send({"type": "card", "title": title, "markdown": markdown, "images": paths})
def log_metric(name, value, step=None):
    """A step metric: a finite number under a name, with an optional integer step (epoch, iteration). It lands on the
    step's entry in the run state and, when MLFLOW_TRACKING_URI is set, on the step's MLflow run. A NaN or infinite
    value stops the step as bad input (exit 65, not retried)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars
        except (TypeError, ValueError):
            bad_input("metric %r has the value %r, not a number" % (name, value))
    if not math.isfinite(value):
        bad_input("metric %r has the value %r, not a finite number. To fix: log a finite number (check for a division by zero or a diverging loss)" % (name, value))
    msg = {"type": "metric", "name": str(name), "value": float(value) if not isinstance(value, int) else value}
    if step is not None:
        if int(step) != step:
            bad_input("metric %r has step %r, not an integer" % (name, step))
        msg["step"] = int(step)
    _send(msg)


def register_model(name, artifact, description=None, tags=None):
    """Register an artifact as a version of model `name` (MLflow Model Registry, when MLFLOW_TRACKING_URI is set).
    `artifact`: an artifact ref from inputs() or the value save_artifact() returned. Done when the step succeeds."""
    msg = {"type": "model", "name": str(name), "artifact": artifact}
    if description is not None:
        msg["description"] = str(description)
    if tags:
        msg["tags"] = {str(k): str(v) for k, v in tags.items()}
    _send(msg)


def output(value):
    """The step's result (JSON-serialisable). Call exactly once."""
    global _output_written
    if _output_written:
        raise RuntimeError("kaon_step.output() was already called; a step has exactly one output")
    _send({"type": "output", "value": value})
    _output_written = True


def bad_input(message):
    """Stop with exit code 65: the input is wrong and retrying cannot help. `message` should name the field."""
    sys.stdout.flush()
    sys.stderr.write("bad input: %s\n" % message)
    sys.stderr.flush()
    sys.exit(BAD_INPUT_EXIT_CODE)


def secret(name):
    """The value of a secret the step declares (`secrets: ['HF_TOKEN']` in its contract), from its environment.
    Kaon redacts it from the step's logs, progress and errors, and refuses an output that contains it."""
    value = os.environ.get(name)
    if value is None:
        raise KeyError(
            "secret %s is not in this step's environment. To fix: declare it in the step's contract, "
            "secrets: ['%s'], and provide it on the worker (%s=…, %s_FILE=/path, or $KAON_SECRETS_DIR/%s)" % (name, name, name, name, name)
        )
    return value
