# lme4 glmer (Laplace) reference fits for vctest's GLMM engine.
# Run: Rscript validation/r/glmm_reference.R  (writes validation/reference/glmm_reference.json)
suppressMessages({library(lme4); library(jsonlite)})
read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}
record <- function(id, fit, data_name, formula, family, seconds) {
  w <- fit@optinfo$conv$lme4$messages
  list(id = id, data = data_name, formula = formula, family = family,
       deviance = deviance(fit), minus2loglik = -2 * as.numeric(logLik(fit)),
       logLik = as.numeric(logLik(fit)), theta = unname(getME(fit, "theta")),
       beta = unname(fixef(fit)), beta_names = names(fixef(fit)),
       beta_se = unname(sqrt(diag(as.matrix(vcov(fit))))),
       isSingular = isSingular(fit), conv_messages = if (is.null(w)) list() else w,
       seconds = seconds)
}
time_fit <- function(expr_fn) {
  times <- replicate(5, system.time(expr_fn())["elapsed"])
  median(times)
}
out <- list()
cbpp <- read_bundled("cbpp")
f1 <- cbind(incidence, size - incidence) ~ period + (1 | herd)
g1 <- glmer(f1, cbpp, family = binomial)
out[[1]] <- record("cbpp", g1, "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                   "binomial", time_fit(function() glmer(f1, cbpp, family = binomial)))
glm1 <- glm(cbind(incidence, size - incidence) ~ period, cbpp, family = binomial)
out[[1]]$glm_minus2loglik <- -2 * as.numeric(logLik(glm1))
out[[1]]$lrt_vs_glm <- -2 * as.numeric(logLik(glm1)) - (-2 * as.numeric(logLik(g1)))
gt <- read_bundled("grouseticks")
f2 <- TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)
g2 <- suppressWarnings(glmer(f2, gt, family = poisson))
out[[2]] <- record("grouseticks", g2, "grouseticks",
                   "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson",
                   time_fit(function() suppressWarnings(glmer(f2, gt, family = poisson))))
f3 <- TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)
g3 <- glmer(f3, gt, family = poisson)
out[[3]] <- record("grouseticks_centred", g3, "grouseticks",
                   "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson",
                   time_fit(function() glmer(f3, gt, family = poisson)))
p0 <- glm(TICKS ~ YEAR + cHEIGHT, gt, family = poisson)
out[[3]]$glm_minus2loglik <- -2 * as.numeric(logLik(p0))
writeLines(toJSON(list(env = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
                       fits = out), auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/glmm_reference.json")
