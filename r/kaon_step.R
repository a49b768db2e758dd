# Kaon step helper for R scripts run by command(['Rscript', 'fit.R']) steps. Depends only on jsonlite.
#
#   source(Sys.getenv("KAON_R_HELPER"))        # Kaon sets KAON_R_HELPER for every step process
#   p <- kaon_inputs()                          # the step's validated input (a list)
#   d <- read.csv(kaon_input_path("data"))      # a local file for the artifact input at "data"
#   kaon_progress(0.5, "fitting")
#   kaon_log_metric("aic", AIC(fit))
#   plot <- kaon_save_artifact("fit.png", media_type = "image/png")
#   kaon_output(list(coefficients = as.list(coef(fit)), plot = plot))
#
# Messages go to a dedicated pipe ($KAON_PROTOCOL_FD) as JSON lines, so print() and message() never collide with
# them. kaon_bad_input() exits 65: bad input, not retried. Any other error (stop()) exits 1 and is retried. A misused
# call (a second output, NaN or Inf in an output, progress outside [0, 1]) also exits 65: a retry would fail the same way.
#
# A script can also define its work per item, for sweeps (k.map with `batch`): the code above kaon_run_items (loading
# packages, a model) runs once per process, the function once per item, and what it returns is that item's output:
#
#   source(Sys.getenv("KAON_R_HELPER"))
#   model <- readRDS("model.rds")              # once per process
#   kaon_run_items(function(item) {           # once per item
#     kaon_progress(0.5, "scoring")             # progress, logs, metrics and artifacts belong to this item
#     list(loss = predict(model, item$x))
#   })

suppressPackageStartupMessages(library(jsonlite))

.kaon <- new.env()
.kaon$channel <- NULL
.kaon$inputs <- NULL
.kaon$output_written <- FALSE
# Set by Kaon when the process runs many items (see kaon_run_items); "" for a one-item process.
.kaon$items_fd <- Sys.getenv("KAON_ITEMS_FD", unset = "")
.kaon$item <- NULL # the item being run (a list), in a many-item process
.kaon$serving <- FALSE

# jsonlite prints at most 15 significant digits; doubles go out as the shortest text that reads back the same.
.kaon_num <- function(v) {
  s <- sprintf("%.15g", v)
  off <- is.finite(v) & suppressWarnings(as.numeric(s)) != v
  s[off] <- sprintf("%.17g", v[off])
  s[is.na(v) | !is.finite(v)] <- "null"
  s
}
.kaon_exact <- function(x) {
  if (is.list(x) && !is.data.frame(x)) {
    for (i in seq_along(x)) if (!is.null(x[[i]])) x[[i]] <- .kaon_exact(x[[i]])
    return(x)
  }
  if (is.double(x) && is.null(dim(x)) && !inherits(x, "json")) {
    s <- .kaon_num(as.vector(x))
    return(structure(if (length(s) == 1) s else paste0("[", paste(s, collapse = ","), "]"), class = "json"))
  }
  x
}

# A misused kaon_* call: the same code fails the same way on a retry, so exit 65 (not retried), naming call and fix.
.kaon_misuse <- function(call, what, fix) {
  kaon_bad_input(sprintf("%s: %s. To fix: %s", call, what, fix))
}

# The first part of `x` that JSON cannot carry as-is (NaN, Inf, a function, an environment), as "field: why";
# NULL when there is none. NA stays allowed: it is R's missing value and goes out as null.
.kaon_json_problem <- function(x, path = "") {
  where <- if (path == "") "the value itself" else path
  if (is.null(x) || is.character(x) || is.logical(x) || is.factor(x)) return(NULL)
  if (is.function(x) || is.environment(x)) return(sprintf("%s is a %s, which is not JSON", where, class(x)[1]))
  if (is.numeric(x)) {
    bad <- which(is.nan(x) | is.infinite(x))
    if (length(bad)) {
      at <- if (length(x) > 1) sprintf("%s[%d]", where, bad[1] - 1) else where
      return(sprintf("%s is %s, which is not JSON (it would become null)", at, format(x[bad[1]])))
    }
    return(NULL)
  }
  if (is.list(x)) {
    nms <- names(x)
    for (i in seq_along(x)) {
      key <- if (!is.null(nms) && nzchar(nms[i])) nms[i] else sprintf("[%d]", i - 1)
      sub <- if (path == "") key else if (startsWith(key, "[")) paste0(path, key) else paste0(path, ".", key)
      found <- .kaon_json_problem(x[[i]], sub)
      if (!is.null(found)) return(found)
    }
    return(NULL)
  }
  if (is.raw(x)) return(sprintf("%s is raw bytes, which is not JSON; write them to a file and kaon_save_artifact() it", where))
  NULL
}

