# Refit the lme4 reference models of validation/reference/fits.json on this machine.
# Run: Rscript validation/r/lme4_fits.R   (writes validation/reference/lme4_fits_rerun.json)
# fits.json itself was provided with the project (../shared/reference); this script
# regenerates its core numbers (criterion, theta, fixed effects, logLik) so the
# comparison can be repeated, and tests/test_lmm.py checks that the two agree.
suppressMessages({library(lme4); library(jsonlite)})
read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}
models <- list(
  list("dyestuff", "Dyestuff", "Yield ~ 1 + (1 | Batch)"),
  list("dyestuff2", "Dyestuff2", "Yield ~ 1 + (1 | Batch)"),
  list("sleep_corr", "sleepstudy", "Reaction ~ Days + (Days | Subject)"),
  list("sleep_int", "sleepstudy", "Reaction ~ Days + (1 | Subject)"),
  list("sleep_indep", "sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
  list("penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list("pastes", "Pastes", "strength ~ 1 + (1 | batch/cask)"),
  list("orthodont_int", "Orthodont", "distance ~ age + Sex + (1 | Subject)"),
  list("orthodont_slope", "Orthodont", "distance ~ age + Sex + (age | Subject)")
)
fits <- list()
for (m in models) for (reml in c(TRUE, FALSE)) {
  d <- read_bundled(m[[2]])
  fit <- lmer(as.formula(m[[3]]), d, REML = reml)
  fits[[length(fits) + 1]] <- list(
    id = paste0("fit.", m[[1]], if (reml) ".reml" else ".ml"), data = m[[2]],
    formula = m[[3]], REML = reml,
    criterion = if (reml) unname(getME(fit, "devcomp")$cmp["REML"]) else deviance(fit),
    logLik = as.numeric(logLik(fit)), theta = unname(getME(fit, "theta")),
    fixef = unname(fixef(fit)), isSingular = isSingular(fit))
}
writeLines(toJSON(list(env = list(R = R.version.string,
                                  lme4 = as.character(packageVersion("lme4"))),
                       fits = fits), auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/lme4_fits_rerun.json")
