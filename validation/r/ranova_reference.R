# Reference numbers for vctest.ranova / vctest.anova and the model methods (issue #19).
# Run from the repository root: Rscript validation/r/ranova_reference.R
# Writes validation/reference/ranova_reference.json; tests/test_ranova.py and
# tests/test_model_methods.py read it (they never need R).
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}
tab <- function(x) {
  x <- as.data.frame(x)
  out <- list(rows = rownames(x))
  for (col in names(x)) out[[col]] <- unname(as.numeric(x[[col]]))
  out
}
# --- lmerTest::ranova ------------------------------------------------------------------
ranova_models <- list(
  list("sleep_corr", "sleepstudy", "Reaction ~ Days + (Days | Subject)"),
  list("penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list("pastes", "Pastes", "strength ~ 1 + (1 | batch/cask)"),
  list("sleep_indep", "sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)")
)
ranovas <- list()
for (m in ranova_models) for (reml in c(TRUE, FALSE)) {
  fit <- lmerTest::lmer(as.formula(m[[3]]), read_bundled(m[[2]]), REML = reml)
  ranovas[[length(ranovas) + 1]] <- c(
    list(id = paste0(m[[1]], if (reml) ".reml" else ".ml"), data = m[[2]],
         formula = m[[3]], REML = reml), tab(ranova(fit)))
}
# --- lme4's anova() of three nested models (refitted by ML) -----------------------------
ss <- read_bundled("sleepstudy")
f0 <- "Reaction ~ Days + (1 | Subject)"
f1 <- "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
f2 <- "Reaction ~ Days + (Days | Subject)"
m0 <- lme4::lmer(as.formula(f0), ss); m1 <- lme4::lmer(as.formula(f1), ss)
m2 <- lme4::lmer(as.formula(f2), ss)
anova_tab <- c(list(formulas = c(f0, f1, f2)), tab(anova(m0, m1, m2)))
m0ml <- lme4::lmer(as.formula(f0), ss, REML = FALSE)
m2ml <- lme4::lmer(as.formula(f2), ss, REML = FALSE)
anova_ml_tab <- c(list(formulas = c(f0, f2)), tab(anova(m2ml, m0ml)))
# --- model methods ----------------------------------------------------------------------
methods_of <- function(id, data, formula, reml, newdata = NULL, re_forms = list()) {
  d <- read_bundled(data)
  fit <- lme4::lmer(as.formula(formula), d, REML = reml)
  re <- ranef(fit, condVar = TRUE)
  ranefs <- list()
  for (g in names(re)) {
    pv <- attr(re[[g]], "postVar")
    # one array per grouping factor, or (terms sharing a factor) a list of arrays, one per term
    pv <- if (is.list(pv)) unname(pv) else list(pv)
    ranefs[[g]] <- list(levels = rownames(re[[g]]), columns = I(colnames(re[[g]])),
                        values = unname(as.matrix(re[[g]])),
                        condvar = lapply(pv, function(a) lapply(seq_len(dim(a)[3]),
                                                                function(i) unname(a[, , i]))))
  }
  out <- list(id = id, data = data, formula = formula, REML = reml,
              fitted = unname(fitted(fit)), residuals = unname(residuals(fit)),
              theta = unname(getME(fit, "theta")), fixef = unname(fixef(fit)),
              sigma = sigma(fit), ranef = ranefs, AIC = AIC(fit), BIC = BIC(fit), nobs = nobs(fit),
              df = attr(logLik(fit), "df"), logLik = as.numeric(logLik(fit)),
              rePCA = lapply(rePCA(fit), function(p) unname(summary(p)$importance[2, ])),
              rePCA_sdev = lapply(rePCA(fit), function(p) I(unname(p$sdev))))
  if (!is.null(newdata)) {
    nd <- newdata
    out$newdata <- lapply(nd, as.character)
    out$predict <- list(full = unname(predict(fit, newdata = nd, allow.new.levels = TRUE)),
                        none = unname(predict(fit, newdata = nd, re.form = NA)))
    for (nm in names(re_forms))
      out$predict[[nm]] <- unname(predict(fit, newdata = nd, re.form = as.formula(re_forms[[nm]]),
                                          allow.new.levels = TRUE))
  }
  out
}
nd_sleep <- data.frame(Days = c(0, 3.5, 9, 2, 7),
                       Subject = factor(c("308", "309", "372", "new1", "new2")))
nd_pen <- data.frame(plate = factor(c("a", "x", "b", "zz")), sample = factor(c("A", "B", "new", "F")))
methods <- list(
  methods_of("sleep_corr.reml", "sleepstudy", f2, TRUE, nd_sleep),
  methods_of("sleep_corr.ml", "sleepstudy", f2, FALSE, nd_sleep),
  methods_of("sleep_indep.reml", "sleepstudy", f1, TRUE, nd_sleep,
             list(intercept_only = "~ (1 | Subject)")),
  methods_of("penicillin.reml", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", TRUE,
             nd_pen, list(plate_only = "~ (1 | plate)")),
  methods_of("pastes.reml", "Pastes", "strength ~ 1 + (1 | batch/cask)", TRUE),
  methods_of("dyestuff.reml", "Dyestuff", "Yield ~ 1 + (1 | Batch)", TRUE)
)
# --- a GLMM: cbpp ----------------------------------------------------------------------
cb <- read_bundled("cbpp")
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial)
gre <- ranef(g, condVar = TRUE)$herd
nd_cb <- data.frame(period = factor(c("1", "2", "4", "3"), levels = levels(cb$period)),
                    herd = factor(c("1", "5", "new", "15")))
