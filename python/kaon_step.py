"""Kaon step helper for Python scripts run by python() / command() steps. Dependency-free.

    import kaon_step as k
    p = k.inputs()                       # the step's validated input
    k.progress(0.5, "fitting")
    model = k.save_artifact("model.pkl", name="model")
    k.card("Model card", "accuracy **0.93**", images=["plot.png"])
    k.log_metric("accuracy", 0.93)        # run state, board, MLflow (when configured)
    k.output({"model": model, "accuracy": 0.93})

A script can also define its work per item, for sweeps (k.map with `batch`): the module's code (imports, loading a
model) runs once per process, then the function runs once per item, and what it returns is that item's output:

    import kaon_step as k
    model = load_model()                 # once per process
    def score(item):                     # once per item
        k.progress(0.5, "scoring")       # progress, logs, metrics and artifacts belong to this item
        return {"loss": model.loss(item["x"])}
    k.run_items(score)

Messages go to a dedicated pipe ($KAON_PROTOCOL_FD; a file, $KAON_PROTOCOL_FILE, in Spark drivers) as JSON lines, so print() and logging never collide with
them. Exit code 65 (see bad_input) means "bad input, do not retry"; any other non-zero exit is retried. A misused call
(a second output, NaN in an output, progress outside [0, 1], a set or bytes in a value) raises KaonStepError, which,
uncaught, also exits 65: the same code would fail the same way on a retry.
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
# Set by Kaon when the process runs many items (see run_items); None for a one-item process.
_items_fd = os.environ.get("KAON_ITEMS_FD")
_item = None  # the item being run, in a many-item process
_serving = False


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


class KaonStepError(ValueError):
    """A kaon_step call was misused (a second output, NaN in an output, progress outside [0, 1]…). Retrying the same
    code cannot help, so an uncaught KaonStepError ends the script with exit 65 (bad input: not retried)."""


def _misuse(call, what, fix):
    raise KaonStepError("kaon_step.%s: %s. To fix: %s" % (call, what, fix))


def _exit_on_misuse(exc_type, exc, tb, previous):
    previous(exc_type, exc, tb)
    if issubclass(exc_type, KaonStepError):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(BAD_INPUT_EXIT_CODE)  # also from a thread; sys.exit() there would end only the thread


_previous_hook = sys.excepthook
sys.excepthook = lambda t, e, tb: _exit_on_misuse(t, e, tb, _previous_hook)
_previous_thread_hook = threading.excepthook


def _thread_hook(args):
    _previous_thread_hook(args)
    if args.exc_type is not None and issubclass(args.exc_type, KaonStepError):
        _exit_on_misuse(args.exc_type, args.exc_value, args.exc_traceback, lambda *_: None)


threading.excepthook = _thread_hook

_MAX_DEPTH = 200


def _field(path):
    parts = []
    for i, p in enumerate(path):
        if isinstance(p, int):
            parts.append("[%d]" % p)
        elif p.isidentifier():
            parts.append(("." if i else "") + p)
        else:
            parts.append("[%s]" % json.dumps(p))
    return "".join(parts) or "the value itself"


def _check_json(call, what, value, fix_prefix=""):
    found = _json_problem(value)
    if found:
        path, why = found
        where = what if not path else "%s at %s" % (what, _field(path))
        _misuse(call, "%s %s" % (where, why), fix_prefix + "pass only JSON data (large or binary data as an artifact)")


def _json_problem(value, path=(), seen=None):
    """(path, why) of the first part of `value` that is not plain JSON, else None. json.dumps would fail on it,
    or, worse, coerce it (a tuple key, an int key turned into a string)."""
    if len(path) > _MAX_DEPTH:
        return path[:3], "nests deeper than %d levels" % _MAX_DEPTH
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return path, "is %r, which is not JSON; pass a finite number or None" % value
        return None
    seen = seen if seen is not None else set()
    if isinstance(value, (list, tuple, dict)):
        if id(value) in seen:
            return path, "is a circular reference (the value contains itself)"
        seen.add(id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    return path, "has the key %r (a %s); JSON keys are strings: use str keys" % (k, type(k).__name__)
                found = _json_problem(v, path + (k,), seen)
                if found:
                    return found
        else:
            for i, v in enumerate(value):
                found = _json_problem(v, path + (i,), seen)
                if found:
                    return found
        seen.discard(id(value))
        return None
    kind = type(value).__name__
    if isinstance(value, (bytes, bytearray, memoryview)):
        return path, "is binary data (%s); save it to a file with save_artifact() and put the returned value here" % kind
    if isinstance(value, (set, frozenset)):
        return path, "is a %s, which is not JSON; pass a list (sorted(...))" % kind
    if hasattr(value, "item") and callable(value.item):
        return path, "is a %s (numpy?), which is not JSON; convert it with .item() or .tolist()" % kind
    return path, "is a %s object, which is not JSON; pass dicts, lists, strings, finite numbers, booleans and None" % kind


def _send(*messages):
    # allow_nan=False: NaN/Infinity are not JSON; callers check values first (_json_problem) to name the field.
    line = "".join(json.dumps(m, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n" for m in messages)
    with _lock:
        stream = _channel()
        if stream is None:
            sys.stderr.write("".join("kaon: " + l + "\n" for l in line.splitlines()))
            sys.stderr.flush()
            return
        stream.write(line)
        stream.flush()


def inputs():
    """The step's input (validated by Kaon against the step's schema), loaded from $KAON_INPUT."""
    global _inputs
    _outside_item("inputs")
    if _item is not None:
        return _inputs
    if _inputs is None:
        path = os.environ.get("KAON_INPUT")
        if not path:
            raise RuntimeError("KAON_INPUT is not set: run this script as a Kaon step, or set KAON_INPUT=input.json to try it by hand")
        with open(path, encoding="utf-8") as f:
            _inputs = json.load(f)
    return _inputs


def input_paths():
    """Local file paths of the input's artifacts, by field path: {"features": "/tmp/...", "models[0]": ...}."""
    _outside_item("input_paths")
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
    """A folder whose files become artifacts of this step (of the item running, in run_items) when it succeeds. In a
    many-item process it is the same folder for every item, emptied after each."""
    return os.environ.get("KAON_OUTPUT_DIR") or os.getcwd()