.kaon_send <- function(message, ...) {
  line <- vapply(list(message, ...), function(m) as.character(jsonlite::toJSON(.kaon_exact(m), auto_unbox = TRUE, null = "null", na = "null", json_verbatim = TRUE)), "")
  if (is.null(.kaon$channel)) {
    fd <- Sys.getenv("KAON_PROTOCOL_FD", unset = "")
    if (fd == "") {
      cat(paste0("kaon: ", line, "\n"), sep = "", file = stderr())  # not run by Kaon
      return(invisible(NULL))
    }
    if (!grepl("^[0-9]+$", fd)) stop(sprintf("KAON_PROTOCOL_FD is %s, not a file descriptor number", fd))
    # The fd is a socket (Node's pipes are), which file("/dev/fd/3") cannot open; a child cat can write to it.
    .kaon$channel <- pipe(sprintf("exec cat >&%s", fd), open = "w", encoding = "UTF-8")
  }
  writeLines(line, .kaon$channel)
  flush(.kaon$channel)
  invisible(NULL)
}

# The step's input (validated by Kaon against the step's schema), from $KAON_INPUT. Arrays of scalars become
# vectors, arrays of objects lists (jsonlite's simplifyVector = TRUE, simplifyDataFrame = FALSE).
kaon_inputs <- function() {
  .kaon_outside_item("kaon_inputs")
  if (!is.null(.kaon$item)) return(.kaon$item$input)
  if (is.null(.kaon$inputs)) {
    path <- Sys.getenv("KAON_INPUT", unset = "")
    if (path == "") stop("KAON_INPUT is not set: run this script as a Kaon step, or set KAON_INPUT=input.json to try it by hand")
    .kaon$inputs <- jsonlite::fromJSON(path, simplifyVector = TRUE, simplifyDataFrame = FALSE, simplifyMatrix = FALSE)
  }
  .kaon$inputs
}

# Local file paths of the input's artifacts, by field path: list(data = "/tmp/...", `models[0]` = ...).
kaon_input_paths <- function() {
  .kaon_outside_item("kaon_input_paths")
  text <- Sys.getenv("KAON_INPUT_PATHS", unset = "{}")
  jsonlite::fromJSON(if (text == "") "{}" else text, simplifyVector = TRUE)
}

# The local file of the artifact input at `field` (e.g. "data" or "models[0]").
kaon_input_path <- function(field) {
  paths <- kaon_input_paths()
  if (is.null(paths[[field]])) {
    known <- if (length(paths)) paste(sort(names(paths)), collapse = ", ") else "none"
    stop(sprintf("no artifact input at '%s' (artifact inputs: %s)", field, known))
  }
  paths[[field]]
}

# A folder whose files become artifacts of this step (of the item running, in kaon_run_items) when it succeeds. In a
# many-item process it is the same folder for every item, emptied after each.
kaon_output_dir <- function() {
  d <- Sys.getenv("KAON_OUTPUT_DIR", unset = "")
  if (d == "") getwd() else d
}

# Report progress: a fraction in [0, 1] (or NULL) and a message. Kaon heartbeats it to Temporal.
kaon_progress <- function(fraction, message = "") {
  if (!is.null(fraction)) {
    if (!is.numeric(fraction) || length(fraction) != 1) .kaon_misuse("kaon_progress", sprintf("the fraction is %s, not one number", paste(format(fraction), collapse = " ")), "pass done / total, a number between 0 and 1 (or NULL when unknown)")
    fraction <- as.numeric(fraction)
    if (is.na(fraction) || fraction < 0 || fraction > 1) .kaon_misuse("kaon_progress", sprintf("the fraction is %s, outside [0, 1]", format(fraction)), "pass done / total, a number between 0 and 1 (or NULL when unknown)")
  }
  msg <- list(type = "progress", fraction = fraction)
  if (nzchar(message)) msg$message <- as.character(message)
  .kaon_send(msg)
}

# A log line at a level (debug, info, warn, error), kept apart from stdout.
kaon_log <- function(message, level = "info") {
  if (!level %in% c("debug", "info", "warn", "warning", "error")) .kaon_misuse("kaon_log", sprintf("the level is '%s'", level), "use one of debug, info, warn, error")
  .kaon_send(list(type = "log", level = level, message = paste(as.character(message), collapse = " ")))
}

# A step metric: a finite number, with an optional integer step. NaN, NA or Inf stop the step as bad input.
kaon_log_metric <- function(name, value, step = NULL) {
  if (!is.numeric(value) || length(value) != 1 || !is.finite(value)) {
    kaon_bad_input(sprintf("metric '%s' has the value %s, not a finite number. To fix: log a finite number (check for a division by zero or a diverging fit)", name, format(value)))
  }
  msg <- list(type = "metric", name = as.character(name), value = as.numeric(value))
  if (!is.null(step)) {
    if (!is.numeric(step) || step != round(step)) kaon_bad_input(sprintf("metric '%s' has step %s, not an integer", name, format(step)))
    msg$step <- as.integer(step)
  }
  .kaon_send(msg)
}

