# pbkrtest::PBmodcomp's gamma and Bartlett p-values for given reference samples
# (issue 22 item 19: an independent check of vctest/nulls/approximations.py).
# Run from the project root:  Rscript validation/r/pbkrtest_pbmodcomp.R
# Writes validation/reference/pbkrtest_pbmodcomp.json.
#
# The observed statistic and df come from lme4's ML fits of each pair of models; the
# reference sample is passed to PBmodcomp as `ref` (a fixed, seeded sample with exact
# zeros and one negative value, as bootstraps produce), so the check isolates the
# approximation formulas from bootstrap noise.  PBmodcomp uses only the replicates
# > 0 (`npos`) for its moments and p-values; vctest keeps the zeros (docs/methods.rst),
# so tests/test_approximations.py feeds vctest the positive part to compare.
suppressMessages({library(lme4); library(pbkrtest); library(jsonlite)})

read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}

pb_case <- function(id, data_name, full_formula, null_formula, ref) {
  d <- read_bundled(data_name)
  full <- lmer(as.formula(full_formula), d, REML = FALSE)
  null <- lmer(as.formula(null_formula), d, REML = FALSE)
  s <- summary(PBmodcomp(full, null, ref = ref))
  tab <- s$test
  list(id = id, data = data_name, full = full_formula, null = null_formula,
       tobs = tab["LRT", "stat"], df = tab["LRT", "df"], ref = ref,
       npos = unname(s$samples[["npos"]]),
       moment = as.list(s$moment), gamma = as.list(s$gamma),
       pvalues = list(LRT = tab["LRT", "p.value"], PBtest = tab["PBtest", "p.value"],
                      Gamma = tab["Gamma", "p.value"], Bartlett = tab["Bartlett", "p.value"]),
       bartlett_stat = tab["Bartlett", "stat"])
}

set.seed(20261130)
ref_mid <- c(rep(0, 60), -0.4, 1.3 * rchisq(340, df = 2))
ref_far <- c(rep(0, 25), rgamma(375, shape = 1.4, scale = 1.6))
cases <- list(
  pb_case("orthodont_slope", "Orthodont", "distance ~ age + Sex + (age | Subject)",
          "distance ~ age + Sex + (1 | Subject)", ref_mid),
  pb_case("sleepstudy_slope", "sleepstudy", "Reaction ~ Days + (Days | Subject)",
          "Reaction ~ Days + (1 | Subject)", ref_far)
)
out <- list(call = "summary(PBmodcomp(full, null, ref = ref))", cases = cases,
            env = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                       pbkrtest = as.character(packageVersion("pbkrtest"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/pbkrtest_pbmodcomp.json")
