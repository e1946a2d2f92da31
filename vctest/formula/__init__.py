"""lme4 formulas: parse the text (:mod:`.parse`) and build the numeric design (:mod:`.design`)."""

from vctest.formula.design import Design, RandomBlock, build_design
from vctest.formula.parse import (
    ParsedFormula,
    RandomTerm,
    Response,
    parse_formula,
    random_term_from_text,
)

__all__ = [
    "Design",
    "ParsedFormula",
    "RandomBlock",
    "RandomTerm",
    "Response",
    "build_design",
    "parse_formula",
    "random_term_from_text",
]
