# mgcv::gamm reference for smooth terms in the formula (issue #18 part A).
# A penalised spline as a mixed model: gamm(method = "REML") fits it with nlme; we store the
# REML log-likelihood (nlme's convention: -1/2 [log|V| + log|X'V^-1 X| + r'V^-1 r + (n-p) log 2 pi]
# with gamm's own fixed-effect columns X), the fitted values, the residual variance and the
# smooth's variance component, the fixed/random design gamm gave nlme, and RLRsim's exact RLRT of
# "f is linear" (statistic, P(T = 0) and null quantiles from a large nsim).
# Run from the repository root: Rscript validation/r/smooth_gamm.R
# Writes validation/reference/smooth_gamm.json.
suppressMessages({library(mgcv); library(MASS); library(RLRsim); library(nlme); library(jsonlite)})
NSIM <- 100000
probs <- c(0.5, 0.75, 0.9, 0.95, 0.99)

set.seed(18)
n <- 150
sim <- data.frame(x = sort(runif(n)))
sim$y <- sin(2 * pi * sim$x) + 0.5 * sim$x + rnorm(n, sd = 0.4)

set.seed(1818)
ng <- 20; per <- 8
amm <- data.frame(g = factor(rep(sprintf("g%02d", 1:ng), each = per)), x = runif(ng * per))
amm$y <- cos(3 * amm$x) + 2 * amm$x^2 + rnorm(ng, sd = 0.5)[as.integer(amm$g)] +
  rnorm(ng * per, sd = 0.3)

set.seed(1819)
two <- data.frame(x1 = runif(200), x2 = runif(200))
two$y <- sin(2 * pi * two$x1) + 2 * two$x2^2 + rnorm(200, sd = 0.3)

set.seed(1820)
byd <- data.frame(x = runif(240), z = rnorm(240), f = factor(rep(c("a", "b"), 120)))
byd$yn <- 1 + byd$z * sin(2 * pi * byd$x) + rnorm(240, sd = 0.3)
byd$yf <- ifelse(byd$f == "a", sin(2 * pi * byd$x), 0.5 + 2 * byd$x^2) + rnorm(240, sd = 0.3)

one <- function(name, formula, data, random = NULL, test = TRUE) {
  set.seed(2018)
  g <- if (is.null(random)) gamm(as.formula(formula), data = data, method = "REML")
       else gamm(as.formula(formula), data = data, method = "REML", random = random)
  X <- g$lme$data$X; Z <- g$lme$data$Xr
  vc <- suppressWarnings(as.numeric(VarCorr(g$lme)[, "Variance"]))
  vc <- vc[!is.na(vc)]  # nlme prints a header row (NA) per grouping level
  out <- list(name = name, formula = formula, random = if (is.null(random)) "" else "(1 | g)",
              n = nrow(X), reml_loglik = as.numeric(g$lme$logLik),
              sigma2 = g$lme$sigma^2, var_smooth = vc[1],
              var_components = vc, sp = unname(g$gam$sp),
              edf = sum(g$gam$edf), fixef = unname(fixef(g$lme)),
              fitted_smooth = unname(as.numeric(predict(g$gam))),
              fitted_lme = unname(as.numeric(fitted(g$lme))),
              X = unname(X), Z = unname(Z),
              knots = unname(g$gam$smooth[[1]]$xp))
  # the smooth on a grid with its Bayesian standard error (gam's Vp), as plot.gam draws it
  xname <- g$gam$smooth[[1]]$term
  grid <- data.frame(seq(min(data[[xname]]), max(data[[xname]]), length.out = 25))
  names(grid) <- xname
  if (!is.null(random)) grid$g <- data$g[1]
  for (sm in g$gam$smooth[-1])
    if (!(sm$term %in% names(grid))) grid[[sm$term]] <- mean(data[[sm$term]])
  for (sm in g$gam$smooth) if (sm$by != "NA") {  # f(x) itself: z = 1, or the first level
    grid[[sm$by]] <- if (is.factor(data[[sm$by]]))
      factor(g$gam$smooth[[1]]$by.level, levels = levels(data[[sm$by]])) else 1
  }
  if ("times" %in% names(data)) {  # predictions at new x, some beyond the data's range
    newx <- data.frame(times = c(-5, 0, 2.4, 30, 57.6, 60, 70))
    out$predict_new <- list(times = newx$times,
                            fit = unname(as.numeric(predict(g$gam, newdata = newx))))
  }
  pt <- predict(g$gam, newdata = grid, type = "terms", se.fit = TRUE)
  lab <- g$gam$smooth[[1]]$label
  out$smooth_grid <- list(label = lab, x = grid[[xname]],
                          fit = unname(as.numeric(pt$fit[, lab])),
                          se = unname(as.numeric(pt$se.fit[, lab])))
  if (!test) return(out)  # several smooths: the fit only
  if (is.null(random)) {
    set.seed(2019)
    r <- exactRLRT(g$lme, nsim = NSIM)
    smp <- r$sample
  } else {
    # pseudo-model (Greven et al. 2008): m = the smooth alone, mA = the AMM, m0 = the AMM
    # without the smooth's penalised part (same fixed columns X)
    dat <- g$lme$data
    m <- gamm(as.formula(formula), data = data, method = "REML")$lme
    m0 <- lme(y ~ X - 1, random = ~ 1 | g, data = dat, method = "REML")
    # RLRsim's exactRLRT(m, mA, m0) draws its null from m alone; its anova() refuses gamm's
    # renamed response, so the statistic is formed here from the two REML log-likelihoods
    set.seed(2019)
    r <- exactRLRT(m, nsim = NSIM)
    smp <- r$sample
    out$null_reml_loglik <- as.numeric(logLik(m0, REML = TRUE))
    r$statistic <- max(0, 2 * (out$reml_loglik - out$null_reml_loglik))
    r$p.value <- mean(smp >= r$statistic)
  }
  out$rlrt <- list(statistic = unname(r$statistic), p_value = r$p.value, nsim = NSIM,
                   p_zero = mean(smp == 0), probs = probs,
                   quantiles = unname(quantile(smp, probs, type = 7)),
                   tail_statistic = mean(smp >= r$statistic))
  # RLRsim maximises over lambda on a grid (default 200 points, log lambda in [-10, 8]). For a
  # spline's eigenvalues its P(T = 0) is about 0.008 above the exact null's (vctest and a dense
  # brute-force supremum agree with each other; RLRsim's matches the first local maximum).
  # The same null with a fine, wide grid shows the grid's resolution is not the cause:
  mfine <- if (is.null(random)) g$lme else m
  set.seed(2020)
  fine <- exactRLRT(mfine, nsim = NSIM, gridlength = 5000, log.grid.lo = -25,
                    log.grid.hi = 25)$sample
  out$rlrt_fine_grid <- list(gridlength = 5000, log_grid = c(-25, 25), nsim = NSIM,
                             p_zero = mean(fine == 0), probs = probs,
                             quantiles = unname(quantile(fine, probs, type = 7)))
  out
}

