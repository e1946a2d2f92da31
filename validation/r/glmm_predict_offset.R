# lme4's predict(newdata) for a GLMM with an offset: the offset is evaluated on the new rows.
# lme4 does so for an offset in the formula (offset(logsize)); an offset given as glmer's
# `offset =` argument is dropped from predict(newdata) (lme4 issue #447, open), so the
# reference is the formula offset; the argument's numbers are recorded to show the gap.
# vctest takes the offset as `offset=` (a column) and evaluates it on the new rows.
# Run from the repository root: Rscript validation/r/glmm_predict_offset.R
# Writes validation/reference/glmm_predict_offset.json (read by tests/test_model_methods.py).
suppressMessages({library(lme4); library(jsonlite)})
read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}
cb <- read_bundled("cbpp")
cb$logsize <- log(cb$size)
g <- glmer(incidence ~ period + offset(logsize) + (1 | herd), cb, family = poisson)
g_arg <- glmer(incidence ~ period + (1 | herd), cb, family = poisson, offset = logsize)
stopifnot(isTRUE(all.equal(fixef(g), fixef(g_arg))))
nd <- data.frame(period = factor(c("1", "2", "4", "3", "1"), levels = levels(cb$period)),
                 herd = factor(c("1", "5", "new", "15", "3")),
                 size = c(10, 3, 25, 1, 40))
nd$logsize <- log(nd$size)
out <- list(
  env = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  formula = "incidence ~ period + (1 | herd)", family = "poisson", offset = "logsize",
  theta = I(unname(getME(g, "theta"))), fixef = unname(fixef(g)),
  newdata = list(period = as.character(nd$period), herd = as.character(nd$herd),
                 logsize = nd$logsize),
  predict_fit_link = unname(predict(g)),
  predict_link = unname(predict(g, newdata = nd, allow.new.levels = TRUE)),
  predict_response = unname(predict(g, newdata = nd, type = "response",
                                    allow.new.levels = TRUE)),
  predict_population = unname(predict(g, newdata = nd, re.form = NA)),
  predict_link_offset_argument = unname(predict(g_arg, newdata = nd, allow.new.levels = TRUE)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/glmm_predict_offset.json")
