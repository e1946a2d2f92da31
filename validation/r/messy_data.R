# lme4 reference numbers for messy-data formulas (issue #22, items 2-7 and 13);
# tests/test_messy_data.py reads the output and never needs R.
# Run from the project root:  Rscript validation/r/messy_data.R
# Writes validation/reference/messy_data.json.
#
# Cases:
#  * intercept_column: a data column named `Intercept` is an ordinary covariate;
#  * character_group: a grouping column that is text (what R makes of a column mixing
#    3 and "3": one character vector, so one level "3");
#  * in_operator: `x %in% f` in a model formula is the interaction x:f;
#  * cbind_gaussian / proportion_no_weights: what lmer / glmer say;
#  * model_frame_*: scale(), poly() evaluated on all rows before incomplete rows are
#    dropped (responses and some Days set missing by a fixed rule);
#  * theta_order_*: the order of random-effects terms (theta names, VarCorr) when terms
#    have the same number of levels; the simulated data are stored with the fits;
#  * factor_slope: a factor random slope (1 + Phase | Subject) and its null.
suppressMessages({library(lme4); library(jsonlite)})

read_bundled <- function(name) {
  d <- read.csv(file.path("vctest/datasets/data", paste0(name, ".csv")))
  levels <- fromJSON("vctest/datasets/data/factor_levels.json")[[name]]$factors
  for (col in names(levels)) d[[col]] <- factor(as.character(d[[col]]), levels = levels[[col]]$levels)
  d
}

catch_all <- function(expr_fn) {
  warns <- character(0)
  value <- tryCatch(
    withCallingHandlers(expr_fn(), warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    }),
    error = function(e) structure(list(message = conditionMessage(e)), class = "caught_error"))
  list(value = value, warnings = warns)
}

summarise_lmer <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  list(
    REML = isREML(fit),
    criterion = if (isREML(fit)) unname(getME(fit, "devcomp")$cmp["REML"]) else deviance(fit),
    n = nobs(fit),
    fixef_names = names(fixef(fit)), fixef = unname(fixef(fit)),
    theta_names = names(getME(fit, "theta")), theta = unname(getME(fit, "theta")),
    varcorr_grp = vc$grp, varcorr_var1 = ifelse(is.na(vc$var1), "", vc$var1),
    varcorr_var2 = ifelse(is.na(vc$var2), "", vc$var2), varcorr_vcov = vc$vcov)
}

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                    check.conv.singular = "ignore")
fit_case <- function(id, formula, data, reml = TRUE)
  c(list(id = id, formula = formula), summarise_lmer(lmer(as.formula(formula), data,
                                                           REML = reml, control = ctrl)))
cases <- list()

# -- item 2: a column named Intercept ---------------------------------------------------
sl <- read_bundled("sleepstudy")
sl$Intercept <- sl$Days
cases[[length(cases) + 1]] <- fit_case("intercept_column", "Reaction ~ Intercept + (1 | Subject)", sl)

# -- item 3: a grouping column of text ----------------------------------------------------
# Python's test has the IDs as text in even rows and as integers in odd rows; in R such
# a column can only be a character vector: every "308" and 308 are the text "308"
sl <- read_bundled("sleepstudy")
ids <- as.character(sl$Subject)
odd <- seq_len(nrow(sl)) %% 2 == 0
sl$S <- ifelse(odd, as.integer(ids), ids)   # ifelse() of text and numbers: character
cases[[length(cases) + 1]] <- c(fit_case("character_group", "Reaction ~ Days + (1 | S)", sl),
                                list(n_levels = nlevels(factor(sl$S)),
                                     levels_mixed_example = levels(factor(c(3, "3", 10)))))

# -- item 4: %in% ------------------------------------------------------------------------
ot <- read_bundled("Orthodont")
cases[[length(cases) + 1]] <- fit_case("in_operator", "distance ~ age %in% Sex + (1 | Subject)", ot)
cases[[length(cases) + 1]] <- fit_case("in_operator_colon", "distance ~ age:Sex + (1 | Subject)", ot)

# -- item 5: cbind with a gaussian model; a proportion without trials --------------------
cb <- read_bundled("cbpp")
r <- catch_all(function() lmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb))
cases[[length(cases) + 1]] <- list(
  id = "cbind_gaussian", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
  error = if (inherits(r$value, "caught_error")) r$value$message else NA, warnings = r$warnings)
