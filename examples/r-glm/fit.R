# Fit a glm on the CSV artifact at input "data"; return the coefficients, the AIC and a PNG plot.
source(Sys.getenv("KAON_R_HELPER"))

p <- kaon_inputs()
d <- read.csv(kaon_input_path("data"))
f <- tryCatch(as.formula(p$formula), error = function(e) kaon_bad_input(sprintf("field 'formula': %s is not an R formula (%s)", p$formula, conditionMessage(e))))
missing <- setdiff(all.vars(f), names(d))
if (length(missing)) {
  kaon_bad_input(sprintf("field 'formula' uses %s, not a column of the CSV (columns: %s)", paste(missing, collapse = ", "), paste(names(d), collapse = ", ")))
}
kaon_progress(0.2, sprintf("fitting %s on %d rows", p$formula, nrow(d)))
fit <- glm(f, data = d, family = p$family)
kaon_log_metric("aic", AIC(fit))
kaon_log_metric("deviance", deviance(fit))

png(file.path(kaon_output_dir(), "fit.png"), width = 640, height = 480)
plot(fitted(fit), fit$y, xlab = "fitted", ylab = "observed", main = sprintf("glm(%s), %s", p$formula, p$family), pch = 20, col = "#3366aa")
abline(0, 1, col = "#cc3333")
invisible(dev.off())

kaon_output(list(
  coefficients = as.list(coef(fit)),
  aic = AIC(fit),
  n = nrow(d),
  plot = kaon_save_artifact(file.path(kaon_output_dir(), "fit.png"), media_type = "image/png")
))