def progress(fraction, message=""):
    """Report progress (fraction in [0, 1], or None); Kaon heartbeats it to Temporal."""
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            try:
                fraction = float(fraction)  # numpy scalars
            except (TypeError, ValueError):
                _misuse("progress", "the fraction is %r (a %s), not a number" % (fraction, type(fraction).__name__), "pass a number between 0 and 1 (done / total), or None")
        fraction = float(fraction)
        if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            _misuse("progress", "the fraction is %r, outside [0, 1]" % fraction, "pass done / total, a number between 0 and 1 (or None when unknown)")
    msg = {"type": "progress", "fraction": fraction}
    if message:
        msg["message"] = str(message)
    _send(msg)


def log(message, level="info"):
    """A log line at a level (debug, info, warn, error), kept apart from stdout."""
    if level not in ("debug", "info", "warn", "warning", "error"):
        _misuse("log", "the level is %r" % (level,), "use one of debug, info, warn, error")
    _send({"type": "log", "level": level, "message": str(message)})


def save_artifact(path, name=None, media_type=None):
    """Keep the file at `path` as an artifact; returns a placeholder to put in output(), replaced by its ArtifactRef."""
    if not isinstance(path, (str, os.PathLike)):
        _misuse("save_artifact", "the path is %r (a %s), not a file path" % (path, type(path).__name__), "pass the path of a file the script wrote")
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        _misuse("save_artifact", "no file at %s" % path, "write the file first, and keep it until the script ends")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        _misuse("save_artifact", "the name is %r, not a non-empty string" % (name,), 'pass name="model.pkl" or leave it out (the file name is used)')
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
        _misuse("card", "the title is %r, not a non-empty string" % (title,), 'pass a title such as "Model card"')
    if not isinstance(markdown, str):
        _misuse("card", "the markdown is a %s, not a string" % type(markdown).__name__, "pass the card's text as a str")
    paths = []
    for img in images or []:
        p = os.path.abspath(str(img))
        if not os.path.isfile(p):
            _misuse("card", "card %r names the image %s, but no file is there" % (title, p), "write the image first (e.g. plt.savefig) and pass its path")
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
    _check_json("register_model", "the artifact", artifact, "pass the value save_artifact() returned or an artifact ref from inputs(); ")
    msg = {"type": "model", "name": str(name), "artifact": artifact}
    if description is not None:
        msg["description"] = str(description)
    if tags:
        msg["tags"] = {str(k): str(v) for k, v in tags.items()}
    _send(msg)


def output(value):
    """The step's result (JSON-serialisable). Call exactly once."""
    _send(_output_message(value))


