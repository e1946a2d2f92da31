# lme4 reference for formula functions (issue #16 item 1): factor(), as.factor(), sqrt(),
# abs(), log(), exp(), I(), poly(raw = TRUE), scale() in the fixed part and in a random term.
# Run from the repository root: Rscript validation/r/formula_functions.R
# Writes validation/reference/formula_functions.json.
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv("vctest/datasets/data/sleepstudy.csv")
d$Subject <- factor(d$Subject)
formulas <- c(
  "Reaction ~ factor(Days) + (1 | Subject)",
  "Reaction ~ as.factor(Days) + (1 | Subject)",
  "Reaction ~ sqrt(Days) + (1 | Subject)",
  "Reaction ~ abs(Days - 4) + (1 | Subject)",
  "log(Reaction) ~ Days + (1 | Subject)",
  "Reaction ~ exp(Days/10) + (1 | Subject)",
  "Reaction ~ I(Days^2) + Days + (1 | Subject)",
  "Reaction ~ poly(Days, 2, raw = TRUE) + (1 | Subject)",
  "Reaction ~ poly(Days, 2) + (1 | Subject)",
  "Reaction ~ scale(Days) + (scale(Days) | Subject)",
  "Reaction ~ factor(Days > 4) + (1 | Subject)"
)
fits <- lapply(formulas, function(f) {
  m <- lmer(as.formula(f), d, REML = TRUE)
  list(formula = f, criterion = unname(getME(m, "devcomp")$cmp["REML"]),
       theta = unname(getME(m, "theta")), fixef = unname(fixef(m)), names = names(fixef(m)))
})
# R's orthogonal poly() basis of Days, degree 3 (its columns; vctest's poly() must equal them)
basis <- unclass(poly(d$Days, 3))
attributes(basis) <- attributes(basis)["dim"]
writeLines(toJSON(list(env = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
                       fits = fits, poly_basis = basis), auto_unbox = TRUE, digits = NA,
                  pretty = TRUE),
           "validation/reference/formula_functions.json")
