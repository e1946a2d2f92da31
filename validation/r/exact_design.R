# Reference numbers for vctest.exact_rlrt / vctest.exact_lrt (design-matrix entry, issue 18 B).
# Run: Rscript validation/r/exact_design.R   (writes validation/reference/exact_design.json)
#
# For each design (X, Z and sqrt.Sigma are stored in the JSON, so the tests use the same numbers):
#  * RLRsim's RLRTSim / LRTSim null samples (nsim draws): P(T = 0) and type-7 quantiles;
#  * observed statistics on a data set (y stored too):
#      - lme4: the REML criterion / ML deviance from lme4's own deviance function (the modular
#        API: lFormula with a placeholder grouping factor, then Zt replaced by t(Z R')),
#        minimised over theta with a grid and optimize() to ~1e-12, minus the linear model's;
#      - RLRsim: exactRLRT(m) / exactLRT(m, m0) on nlme::lme fits with pdIdent(~ Z R' - 1).
suppressMessages({library(RLRsim); library(lme4); library(nlme); library(jsonlite)})
nsim <- 2e5
levels_q <- c(0.5, 0.9, 0.95, 0.99)
summ <- function(s) list(nsim = length(s), p0 = mean(s == 0),
                         probs = levels_q, quantiles = unname(quantile(s, levels_q, type = 7)))

# lme4's profiled criterion for y = X beta + Zt u + e (Zt = Z R'), minimised globally over theta.
lme4_fit <- function(y, X, Zt, reml) {
  n <- length(y); K <- ncol(Zt)
  df <- data.frame(y = y, g = factor(rep(seq_len(K), length.out = n)))
  lf <- lFormula(y ~ 1 + (1 | g), data = df, REML = reml)
  colnames(X) <- paste0("X", seq_len(ncol(X)))
  lf$X <- X
  lf$reTrms$Zt <- as(Matrix::Matrix(t(Zt), sparse = TRUE), "dgCMatrix")
  devfun <- do.call(mkLmerDevfun, lf)
  grid <- c(0, exp(seq(log(1e-4), log(1e4), length.out = 400)))
  vals <- sapply(grid, devfun)
  best <- list(theta = 0, crit = vals[1])
  for (k in 2:(length(grid) - 1)) {
    if (vals[k] <= vals[k - 1] && vals[k] <= vals[k + 1]) {
      o <- optimize(devfun, c(grid[k - 1], grid[k + 1]), tol = 1e-12)
      if (o$objective < best$crit) best <- list(theta = o$minimum, crit = o$objective)
    }
  }
  list(theta = best$theta, criterion = best$crit, null_criterion = devfun(0))
}
lm_deviance <- function(y, X0) {  # ML: n (1 + log(2 pi RSS / n))
  n <- length(y)
  rss <- if (ncol(X0)) sum(qr.resid(qr(X0), y)^2) else sum(y^2)
  n * (1 + log(2 * pi * rss / n))
}
nlme_stats <- function(y, X, Zt, q_cols) {
  d <- data.frame(y = y, all = factor(rep(1, length(y))))
  d$X <- X; d$ZR <- Zt
  m_reml <- lme(y ~ X - 1, random = list(all = pdIdent(~ ZR - 1)), data = d, method = "REML",
                control = lmeControl(opt = "optim", msTol = 1e-12, tolerance = 1e-12))
  m_ml <- update(m_reml, method = "ML")
  X0 <- X[, setdiff(seq_len(ncol(X)), q_cols), drop = FALSE]
  d$X0 <- X0
  m0 <- lm(y ~ X - 1, data = d); m00 <- lm(y ~ X0 - 1, data = d)
  list(rlrt = unname(suppressMessages(exactRLRT(m_reml, nsim = 10))$statistic),
       lrt = unname(suppressMessages(exactLRT(m_ml, m0, nsim = 10))$statistic),
       lrt_q = unname(suppressMessages(exactLRT(m_ml, m00, nsim = 10))$statistic))
}
observed <- function(y, X, Z, R, q_cols) {
  Zt <- Z %*% t(R)
  fr <- lme4_fit(y, X, Zt, TRUE); fm <- lme4_fit(y, X, Zt, FALSE)
  X0 <- X[, setdiff(seq_len(ncol(X)), q_cols), drop = FALSE]
  list(y = y, q_cols = q_cols - 1,  # 0-based positions in X
       lme4 = list(reml_criterion = fr$criterion, reml_theta = fr$theta,
                   ml_deviance = fm$criterion, ml_theta = fm$theta,
                   rlrt = max(fr$null_criterion - fr$criterion, 0),
                   lrt = max(lm_deviance(y, X) - fm$criterion, 0),
                   lrt_q = max(lm_deviance(y, X0) - fm$criterion, 0)),
       rlrsim = nlme_stats(y, X, Zt, q_cols))
}
design <- function(id, X, Z, R, what) list(id = id, description = what, n = nrow(X), X = X,
                                           Z = Z, sqrt_sigma = R)