def _output_message(value):
    global _output_written
    _outside_item("output")
    if _output_written:
        _misuse("output", "output() was already called; a step has exactly one output", "collect everything into one dict and call output() once, at the end")
    _check_json("output", "the output", value, "convert the value (a set to a list, numpy values with .item()/.tolist()); ")
    _output_written = True
    return {"type": "output", "value": value}


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


def _outside_item(call):
    """In a many-item process, a one-item call (inputs(), output()…) outside an item handler means the script is a
    one-item script: say so, and end. Kaon then runs each item in a process of its own; nothing ran twice."""
    if _items_fd is None or _item is not None:
        return
    _send({"type": "items-none", "call": call})
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_items(fn):
    """Run `fn(item)` for each item this process is given, and make what it returns the item's output (None: no
    output). Call it once, at the end of the script: the code above it (imports, loading a model) runs once per
    process, `fn` once per item.

    With `batch` in k.map, Kaon hands a process the items of a batch one after another. Each item's progress, logs,
    metrics, cards and artifacts (save_artifact, output_dir()) are its own; inputs(), input_path() and output()
    also work inside `fn` and refer to the item. An exception fails that item only (retried by the step's policy),
    bad_input() or a misused call fails it as bad input (not retried), and the process goes on with the next item.
    A crash of the process (os._exit, a segfault, the OOM killer) fails the item that was running; the next item
    starts a new process.

    Run as a one-item step (no batch, `kaon step run`, or by hand with KAON_INPUT=input.json), it calls `fn` once
    with the step's input and writes its output: the same script works both ways."""
    global _serving
    if not callable(fn):
        _misuse("run_items", "%r is not a function" % (fn,), "pass the function that handles one item: k.run_items(score)")
    if _serving or _item is not None:
        _misuse("run_items", "run_items() is already running", "call run_items() once, at the end of the script")
    _serving = True
    try:
        if _items_fd is None:
            result = fn(inputs())
            if result is not None:
                output(result)
            return
        _serve(fn, int(_items_fd))
    finally:
        _serving = False


def _serve(fn, fd):
    global _item, _inputs, _output_written
    os.set_inheritable(fd, False)  # not passed on to subprocesses the items start
    items = os.fdopen(fd, "r", encoding="utf-8", closefd=False)
    _send({"type": "items-ready"})
    for line in items:
        if not line.strip():
            continue
        item = json.loads(line)
        _item, _inputs, _output_written = item, item.get("input"), False
        for name, value in (("KAON_STEP_KEY", item.get("key")), ("KAON_ATTEMPT", item.get("attempt"))):
            if value is not None:
                os.environ[name] = str(value)
        os.environ["KAON_INPUT_PATHS"] = json.dumps(item.get("inputPaths") or {})
        status, error, last = 0, None, None
        try:
            result = fn(_inputs)
            if result is not None:
                last = _output_message(result)  # sent with item-end: one write, not two
        except SystemExit as e:  # bad_input() or sys.exit(): this item's exit code
            code = e.code
            if code is None or isinstance(code, int):
                status = code or 0
            else:
                sys.stderr.write("%s\n" % (code,))
                status = 1
            error = None if status in (0, BAD_INPUT_EXIT_CODE) else "sys.exit(%r)" % (code,)
        except KaonStepError as e:  # a misused call: bad input, as an uncaught one exits 65
            _print_exception(e)
            status, error = BAD_INPUT_EXIT_CODE, str(e)
        except Exception as e:
            _print_exception(e)
            status, error = 1, _last_line(e)
        _end_item(item.get("id"), status, error, last)
        _item, _inputs, _output_written = None, None, False


def _print_exception(e):
    import traceback  # only when an item fails: it costs a few ms at start-up

    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None  # from the item function down
    traceback.print_exception(type(e), e, tb, file=sys.stderr)


def _last_line(e):
    import traceback

    return "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()[-1]


def _end_item(item_id, status, error, last=None):
    # Everything the item printed goes out before its end: a mark on stdout and stderr, then item-end (see
    # src/execution/item-session.ts), so Kaon gives each line to the item that printed it.
    mark = ("\x1ekaon:item-end:%s\x1e\n" % item_id).encode()
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            if stream is not None:
                stream.flush()
            os.write(fd, mark)
        except (OSError, ValueError):
            pass
    msg = {"type": "item-end", "id": item_id, "status": status}
    if error:
        msg["error"] = error[:2000]
    _send(*([last, msg] if last is not None else [msg]))