glmm_methods <- list(
  id = "cbpp", data = "cbpp",
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = "binomial",
  theta = I(unname(getME(g, "theta"))), fixef = unname(fixef(g)),
  fitted = unname(fitted(g)), residuals_deviance = unname(residuals(g)),
  residuals_response = unname(residuals(g, type = "response")),
  residuals_pearson = unname(residuals(g, type = "pearson")),
  ranef = list(herd = list(levels = rownames(gre), values = unname(gre[, 1]),
                           condvar = unname(attr(gre, "postVar")[1, 1, ]))),
  AIC = AIC(g), BIC = BIC(g), nobs = nobs(g), df = attr(logLik(g), "df"),
  newdata = lapply(nd_cb, as.character),
  predict_link = unname(predict(g, newdata = nd_cb, allow.new.levels = TRUE)),
  predict_response = unname(predict(g, newdata = nd_cb, type = "response",
                                    allow.new.levels = TRUE)),
  predict_fit_link = unname(predict(g)))
# --- confint(method = "profile") and "Wald" ---------------------------------------------
ci_of <- function(id, data, formula, method) {
  fit <- lme4::lmer(as.formula(formula), read_bundled(data))
  ci <- suppressMessages(confint(fit, method = method))
  list(id = id, data = data, formula = formula, method = method, rows = rownames(ci),
       lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}
confints <- list(
  ci_of("sleep_corr", "sleepstudy", f2, "profile"),
  ci_of("dyestuff", "Dyestuff", "Yield ~ 1 + (1 | Batch)", "profile"),
  ci_of("dyestuff2", "Dyestuff2", "Yield ~ 1 + (1 | Batch)", "profile"),
  ci_of("penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "profile"),
  ci_of("sleep_corr_wald", "sleepstudy", f2, "Wald"))
writeLines(toJSON(list(env = list(R = R.version.string,
                                  lme4 = as.character(packageVersion("lme4")),
                                  lmerTest = as.character(packageVersion("lmerTest"))),
                       ranova = ranovas, anova = anova_tab, anova_ml = anova_ml_tab,
                       methods = methods, glmm_methods = glmm_methods,
                       confint = confints),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"),
           "validation/reference/ranova_reference.json")
