# RLRsim null samples summarised by 999 quantiles, for QQ plots in validation/report.md.
# Run: Rscript validation/r/rlrsim_quantiles.R  (writes validation/reference/rlrsim_quantiles.json)
suppressMessages({library(RLRsim); library(lme4); library(jsonlite)})
probs <- seq(0.001, 0.999, by = 0.001)
nsim <- 1e5
summarise <- function(id, s, call) {
  list(id = id, call = call, nsim = length(s), p0 = mean(s == 0),
       probs = probs, quantiles = unname(quantile(s, probs, type = 7)))
}
cases <- list()
# Dyestuff design: one-way, 6 batches of 5
X <- matrix(1, 30, 1); Z <- model.matrix(~ 0 + factor(rep(1:6, each = 5)))
set.seed(1)
cases[[1]] <- summarise("rlrt.dyestuff", RLRTSim(X, Z, qr(X), diag(6), nsim = nsim),
                        "RLRTSim(X = 1, Z = batch indicators, 6 x 5)")
set.seed(2)
cases[[2]] <- summarise("lrt.dyestuff", LRTSim(X, Z, 0, diag(6), nsim = nsim),
                        "LRTSim(X = 1, Z = batch indicators, 6 x 5, q = 0)")
# sleepstudy random slope design: X = [1, Days], Z = Days within 18 subjects
days <- rep(0:9, 18); subj <- factor(rep(1:18, each = 10))
X2 <- cbind(1, days); Z2 <- model.matrix(~ 0 + subj) * days
set.seed(3)
cases[[3]] <- summarise("rlrt.sleep_slope", RLRTSim(X2, Z2, qr(X2), diag(18), nsim = nsim),
                        "RLRTSim(X = [1, Days], Z = Days by subject, 18 x 10)")
# unbalanced one-way: 10 groups of sizes 1..10
sizes <- 1:10; g <- factor(rep(seq_along(sizes), sizes))
X3 <- matrix(1, length(g), 1); Z3 <- model.matrix(~ 0 + g)
set.seed(4)
cases[[4]] <- summarise("rlrt.unbalanced", RLRTSim(X3, Z3, qr(X3), diag(10), nsim = nsim),
                        "RLRTSim(X = 1, Z = indicators, 10 groups of sizes 1..10)")
out <- list(description = "RLRsim null samples (1e5 draws each) summarised by 999 type-7 quantiles",
            env = list(R = R.version.string, RLRsim = as.character(packageVersion("RLRsim"))),
            cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "validation/reference/rlrsim_quantiles.json")
