# Scores one config of a sweep per item: what is above kaon_run_items runs once per process, the function once per item.
source(Sys.getenv("KAON_R_HELPER"))

weights <- c(lr = -0.3, depth = 0.05) # stands for a model loaded once: readRDS("model.rds")

kaon_run_items(function(item) {
  if (item$lr <= 0) kaon_bad_input(sprintf("field 'lr': %s is not positive", item$lr)) # this item fails, not retried
  kaon_progress(0.5, sprintf("scoring lr=%g depth=%d", item$lr, item$depth))
  s <- weights[["lr"]] * log(item$lr) + weights[["depth"]] * item$depth
  kaon_log_metric("score", s)
  list(lr = item$lr, depth = item$depth, score = s)
})