cases <- list()

# 1. Truncated-linear spline basis (prior-art E4): n = 100, x = (i - 0.5)/n, 20 knots at the
#    type-7 quantiles of x at probabilities (1..20)/21, X = [1, x].
n <- 100; x <- ((1:n) - 0.5) / n
knots <- quantile(x, seq(0, 1, length = 22)[-c(1, 22)], type = 7, names = FALSE)
Z1 <- outer(x, knots, function(a, b) pmax(a - b, 0)); X1 <- cbind(1, x); R1 <- diag(20)
set.seed(101); r1 <- RLRTSim(X1, Z1, qr(X1), R1, nsim = nsim)
set.seed(102); l1 <- LRTSim(X1, Z1, 0, R1, nsim = nsim)
set.seed(103); l1q <- LRTSim(X1, Z1, 1, R1, nsim = nsim)
set.seed(11); y1 <- 1 + x + 0.25 * sin(2 * pi * x) + rnorm(n, sd = 0.3)
cases[[1]] <- c(design("spline_tpl", X1, Z1, R1, "truncated-linear spline, n = 100, K = 20"),
                list(null = list(RLRTSim = summ(r1), LRTSim_q0 = summ(l1), LRTSim_q1 = summ(l1q)),
                     observed = observed(y1, X1, Z1, R1, 2)))

# 2. Unbalanced groups with an AR(1) correlation between the 12 group effects (sqrt.Sigma), a
#    covariate in X, the covariate restricted in the LRT.
sizes <- rep(c(3, 4, 5, 6, 7, 5), 2); g <- rep(seq_along(sizes), sizes); n2 <- length(g)
x2 <- ((1:n2) %% 7) / 7; X2 <- cbind(1, x2)
Z2 <- outer(g, seq_along(sizes), "==") * 1
Sigma2 <- 0.6^abs(outer(1:12, 1:12, "-")); R2 <- chol(Sigma2)
set.seed(201); r2 <- RLRTSim(X2, Z2, qr(X2), R2, nsim = nsim)
set.seed(202); l2q <- LRTSim(X2, Z2, 1, R2, nsim = nsim)
set.seed(21); u2 <- drop(t(R2) %*% rnorm(12, sd = 0.5))
y2 <- 2 + 0.3 * x2 + drop(Z2 %*% u2) + rnorm(n2)
cases[[2]] <- c(design("groups_ar1", X2, Z2, R2,
                       "12 unbalanced groups (n = 60), AR(1) rho = 0.6 between group effects"),
                list(null = list(RLRTSim = summ(r2), LRTSim_q1 = summ(l2q)),
                     observed = observed(y2, X2, Z2, R2, 2)))

# 3. sleepstudy (lme4): Reaction ~ Days + (0 + Days | Subject), the random slope's design.
ss <- lme4::sleepstudy
X3 <- cbind(1, ss$Days); Z3 <- outer(as.integer(ss$Subject), 1:18, "==") * ss$Days
R3 <- diag(18)
set.seed(301); r3 <- RLRTSim(X3, Z3, qr(X3), R3, nsim = nsim)
m3 <- lmer(Reaction ~ Days + (0 + Days | Subject), ss, REML = TRUE)
cases[[3]] <- c(design("sleepstudy_slope", X3, Z3, R3,
                       "sleepstudy, Reaction ~ Days + (0 + Days | Subject)"),
                list(null = list(RLRTSim = summ(r3)),
                     observed = c(observed(ss$Reaction, X3, Z3, R3, 2),
                                  list(lmer_reml_criterion = unname(REMLcrit(m3))))))

out <- list(description = paste("RLRsim null samples and observed (R)LRT statistics (lme4 and",
                                "RLRsim/nlme) for design-matrix input"),
            env = list(R = R.version.string, RLRsim = as.character(packageVersion("RLRsim")),
                       lme4 = as.character(packageVersion("lme4")),
                       nlme = as.character(packageVersion("nlme"))),
            cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = FALSE, matrix = "rowmajor"),
           "validation/reference/exact_design.json")
