# lme4 glmer reference for the GLMM random-slope comparison of tests/test_glmm_api.py
# (issue 22 item 20: compare() must reproduce lme4's likelihood-ratio statistic).
# Run from the project root:  Rscript validation/r/glmm_slope_compare.R
# Writes validation/reference/glmm_slope_compare.json.
#
# grouseticks with sHEIGHT = scale(HEIGHT); Poisson, Laplace (nAGQ = 1), ML.
#   full: TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (0 + sHEIGHT | LOCATION)
#   null: TICKS ~ YEAR + sHEIGHT + (1 | BROOD)
# Each model is fitted with lme4's defaults and with tight tolerances (bobyqa in both
# stages, rhoend = 1e-10, tolPwrss = 1e-12; as validation/r/glmm_fits.R); the statistic
# is -2 logLik(null) - (-2 logLik(full)) for both.
suppressMessages({library(lme4); library(jsonlite)})

read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}

tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

gt <- read_bundled("grouseticks")
gt$sHEIGHT <- as.numeric(scale(gt$HEIGHT))  # centred and scaled (sd with n - 1)

one <- function(formula, control = glmerControl()) {
  warns <- character(0)
  fit <- withCallingHandlers(
    glmer(as.formula(formula), gt, family = poisson, control = control),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
  list(minus2loglik = -2 * as.numeric(logLik(fit)), theta = as.list(getME(fit, "theta")),
       beta = as.list(fixef(fit)), isSingular = isSingular(fit), warnings = as.list(warns))
}

FULL <- "TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (0 + sHEIGHT | LOCATION)"
NULL_ <- "TICKS ~ YEAR + sHEIGHT + (1 | BROOD)"
full <- list(default = one(FULL), tight = one(FULL, tight))
null <- list(default = one(NULL_), tight = one(NULL_, tight))
out <- list(
  data = "grouseticks", family = "poisson", full_formula = FULL, null_formula = NULL_,
  full = full, null = null,
  statistic = list(default = null$default$minus2loglik - full$default$minus2loglik,
                   tight = null$tight$minus2loglik - full$tight$minus2loglik),
  env = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/glmm_slope_compare.json")