# Keep the file at `path` as an artifact; returns a placeholder to put in kaon_output(), replaced by its ArtifactRef.
kaon_save_artifact <- function(path, name = NULL, media_type = NULL) {
  path <- normalizePath(path, mustWork = FALSE)
  if (!file.exists(path) || dir.exists(path)) .kaon_misuse("kaon_save_artifact", sprintf("no file at %s", path), "write the file first, and keep it until the script ends")
  if (is.null(name)) name <- basename(path)
  msg <- list(type = "artifact", path = path, name = name)
  if (!is.null(media_type)) msg$mediaType <- media_type
  .kaon_send(msg)
  list(`$artifact` = name)
}

# Register an artifact (an input ref, or what kaon_save_artifact returned) as a version of model `name`.
kaon_register_model <- function(name, artifact, description = NULL, tags = NULL) {
  msg <- list(type = "model", name = as.character(name), artifact = artifact)
  if (!is.null(description)) msg$description <- as.character(description)
  if (!is.null(tags)) msg$tags <- lapply(tags, as.character)
  .kaon_send(msg)
}

# The step's result: a list that becomes JSON (length-1 vectors become scalars). Call exactly once.
kaon_output <- function(value) {
  .kaon_send(.kaon_output_message(value))
  invisible(NULL)
}

.kaon_output_message <- function(value) {
  .kaon_outside_item("kaon_output")
  if (.kaon$output_written) .kaon_misuse("kaon_output", "kaon_output() was already called; a step has exactly one output", "collect everything into one list and call kaon_output() once, at the end")
  problem <- .kaon_json_problem(value)
  if (!is.null(problem)) .kaon_misuse("kaon_output", paste("the output at", problem), "pass finite numbers (NA for a missing value), strings, logicals and lists; large or binary data as an artifact")
  .kaon$output_written <- TRUE
  list(type = "output", value = value)
}

# Stop with exit code 65: the input is wrong and retrying cannot help. `message` should name the field.
# In kaon_run_items, it fails the item running (not retried) and the process goes on with the next item.
kaon_bad_input <- function(message) {
  cat("bad input: ", message, "\n", sep = "", file = stderr())
  if (!is.null(.kaon$item)) stop(structure(class = c("kaon_bad_input", "condition"), list(message = message, call = NULL)))
  quit(save = "no", status = 65)
}

# In a many-item process, a one-item call (kaon_inputs(), kaon_output()…) outside an item handler means the script is
# a one-item script: say so, and end. Kaon then runs each item in a process of its own; nothing ran twice.
.kaon_outside_item <- function(call) {
  if (.kaon$items_fd == "" || !is.null(.kaon$item)) return(invisible(NULL))
  .kaon_send(list(type = "items-none", call = call))
  flush(stdout())
  quit(save = "no", status = 0)
}

# Run `fn(item)` for each item this process is given, and make what it returns the item's output (NULL: no output).
# Call it once, at the end of the script: the code above it (library(), loading a model) runs once per process, `fn`
# once per item.
#
# With `batch` in k.map, Kaon hands a process the items of a batch one after another. Each item's progress, logs,
# metrics, cards and artifacts (kaon_save_artifact, kaon_output_dir()) are its own; kaon_inputs(), kaon_input_path()
# and kaon_output() also work inside `fn` and refer to the item. An error (stop()) fails that item only (retried by
# the step's policy), kaon_bad_input() or a misused call fails it as bad input (not retried), and the process goes on
# with the next item. A crash of the process (quit(), a segfault, the OOM killer) fails the item that was running;
# the next item starts a new process. Warnings are printed when they happen, on stderr, so they are the item's own.
#
# Run as a one-item step (no batch, `kaon step run`, or by hand with KAON_INPUT=input.json), it calls `fn` once with
# the step's input and writes its output: the same script works both ways.
kaon_run_items <- function(fn) {
  if (!is.function(fn)) .kaon_misuse("kaon_run_items", sprintf("the argument is a %s, not a function", class(fn)[1]), "pass the function that handles one item: kaon_run_items(function(item) list(...))")
  if (.kaon$serving) .kaon_misuse("kaon_run_items", "kaon_run_items() is already running", "call kaon_run_items() once, at the end of the script")
  .kaon$serving <- TRUE
  on.exit(.kaon$serving <- FALSE)
  if (.kaon$items_fd == "") {
    result <- fn(kaon_inputs())
    if (!is.null(result)) kaon_output(result)
    return(invisible(NULL))
  }
  .kaon_serve(fn, .kaon$items_fd)
  invisible(NULL)
}

