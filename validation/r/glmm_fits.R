# lme4 glmer (Laplace, nAGQ = 1) reference fits for vctest's Numba GLMM engine
# (vctest/kernels/glmm.py, vctest/model/glmm.py; tests/test_glmm.py).
# Run from the project root:  Rscript validation/r/glmm_fits.R
# Writes validation/reference/glmm_fits.json.
#
# Each case records lme4's default fit (what users see: deviance(), -2 logLik, theta,
# beta, convergence messages and warnings, median elapsed seconds of 5 fits) and a
# "tight" refit (bobyqa in both stages with rhoend = 1e-10 and tolPwrss = 1e-12), which
# is the better target for checking an optimum to 1e-4.  "laplace_points" are lme4's
# stage-2 deviance function (devFunOnly = TRUE, tolPwrss = 1e-12) evaluated at given
# (theta, beta): they check the Laplace formula itself, free of optimiser tolerances.
suppressMessages({library(lme4); library(jsonlite)})

read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}

time_fit <- function(fn) median(replicate(5, system.time(fn())[["elapsed"]]))

tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

# fit with warnings recorded (not printed)
fit_recording <- function(call_fn) {
  warns <- character(0)
  fit <- withCallingHandlers(call_fn(), warning = function(w) {
    warns <<- c(warns, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  list(fit = fit, warnings = warns)
}

summarise <- function(fit) {
  th <- getME(fit, "theta")
  list(deviance = deviance(fit), minus2loglik = -2 * as.numeric(logLik(fit)),
       logLik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"),
       theta = as.list(th), beta = as.list(fixef(fit)),
       beta_se = as.list(setNames(sqrt(diag(as.matrix(vcov(fit)))), names(fixef(fit)))),
       isSingular = isSingular(fit), nobs = nobs(fit))
}

glmm_case <- function(id, data_name, data, formula, family, link, offset = NULL,
                      points = list()) {
  fam <- get(family)(link = link)
  args <- list(formula = as.formula(formula), data = data, family = fam)
  if (!is.null(offset)) args$offset <- offset
  run <- function(extra = list()) do.call(glmer, c(args, extra))
  rec <- fit_recording(function() run())
  out <- c(list(id = id, data = data_name, formula = formula, family = family, link = link,
                offset = if (is.null(offset)) NULL else "log(size)"), summarise(rec$fit))
  msgs <- rec$fit@optinfo$conv$lme4$messages
  out$conv_messages <- if (is.null(msgs)) list() else as.list(msgs)
  out$warnings <- as.list(rec$warnings)
  out$seconds <- time_fit(function() suppressWarnings(suppressMessages(run())))
  tfit <- fit_recording(function() run(list(control = tight)))
  out$tight <- summarise(tfit$fit)
  out$tight$warnings <- as.list(tfit$warnings)
  # Laplace deviance at given points (the tight optimum and perturbations)
  dfun <- suppressWarnings(run(list(control = glmerControl(tolPwrss = 1e-12),
                                    devFunOnly = TRUE)))
  th <- unlist(out$tight$theta); be <- unlist(out$tight$beta)
  pts <- c(list(list(theta = th, beta = be)), points)
  out$laplace_points <- lapply(pts, function(p) {
    list(theta = as.list(p$theta), beta = as.list(p$beta),
         minus2loglik = dfun(c(p$theta, p$beta)))
  })
  out
}

glm_case <- function(id, data_name, data, formula, family, link, offset = NULL) {
  fam <- get(family)(link = link)
  args <- list(formula = as.formula(formula), data = data, family = fam)
  if (!is.null(offset)) args$offset <- offset
  fit <- do.call(glm, args)
  list(id = id, data = data_name, formula = formula, family = family, link = link,
       offset = if (is.null(offset)) NULL else "log(size)",
       minus2loglik = -2 * as.numeric(logLik(fit)), logLik = as.numeric(logLik(fit)),
       deviance = deviance(fit), beta = as.list(coef(fit)),
       beta_se = as.list(sqrt(diag(vcov(fit)))))
}

cbpp <- read_bundled("cbpp")
gt <- read_bundled("grouseticks")
gt$sHEIGHT <- as.numeric(scale(gt$HEIGHT))  # centred and scaled (sd with n - 1)
# cbpp as Bernoulli rows: incidence ones then size - incidence zeros per herd-period row
rows <- rep(seq_len(nrow(cbpp)), cbpp$size)
bern <- cbpp[rows, c("herd", "period")]
bern$y <- unlist(lapply(seq_len(nrow(cbpp)), function(i)
  c(rep(1, cbpp$incidence[i]), rep(0, cbpp$size[i] - cbpp$incidence[i]))))
rownames(bern) <- NULL

CB <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
fits <- list(
  glmm_case("cbpp", "cbpp", cbpp, CB, "binomial", "logit",
            points = list(list(theta = 0.3, beta = c(-1.2, -0.8, -1.3, -1.4)),
                          list(theta = 1.5, beta = c(-1.6, -1.0, -1.0, -1.7)))),
  glmm_case("cbpp_probit", "cbpp", cbpp, CB, "binomial", "probit"),
  glmm_case("cbpp_cloglog", "cbpp", cbpp, CB, "binomial", "cloglog"),
  glmm_case("cbpp_bernoulli", "cbpp (one row per animal)", bern, "y ~ period + (1 | herd)",
            "binomial", "logit"),
  glmm_case("cbpp_poisson_offset", "cbpp", cbpp, "incidence ~ period + (1 | herd)",
            "poisson", "log", offset = log(cbpp$size)),
  glmm_case("grouseticks", "grouseticks", gt,
            "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson", "log"),
  glmm_case("grouseticks_scaled", "grouseticks", gt,
            "TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson", "log",
            points = list(list(theta = c(0.5, 0.9), beta = c(0.4, 1.0, -0.9, -0.8)))),
  glmm_case("grouseticks_brood", "grouseticks", gt, "TICKS ~ YEAR + sHEIGHT + (1 | BROOD)",
            "poisson", "log"),
  # a correlated random slope whose optimum is a singular covariance (correlation -1)
  glmm_case("grouseticks_slope", "grouseticks", gt,
            "TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 + sHEIGHT | LOCATION)", "poisson", "log")
)
glms <- list(
  glm_case("cbpp_glm", "cbpp", cbpp, "cbind(incidence, size - incidence) ~ period",
           "binomial", "logit"),
  glm_case("grouseticks_glm", "grouseticks", gt, "TICKS ~ YEAR + sHEIGHT", "poisson", "log"),
  glm_case("cbpp_poisson_offset_glm", "cbpp", cbpp, "incidence ~ period", "poisson", "log",
           offset = log(cbpp$size))
)
m2 <- setNames(lapply(fits, `[[`, "minus2loglik"), sapply(fits, `[[`, "id"))
g2 <- setNames(lapply(glms, `[[`, "minus2loglik"), sapply(glms, `[[`, "id"))
lrt <- list(
  cbpp_vs_glm = g2$cbpp_glm - m2$cbpp,
  grouseticks_location = m2$grouseticks_brood - m2$grouseticks_scaled
)
env <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
            Matrix = as.character(packageVersion("Matrix")),
            minqa = as.character(packageVersion("minqa")),
            date = format(Sys.time(), "%Y-%m-%d"),
            note = paste("sHEIGHT = as.numeric(scale(HEIGHT)) (sd with n - 1);",
                         "cbpp_bernoulli expands each cbpp row into incidence ones and",
                         "size - incidence zeros; seconds = median elapsed of 5 fits"))
writeLines(toJSON(list(env = env, fits = fits, glms = glms, lrt = lrt), auto_unbox = TRUE,
                  digits = NA, pretty = TRUE, null = "null"),
           "validation/reference/glmm_fits.json")
cat("wrote validation/reference/glmm_fits.json\n")