cases <- list(
  one("mcycle_cr", "accel ~ s(times, bs = \"cr\", k = 10)", mcycle),
  one("mcycle_tp", "accel ~ s(times, bs = \"tp\", k = 10)", mcycle),
  one("mcycle_ps", "accel ~ s(times, bs = \"ps\", k = 10)", mcycle),
  one("sim_cr", "y ~ s(x, bs = \"cr\", k = 10)", sim),
  one("sim_tp", "y ~ s(x, bs = \"tp\", k = 10)", sim),
  one("amm_cr", "y ~ s(x, bs = \"cr\", k = 10)", amm, random = list(g = ~1)),
  one("two_smooths", "y ~ s(x1, bs = \"cr\", k = 10) + s(x2, bs = \"tp\", k = 8)", two,
      test = FALSE),
  one("byd_num", "yn ~ s(x, bs = \"cr\", by = z)", byd),
  one("byd_fac", "yf ~ f + s(x, bs = \"cr\", by = f)", byd, test = FALSE)
)
# binomial and Poisson responses: gamm4 (glmer's Laplace approximation, nAGQ = 1, ML);
# gamm's own GLMMs are PQL, which vctest does not fit. The ML deviance does not depend on
# the scale of the fixed-effect columns, so only the smooth's span matters.
suppressMessages(library(gamm4))
set.seed(1821)
glmd <- data.frame(x = runif(300))
glmd$yb <- rbinom(300, 1, plogis(1.5 * sin(2 * pi * glmd$x)))
glmd$yp <- rpois(300, exp(0.5 + sin(2 * pi * glmd$x)))
glmd$g <- sprintf("g%02d", rep(1:20, 15))
glmd$ya <- rbinom(300, 1, plogis(sin(2 * pi * glmd$x) + rnorm(20)[rep(1:20, 15)]))
# glmer's default stopping leaves the AMM's log-likelihood ~2e-4 short of its maximum; tight
# tolerances (as validation/r/glmm_reference.R uses for lme4) make it a reference
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(maxfun = 1e5, rhoend = 1e-12))
glmm_one <- function(name, formula, family, random = NULL) {
  g <- if (is.null(random)) gamm4(as.formula(formula), data = glmd, family = family,
                                  control = tight)
       else gamm4(as.formula(formula), data = glmd, family = family, random = random,
                  control = tight)
  grid <- data.frame(x = seq(min(glmd$x), max(glmd$x), length.out = 25))
  pt <- predict(g$gam, newdata = grid, type = "terms", se.fit = TRUE)
  list(name = name, formula = formula, family = family$family,
       loglik = as.numeric(logLik(g$mer)), deviance = as.numeric(-2 * logLik(g$mer)),
       random = if (is.null(random)) "" else "(1 | g)",
       fitted = unname(as.numeric(fitted(g$mer))),
       smooth_grid = list(x = grid$x, fit = unname(as.numeric(pt$fit[, 1])),
                          se = unname(as.numeric(pt$se.fit[, 1]))),
       null_loglik = if (is.null(random))
         as.numeric(logLik(glm(as.formula(sub("s\\(x.*\\)", "x", formula)), data = glmd,
                               family = family)))
       else as.numeric(logLik(glmer(as.formula(sub("s\\(x.*\\)", "x + (1 | g)", formula)),
                                    data = glmd, family = family, control = tight))))
}
glmm_cases <- list(
  glmm_one("binomial_cr", "yb ~ s(x, bs = \"cr\", k = 10)", binomial()),
  glmm_one("poisson_cr", "yp ~ s(x, bs = \"cr\", k = 10)", poisson()),
  glmm_one("binomial_amm", "ya ~ s(x, bs = \"cr\", k = 10)", binomial(), random = ~ (1 | g))
)

writeLines(toJSON(list(env = list(R = R.version.string,
                                  mgcv = as.character(packageVersion("mgcv")),
                                  RLRsim = as.character(packageVersion("RLRsim")),
                                  nlme = as.character(packageVersion("nlme")),
                                  gamm4 = as.character(packageVersion("gamm4")),
                                  lme4 = as.character(packageVersion("lme4"))),
                       data = list(mcycle = mcycle, sim = sim,
                                   amm = transform(amm, g = as.character(g)), two = two,
                                   byd = transform(byd, f = as.character(f)), glmd = glmd),
                       cases = cases, glmm_cases = glmm_cases),
                  auto_unbox = TRUE, digits = NA, pretty = FALSE),
           "validation/reference/smooth_gamm.json")