.kaon_serve <- function(fn, fd) {
  if (!grepl("^[0-9]+$", fd)) stop(sprintf("KAON_ITEMS_FD is %s, not a file descriptor number", fd))
  Sys.unsetenv("KAON_ITEMS_FD") # a step program an item starts runs as a one-item program
  # A socket, like the protocol fd (see .kaon_send): a child cat reads it.
  items <- pipe(sprintf("exec cat <&%s", fd), open = "r", encoding = "UTF-8")
  on.exit(close(items))
  .kaon_send(list(type = "items-ready"))
  repeat {
    line <- readLines(items, n = 1, warn = FALSE)
    if (length(line) == 0) break
    if (!nzchar(trimws(line))) next
    item <- jsonlite::fromJSON(line, simplifyVector = TRUE, simplifyDataFrame = FALSE, simplifyMatrix = FALSE)
    .kaon$item <- item
    .kaon$output_written <- FALSE
    if (!is.null(item$key)) Sys.setenv(KAON_STEP_KEY = as.character(item$key))
    if (!is.null(item$attempt)) Sys.setenv(KAON_ATTEMPT = as.character(item$attempt))
    paths <- item$inputPaths
    Sys.setenv(KAON_INPUT_PATHS = if (length(paths)) as.character(jsonlite::toJSON(paths, auto_unbox = TRUE)) else "{}")
    ended <- .kaon_run_item(fn, item$input)
    .kaon_end_item(item$id, ended$status, ended$error, ended$last)
    .kaon$item <- NULL
    .kaon$output_written <- FALSE
  }
}

# One item: list(status, error, last), `last` being the output message to send with item-end (one write, not two).
.kaon_run_item <- function(fn, input) {
  calls <- NULL
  tryCatch(
    withCallingHandlers(
      {
        result <- fn(input)
        list(status = 0L, error = NULL, last = if (is.null(result)) NULL else .kaon_output_message(result))
      },
      warning = function(w) {
        # Rscript would print it when the top-level call ends (after every item): print it now, as the item's.
        call <- conditionCall(w)
        if (identical(call, quote(fn(input)))) call <- NULL
        cat(if (is.null(call)) "Warning: " else sprintf("Warning in %s : ", paste(deparse(call, nlines = 1), collapse = "")), conditionMessage(w), "\n", sep = "", file = stderr())
        invokeRestart("muffleWarning")
      },
      error = function(e) calls <<- sys.calls()
    ),
    kaon_bad_input = function(c) list(status = 65L, error = NULL, last = NULL),
    error = function(e) {
      call <- conditionCall(e)
      if (identical(call, quote(fn(input)))) call <- NULL # stop() in the item function itself
      what <- if (is.null(call)) sprintf("Error: %s", conditionMessage(e)) else sprintf("Error in %s : %s", paste(deparse(call, nlines = 1), collapse = ""), conditionMessage(e))
      cat(what, "\n", sep = "", file = stderr())
      trace <- .kaon_calls(calls)
      if (length(trace)) cat("Calls: ", paste(trace, collapse = " -> "), "\n", sep = "", file = stderr())
      list(status = 1L, error = what, last = NULL)
    }
  )
}

# The calls from the item function down to the error (Rscript's "Calls:" line), without Kaon's own frames.
.kaon_calls <- function(calls) {
  if (is.null(calls)) return(character(0))
  names <- vapply(calls, function(cl) paste(deparse(cl[[1]], nlines = 1), collapse = ""), "")
  start <- match("fn", names) # the item function's frame: what it called follows
  if (is.na(start) || start == length(names)) return(character(0))
  names <- names[(start + 1):length(names)]
  end <- match(c("stop", "withCallingHandlers", ".handleSimpleError", "h"), names)
  end <- suppressWarnings(min(end, na.rm = TRUE))
  if (is.finite(end)) names <- names[seq_len(end - 1)]
  names
}

# Everything the item printed goes out before its end: a mark on stdout and stderr, then item-end (see
# src/execution/item-session.ts), so Kaon gives each line to the item that printed it.
.kaon_end_item <- function(id, status, error = NULL, last = NULL) {
  mark <- sprintf("\036kaon:item-end:%s\036\n", format(id, scientific = FALSE))
  try({
    cat(mark, file = stdout())
    flush(stdout())
  }, silent = TRUE)
  try(cat(mark, file = stderr()), silent = TRUE)
  msg <- list(type = "item-end", id = as.integer(id), status = as.integer(status))
  if (!is.null(error)) msg$error <- substr(error, 1, 2000)
  if (is.null(last)) .kaon_send(msg) else .kaon_send(last, msg)
}
