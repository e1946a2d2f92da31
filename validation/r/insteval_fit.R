# lme4 reference fits of the large crossed InstEval model, for vctest's tests.
# Run from the repository root:  Rscript validation/r/insteval_fit.R
# Writes validation/reference/insteval_fits.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
d <- read.csv("vctest/datasets/data/InstEval.csv", colClasses = "character")
lv <- fromJSON("vctest/datasets/data/factor_levels.json")$InstEval$factors
for (v in names(lv)) d[[v]] <- factor(d[[v]], levels = lv[[v]]$levels)
d$y <- as.numeric(d$y)
out <- list()
for (reml in c(TRUE, FALSE)) {
  t <- system.time(m <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), d, REML = reml))
  out[[length(out) + 1]] <- list(
    id = paste0("fit.insteval.", if (reml) "reml" else "ml"),
    data = "InstEval", formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept)", REML = reml,
    nobs = nobs(m), criterion = if (reml) REMLcrit(m) else deviance(m),
    logLik = as.numeric(logLik(m)), theta = as.list(getME(m, "theta")),
    fixef = as.list(fixef(m)), sigma = sigma(m), isSingular = isSingular(m),
    elapsed_seconds = unname(t["elapsed"]),
    conv_messages = m@optinfo$conv$lme4$messages)
}
env <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
            date = format(Sys.time(), tz = "UTC", usetz = TRUE))
write_json(list(description = "lme4::lmer fits of InstEval (default control)", env = env,
                fits = out), "validation/reference/insteval_fits.json",
           auto_unbox = TRUE, digits = NA, pretty = TRUE)