# glmer's log-likelihood rounds the successes (binomial()$aic uses round(m * y)): the
# proportions fit has the -2 log-likelihood of the fit to round(prop)
cb$prop <- cb$incidence / cb$size
cb$rounded <- round(cb$prop)
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                      check.conv.singular = "ignore")
r <- catch_all(function() glmer(prop ~ period + (1 | herd), cb, family = binomial, control = gctrl))
rr <- glmer(rounded ~ period + (1 | herd), cb, family = binomial, control = gctrl)
cases[[length(cases) + 1]] <- list(
  id = "proportion_no_weights", formula = "prop ~ period + (1 | herd)",
  warnings = r$warnings, minus2loglik = -2 * as.numeric(logLik(r$value)),
  fixef = unname(fixef(r$value)), minus2loglik_rounded = -2 * as.numeric(logLik(rr)),
  fixef_rounded = unname(fixef(rr)))
r <- catch_all(function() glmer(prop ~ period + (1 | herd), cb, family = binomial, weights = size))
r2 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial)
cases[[length(cases) + 1]] <- list(
  id = "proportion_weights", formula = "prop ~ period + (1 | herd)", warnings = r$warnings,
  deviance = deviance(r$value), deviance_cbind = deviance(r2))

# -- item 6: R's model frame: variables on all rows, then incomplete rows dropped -------
# rows are 0-based in the rule so that Python uses the same one
sl <- read_bundled("sleepstudy")
i0 <- seq_len(nrow(sl)) - 1L
sl_y <- sl; sl_y$Reaction[i0 %% 7 == 3] <- NA
sl_yx <- sl_y; sl_yx$Days[i0 %% 11 == 5] <- NA
mf <- list(
  list("model_frame_scale", "Reaction ~ scale(Days) + (1 | Subject)", sl_y, "y"),
  list("model_frame_poly", "Reaction ~ poly(Days, 2) + (1 | Subject)", sl_y, "y"),
  list("model_frame_scale_slope", "Reaction ~ scale(Days) + (scale(Days) | Subject)", sl_yx, "yx"),
  list("model_frame_center", "Reaction ~ scale(Days, scale = FALSE) + (1 | Subject)", sl_y, "y"),
  list("model_frame_plain", "Reaction ~ Days + I(Days^2) + (1 | Subject)", sl_y, "y"))
for (m in mf) cases[[length(cases) + 1]] <- c(fit_case(m[[1]], m[[2]], m[[3]]),
                                              list(missing = m[[4]]))

# -- item 7: the order of terms with the same number of levels ---------------------------
set.seed(20261130)
grid <- expand.grid(a = factor(paste0("a", 1:6)), c = factor(paste0("c", 1:12)), rep = 1:2)
grid$b <- factor(paste0("b", (as.integer(grid$a) + as.integer(grid$c) + grid$rep) %% 6 + 1))
grid$x <- round(rnorm(nrow(grid)), 3)
ea <- rnorm(6, sd = 1.0); eb <- rnorm(6, sd = 0.7); ec <- rnorm(12, sd = 0.5)
sa <- rnorm(6, sd = 0.4)
grid$y <- round(10 + 0.5 * grid$x + ea[grid$a] + eb[grid$b] + ec[grid$c] +
                  sa[grid$a] * grid$x + rnorm(nrow(grid)), 4)
order_data <- data.frame(y = grid$y, x = grid$x, a = as.character(grid$a),
                         b = as.character(grid$b), c = as.character(grid$c))
ord <- list(
  list("theta_order_tie_then_more", "y ~ 1 + (1 | a) + (1 | b) + (1 | c)"),
  list("theta_order_tie_only", "y ~ 1 + (1 | a) + (1 | b)"),
  list("theta_order_decreasing", "y ~ 1 + (1 | c) + (1 | a) + (1 | b)"),
  list("theta_order_middle", "y ~ 1 + (1 | a) + (1 | c) + (1 | b)"),
  list("theta_order_double_bar", "y ~ x + (x || a) + (1 | c)"))
for (m in ord) cases[[length(cases) + 1]] <- fit_case(m[[1]], m[[2]], order_data)

# -- item 13: a factor random slope and its null ------------------------------------------
sl <- read_bundled("sleepstudy")
sl$Phase <- ifelse(sl$Days >= 5, "late", "early")
cases[[length(cases) + 1]] <- fit_case("factor_slope_full", "Reaction ~ Days + Phase + (1 + Phase | Subject)", sl)
cases[[length(cases) + 1]] <- fit_case("factor_slope_null", "Reaction ~ Days + Phase + (1 | Subject)", sl)

names(cases) <- vapply(cases, `[[`, "", "id")
writeLines(toJSON(list(env = list(R = R.version.string,
                                  lme4 = as.character(packageVersion("lme4"))),
                       order_data = order_data, cases = cases),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           "validation/reference/messy_data.json")
