# lme4 / RLRsim reference for prior weights and factor responses (issue #16).
# Run from the repository root:  Rscript validation/r/weights_fits.R
# Writes validation/reference/weights_fits.json and, for the factor response,
# validation/reference/verbagg.csv.gz (lme4's VerbAgg, exported).
suppressMessages({library(lme4); library(RLRsim); library(jsonlite)})
read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5),
                      tolPwrss = 1e-10, check.conv.grad = "ignore")
lmm_row <- function(id, fit, data_name, formula, weights) {
  reml <- isREML(fit)
  list(id = id, data = data_name, formula = formula, weights = weights, REML = reml,
       criterion = if (reml) unname(getME(fit, "devcomp")$cmp["REML"]) else deviance(fit),
       logLik = as.numeric(logLik(fit)), theta = unname(getME(fit, "theta")),
       fixef = unname(fixef(fit)), sigma = sigma(fit))
}
sleep <- read_bundled("sleepstudy")
sleep$w <- 1 + (sleep$Days %% 3)          # precision weights 1, 2, 3
sleep$w2 <- exp(seq(-1, 1, length.out = nrow(sleep)))
lmms <- list()
for (reml in c(TRUE, FALSE)) {
  for (wcol in c("w", "w2")) {
    f1 <- lmer(Reaction ~ Days + (Days | Subject), sleep, weights = sleep[[wcol]], REML = reml)
    lmms[[length(lmms) + 1]] <- lmm_row(paste0("sleep_corr.", wcol, if (reml) ".reml" else ".ml"),
                                        f1, "sleepstudy", "Reaction ~ Days + (Days | Subject)", wcol)
    f2 <- lmer(Reaction ~ Days + (1 | Subject), sleep, weights = sleep[[wcol]], REML = reml)
    lmms[[length(lmms) + 1]] <- lmm_row(paste0("sleep_int.", wcol, if (reml) ".reml" else ".ml"),
                                        f2, "sleepstudy", "Reaction ~ Days + (1 | Subject)", wcol)
  }
}
# exact RLRT of the random intercept in the weighted model.  RLRsim assumes iid errors:
# exactRLRT(m_w) takes lm(y ~ X - 1) without the weights as the null and simulates the null of
# the unweighted design, so it is NOT the oracle (its output is stored as `rlrsim_naive` to
# document that).  The oracle is the whitened model W^(1/2) y = W^(1/2) X b + W^(1/2) Z u + e:
# its RLRT is 2 (l_R(weighted lmer) - l_R(weighted lm)), and RLRsim's RLRTSim simulates its
# null from the whitened X and Z.
m_w <- lmer(Reaction ~ Days + (1 | Subject), sleep, weights = w, REML = TRUE)
m0_w <- lm(Reaction ~ Days, sleep, weights = w)
stat_w <- max(0, 2 * (as.numeric(logLik(m_w, REML = TRUE)) - as.numeric(logLik(m0_w, REML = TRUE))))
sw <- sqrt(sleep$w)
Xw <- sw * getME(m_w, "X")
Zw <- sw * as.matrix(getME(m_w, "Z"))
set.seed(2026)
nsim_exact <- 100000
rlrt_null <- RLRTSim(Xw, Zw, qr(Xw), sqrt.Sigma = diag(ncol(Zw)), nsim = nsim_exact)
set.seed(2026)
naive <- exactRLRT(m_w, nsim = 10000)
probs <- c(0.5, 0.75, 0.9, 0.95, 0.99)
exact <- list(formula = "Reaction ~ Days + (1 | Subject)", weights = "w",
              statistic = stat_w, nsim = nsim_exact,
              p_value = (1 + sum(rlrt_null >= stat_w)) / (1 + nsim_exact),
              quantiles = unname(quantile(rlrt_null, probs)), probs = probs,
              p_zero = mean(rlrt_null < 1e-8),
              rlrsim_naive = list(statistic = unname(naive$statistic),
                                  quantiles = unname(quantile(naive$sample, probs))))
# binomial: proportions with weights = trials equal the cbind fit
cbpp <- read_bundled("cbpp")
cbpp$prop <- cbpp$incidence / cbpp$size
g_w <- glmer(prop ~ period + (1 | herd), cbpp, family = binomial, weights = size, control = tight)
g_c <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial,
             control = tight)
glmm_row <- function(id, fit, data_name, formula, weights) {
  list(id = id, data = data_name, formula = formula, weights = weights,
       m2loglik = -2 * as.numeric(logLik(fit)), deviance = unname(deviance(fit)),
       theta = unname(getME(fit, "theta")), fixef = unname(fixef(fit)))
}
glmms <- list(glmm_row("cbpp.prop_weights", g_w, "cbpp", "prop ~ period + (1 | herd)", "size"),
              glmm_row("cbpp.cbind", g_c, "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", NULL))
# factor response (first level = failure): VerbAgg's r2 (levels N, Y)
data(VerbAgg, package = "lme4")
va <- VerbAgg[, c("r2", "Anger", "Gender", "btype", "situ", "id", "item")]
con <- gzfile("validation/reference/verbagg.csv.gz", "w")
write.csv(va, con, row.names = FALSE)
close(con)
g_f <- glmer(r2 ~ Anger + Gender + btype + situ + (1 | id), va, family = binomial, control = tight)
glmms[[3]] <- glmm_row("verbagg.r2_factor", g_f, "verbagg",
                       "r2 ~ Anger + Gender + btype + situ + (1 | id)", NULL)
glmms[[3]]$levels <- list(r2 = levels(va$r2), Gender = levels(va$Gender),
                          btype = levels(va$btype), situ = levels(va$situ))
writeLines(toJSON(list(env = list(R = R.version.string,
                                  lme4 = as.character(packageVersion("lme4")),
                                  RLRsim = as.character(packageVersion("RLRsim"))),
                       lmms = lmms, exact = exact, glmms = glmms),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/weights_fits.json")
