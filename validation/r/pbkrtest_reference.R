# pbkrtest::PBmodcomp reference distribution for sleepstudy (Days|Subject) vs (1|Subject), ML.
# Run: Rscript validation/r/pbkrtest_reference.R  (writes validation/reference/pbkrtest_reference.json)
suppressMessages({library(lme4); library(pbkrtest); library(jsonlite)})
data(sleepstudy)
full <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
null <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
set.seed(2026)
ref <- suppressWarnings(PBrefdist(full, null, nsim = 2000, seed = 2026))
probs <- seq(0.01, 0.99, by = 0.01)
out <- list(call = "PBrefdist(full, null, nsim = 2000)", nsim = length(ref),
            n_nonpositive = sum(ref <= 0), probs = probs,
            quantiles = unname(quantile(ref, probs, type = 7)),
            statistic = as.numeric(2 * (logLik(full) - logLik(null))),
            env = list(R = R.version.string, pbkrtest = as.character(packageVersion("pbkrtest"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/pbkrtest_reference.json")
