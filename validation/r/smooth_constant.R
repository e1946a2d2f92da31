# Reference for vc_test(term = "s(x)", test = "constant") (issue #18): H0 "f is constant".
# The smooth is fitted by ML with mgcv::gamm (nlme), the null model by lm() without the smooth,
# and RLRsim's exactLRT(m, m0) gives the LRT statistic and its exact null with the smooth's
# linear fixed effect restricted (LRTSim with q = 1; Crainiceanu et al. 2005).  We store the
# ML log-likelihoods, the statistic, exactLRT's p-value and null quantiles from a large nsim.
# Run from the repository root: Rscript validation/r/smooth_constant.R
# Writes validation/reference/smooth_constant.json.
suppressMessages({library(mgcv); library(MASS); library(RLRsim); library(nlme); library(jsonlite)})
NSIM <- 100000
probs <- c(0.5, 0.75, 0.9, 0.95, 0.99)

set.seed(1821)
flat <- data.frame(x = runif(120))
flat$y <- 2 + rnorm(120, sd = 0.5)          # H0 true: f is constant

set.seed(1822)
lin <- data.frame(x = runif(120))
lin$y <- 1 + 0.4 * lin$x + rnorm(120, sd = 0.5)   # f linear, weakly

set.seed(1823)
byd <- data.frame(x = runif(150), z = rnorm(150))
byd$y <- 1 + byd$z * (1 + 0.6 * byd$x) + rnorm(150, sd = 0.5)   # f(x) z with f linear

one <- function(name, formula, null_formula, data) {
  set.seed(2021)
  g <- gamm(as.formula(formula), data = data, method = "ML")
  m0 <- lm(as.formula(null_formula), data = data)
  r <- exactLRT(g$lme, m0, nsim = NSIM)
  list(name = name, formula = formula, null_formula = null_formula, n = nrow(data),
       ml_loglik = as.numeric(logLik(g$lme)), null_loglik = as.numeric(logLik(m0)),
       statistic = unname(r$statistic), pvalue = unname(r$p.value),
       null_mass_at_zero = mean(r$sample <= 0),
       null_quantiles = setNames(as.list(unname(quantile(r$sample, probs))), probs))
}

cases <- list(
  one("mcycle_cr", "accel ~ s(times, bs = \"cr\", k = 10)", "accel ~ 1", mcycle),
  one("mcycle_tp", "accel ~ s(times, bs = \"tp\", k = 10)", "accel ~ 1", mcycle),
  one("flat_cr", "y ~ s(x, bs = \"cr\", k = 8)", "y ~ 1", flat),
  one("lin_ps", "y ~ s(x, bs = \"ps\", k = 10)", "y ~ 1", lin),
  one("byd_cr", "y ~ s(x, by = z, bs = \"cr\", k = 8)", "y ~ z", byd)
)
out <- list(generated_by = "validation/r/smooth_constant.R", nsim = NSIM,
            R = R.version.string, mgcv = as.character(packageVersion("mgcv")),
            RLRsim = as.character(packageVersion("RLRsim")), cases = cases,
            data = list(mcycle = mcycle, flat = flat, lin = lin, byd = byd))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE),
           "validation/reference/smooth_constant.json")
