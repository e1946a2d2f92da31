"""Parse lme4 model formulas into a frozen specification (standard library only).

The grammar is lme4's: a response, ``~``, and a right-hand side whose
top-level ``+``/``-`` separated terms are either fixed-effect terms (handed to
formulaic unchanged) or random-effects terms ``(lhs | group)``.  Two
shorthands are expanded here, as lme4 does:

* ``(1 + x || g)`` -- independent terms ``(1 | g)`` and ``(0 + x | g)``;
* ``(1 | a/b)`` -- nested grouping ``(1 | a)`` and ``(1 | b:a)``.

Top-level ``s(x, k=, bs=, by=)`` terms are smooths (penalised splines, as in
mgcv), read by :func:`vctest.formula.smooth_design.smooth_from_args`.

The text is cut by a small tokenizer that tracks parentheses, brackets,
braces and quoted strings, so that ``log(x + 1)`` or ``C(f, levels=['a|b'])``
are never split.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from vctest.formula.smooth import SmoothTerm
from vctest.formula.smooth_design import smooth_from_args

__all__ = ["ParsedFormula", "RandomTerm", "Response", "parse_formula", "random_term_from_text"]

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_OPERATORS = ("||", "**", "~", "+", "-", "*", "/", ":", "^", "|", ",")


@dataclass(frozen=True)
class Token:
    """One lexical token of a formula.

    ``kind`` is ``"name"``, ``"number"``, ``"string"``, ``"op"``, ``"open"``,
    ``"close"`` or ``"other"``; ``depth`` is the bracket depth at the token
    (an opening bracket has the depth outside it); ``start``/``end`` index the
    source text.
    """

    kind: str
    text: str
    start: int
    end: int
    depth: int

    @property
    def value(self) -> str:
        """The token text, without backticks for a quoted name."""
        if self.kind == "name" and self.text.startswith("`"):
            return self.text[1:-1]
        return self.text


def _is_name_start(ch: str) -> bool:
    return ch.isalpha() or ch in "._"


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "._"


def _tokenize(text: str, what: str) -> list[Token]:
    """Split ``text`` into tokens; raise ValueError on unbalanced brackets.

    ``what`` is the quoted source used in error messages.
    """
    tokens: list[Token] = []
    stack: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch in _OPEN:
            tokens.append(Token("open", ch, i, i + 1, len(stack)))
            stack.append((ch, i))
            i += 1
            continue
        if ch in _CLOSE:
            if not stack or stack[-1][0] != _CLOSE[ch]:
                raise ValueError(
                    f"unbalanced parentheses in {what}: unexpected {ch!r} at position {i}; "
                    "check that every opening bracket has a matching closing one."
                )
            stack.pop()
            tokens.append(Token("close", ch, i, i + 1, len(stack)))
            i += 1
            continue
        if ch in "'\"`":
            j = text.find(ch, i + 1)
            if j < 0:
                raise ValueError(
                    f"unterminated quote {ch} starting at position {i} in {what}; close it."
                )
            kind = "name" if ch == "`" else "string"
            tokens.append(Token(kind, text[i : j + 1], i, j + 1, len(stack)))
            i = j + 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            while i < n and (text[i].isalnum() or text[i] == "."):
                i += 1
            tokens.append(Token("number", text[start:i], start, i, len(stack)))
            continue
        if _is_name_start(ch):
            while i < n and _is_name_char(text[i]):
                i += 1
            tokens.append(Token("name", text[start:i], start, i, len(stack)))
            continue
        if ch == "%":
            j = text.find("%", i + 1)
            j = n - 1 if j < 0 else j
            tokens.append(Token("op", text[i : j + 1], i, j + 1, len(stack)))
            i = j + 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i, i + len(op), len(stack)))
            i += len(op)
            continue
        tokens.append(Token("other", ch, i, i + 1, len(stack)))
        i += 1
    if stack:
        ch, pos = stack[-1]
        raise ValueError(
            f"unbalanced parentheses in {what}: {ch!r} at position {pos} is never closed; "
            f"add the missing {_OPEN[ch]!r}."
        )
    return tokens


@dataclass(frozen=True)
class _Segment:
    """Tokens of one top-level term and the sign in front of it."""

    sign: str
    tokens: tuple[Token, ...]

    def text(self, source: str) -> str:
        return source[self.tokens[0].start : self.tokens[-1].end] if self.tokens else ""


def _split(tokens: list[Token] | tuple[Token, ...], seps: tuple[str, ...]) -> list[_Segment]:
    """Split at operators in ``seps`` lying at the tokens' outermost depth.

    The separator in front of each piece is kept as its sign (``"+"`` for the
    first piece unless it starts with one of ``seps``).  Empty pieces are
    kept (as empty token tuples) so that callers can report them.
    """
    if not tokens:
        return []
    base = min(t.depth for t in tokens)
    pieces: list[_Segment] = []
    sign, current = "+", []
    for tok in tokens:
        if tok.kind == "op" and tok.text in seps and tok.depth == base:
            if current or pieces or sign != "+":
                pieces.append(_Segment(sign, tuple(current)))
            sign, current = tok.text, []
        else:
            current.append(tok)
    pieces.append(_Segment(sign, tuple(current)))
    return pieces


def _wrapped(tokens: tuple[Token, ...]) -> bool:
    """True if the first token opens a parenthesis closed by the last token."""
    if len(tokens) < 2 or tokens[0].text != "(" or tokens[-1].text != ")":
        return False
    base = tokens[0].depth
    return all(t.depth > base for t in tokens[1:-1])


def _unwrap(tokens: tuple[Token, ...]) -> tuple[Token, ...]:
    while _wrapped(tokens):
        tokens = tokens[1:-1]
    return tokens


def _is_bar(tok: Token) -> bool:
    return tok.kind == "op" and tok.text in ("|", "||")


@dataclass(frozen=True)
class Response:
    """The left-hand side of a formula.

    Attributes
    ----------
    kind : str
        ``"column"`` (a bare column name), ``"cbind"`` (binomial successes and
        failures) or ``"expression"`` (anything else, e.g. ``log(y)``).
    parts : tuple of str
        ``("Reaction",)``, ``("log(y)",)`` or ``("incidence", "size - incidence")``.
    text : str
        The response as written.
    """

    kind: str
    parts: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(lhs | group)`` after expansion.

    Attributes
    ----------
    intercept : bool
        The term has a random intercept.
    covariates : tuple of str
        The other left-hand-side terms as written, e.g. ``("Days",)``.
    group : str
        lme4's name of the grouping factor: ``"Subject"``, ``"cask:batch"``
        (from ``batch/cask``) or ``"a:b"`` as written.
    group_factors : tuple of str
        Data columns whose interaction forms the group, e.g. ``("cask", "batch")``.
    source : str
        The bar term as the user wrote it, e.g. ``"(1 + Days || Subject)"``.
    """

    intercept: bool
    covariates: tuple[str, ...]
    group: str
    group_factors: tuple[str, ...]
    source: str

    @property
    def lhs(self) -> str:
        """Canonical left-hand side: ``"1"``, ``"0 + Days"`` or ``"1 + Days"``."""
        head = "1" if self.intercept else "0"
        return " + ".join((head, *self.covariates)) if self.covariates else head

    @property
    def label(self) -> str:
        """Canonical term text, e.g. ``"(1 + Days | Subject)"``."""
        return f"({self.lhs} | {self.group})"


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed lme4 formula.

    Attributes
    ----------
    text : str
        The formula as given.
    response : Response
        Its left-hand side.
    fixed : str
        Fixed-effect right-hand side for formulaic, e.g. ``"Days"``,
        ``"0 + x"``; ``"1"`` when the formula has only random terms.
    random : tuple of RandomTerm
        Random-effects terms, expanded (``||`` and ``/``), in written order.
    smooths : tuple of SmoothTerm
        Smooth terms ``s(x, k=, bs=)`` (penalised splines), in written order.
    """

    text: str
    response: Response
    fixed: str
    random: tuple[RandomTerm, ...]
    smooths: tuple[SmoothTerm, ...] = ()

    @property
    def has_random(self) -> bool:
        """Whether the formula has at least one random-effects term."""
        return bool(self.random)


def _parse_response(tokens: list[Token], source: str, what: str) -> Response:
    text = source[tokens[0].start : tokens[-1].end]
    if any(_is_bar(t) for t in tokens):
        raise ValueError(f"the response {text!r} of {what} contains `|`; a response "
                         "cannot have random effects. Put `(lhs | group)` terms after `~`.")
    if len(tokens) == 1 and tokens[0].kind == "name":
        return Response("column", (tokens[0].value,), text)
    if (tokens[0].kind == "name" and tokens[0].text == "cbind" and len(tokens) >= 3
            and _wrapped(tuple(tokens[1:]))):
        args = _split(tokens[2:-1], (",",))
        parts = tuple(a.text(source).strip() for a in args)
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"{text!r} in {what} must have exactly two non-empty arguments, "
                f"cbind(successes, failures); got {len(parts)}."
            )
        return Response("cbind", parts, text)
    return Response("expression", (text,), text)


def _parse_group(tokens: tuple[Token, ...], source: str, what: str) -> list[list[str]]:
    """Grouping expression -> list of nesting levels, each a list of factor names."""
    text = source[tokens[0].start : tokens[-1].end]
    levels: list[list[str]] = []
    for part in _split(_unwrap(tokens), ("/",)):
        toks = _unwrap(part.tokens)
        names: list[str] = []
        ok = bool(toks) and len(toks) % 2 == 1
        for i, tok in enumerate(toks):
            if i % 2 == 0:
                ok = ok and tok.kind == "name"
                names.append(tok.value)
            else:
                ok = ok and tok.kind == "op" and tok.text == ":"
        if not ok:
            raise ValueError(
                f"the grouping {text!r} in {what} is not a factor name, an interaction "
                "`a:b` or a nesting `a/b`; write e.g. `(1 | g)`, `(1 | a:b)` or `(1 | a/b)`."
            )
        levels.append(names)
    return levels


def _parse_lhs(tokens: tuple[Token, ...], source: str, what: str) -> tuple[bool, list[str]]:
    intercept = True
    covariates: list[str] = []
    for seg in _split(tokens, ("+", "-")):
        item = seg.text(source).strip()
        if not item:
            raise ValueError(f"empty term in the left-hand side of {what}; remove the "
                             "stray `+` or `-`.")
        if item in ("0", "1"):
            intercept = (item == "1") == (seg.sign == "+")
        elif seg.sign == "-":
            raise ValueError(f"cannot remove {item!r} with `-` in {what}; only `-1` (no "
                             "intercept) is allowed there. Leave the term out instead.")
        elif item not in covariates:
            covariates.append(item)
    return intercept, covariates


def _parse_bar(tokens: tuple[Token, ...], source: str, src: str) -> list[RandomTerm]:
    """Expand one bar term (tokens without the enclosing parentheses)."""
    what = f"random-effects term {src!r}"
    base = min(t.depth for t in tokens)
    bars = [i for i, t in enumerate(tokens) if _is_bar(t)]
    if len(bars) != 1 or tokens[bars[0]].depth != base:
        raise ValueError(f"nested or repeated `|` in {what}; a random-effects term has "
                         "exactly one bar: `(lhs | group)`.")
    cut = bars[0]
    lhs_toks, grp_toks = tokens[:cut], tokens[cut + 1 :]
    if not lhs_toks:
        raise ValueError(f"empty left-hand side in {what}; write `(1 | group)` for a "
                         "random intercept.")
    if not grp_toks:
        raise ValueError(f"empty grouping factor in {what}; name the grouping column "
                         "after the bar, e.g. `(1 | group)`.")
    intercept, covariates = _parse_lhs(lhs_toks, source, what)
    if not intercept and not covariates:
        raise ValueError(f"{what} has no random effects (no intercept and no covariates); "
                         "remove it or add a covariate, e.g. `(0 + x | g)`.")
    levels = _parse_group(grp_toks, source, what)
    if tokens[cut].text == "||":
        pieces = [(True, ())] if intercept else []
        pieces += [(False, (c,)) for c in covariates]
    else:
        pieces = [(intercept, tuple(covariates))]
    groups: list[tuple[str, ...]] = []
    for i in range(len(levels)):
        groups.append(tuple(name for lev in reversed(levels[: i + 1]) for name in lev))
    return [
        RandomTerm(intercept=icpt, covariates=covs, group=":".join(factors),
                   group_factors=factors, source=src)
        for icpt, covs in pieces
        for factors in groups
    ]


def _smooth(seg: _Segment, source: str, what: str) -> SmoothTerm | None:
    """The smooth term ``s(...)`` of a top-level segment, or None."""
    toks = seg.tokens
    if not (len(toks) >= 3 and toks[0].kind == "name" and toks[0].text == "s"
            and _wrapped(toks[1:])):
        return None
    src = seg.text(source).strip()
    if seg.sign != "+":
        raise ValueError(f"cannot subtract the smooth term {src!r} in {what}; leave it out "
                         "of the formula instead.")
    args: list[tuple[str | None, str]] = []
    for part in _split(toks[2:-1], (",",)):
        ptoks = part.tokens
        if not ptoks:
            raise ValueError(f"empty argument in the smooth term {src!r} of {what}.")
        if len(ptoks) >= 2 and ptoks[0].kind == "name" and ptoks[1].text == "=":
            args.append((ptoks[0].value, source[ptoks[2].start:ptoks[-1].end].strip()
                         if len(ptoks) > 2 else ""))
        else:
            args.append((None, part.text(source).strip()))
    return smooth_from_args(args, src)


def _classify(seg: _Segment, source: str, what: str) -> list[RandomTerm] | None:
    """Random terms of a top-level segment, or None if it is a fixed-effect term."""
    toks = seg.tokens
    src = seg.text(source).strip()
    if not any(_is_bar(t) for t in toks):
        return None
    if not _wrapped(toks) and any(_is_bar(t) and t.depth == toks[0].depth for t in toks):
        raise ValueError(
            f"`|` outside parentheses in {what} (term {src!r}); write random-effects "
            "terms in parentheses, e.g. `(1 | g)`."
        )
    inner = _unwrap(toks)
    if not _wrapped(toks) or not any(_is_bar(t) and t.depth == inner[0].depth for t in inner):
        raise ValueError(
            f"random-effects term inside {src!r} in {what} must stand on its own, added "
            "with `+` (e.g. `y ~ x + (1 | g)`), not inside a function or combined with "
            "`*`, `:` or `^`."
        )
    if seg.sign != "+":
        raise ValueError(f"cannot subtract the random-effects term {src!r} in {what}; "
                         "leave it out of the formula instead.")
    return _parse_bar(inner, source, src)


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4-style mixed-model formula.

    Parameters
    ----------
    text : str
        A formula such as ``"Reaction ~ Days + (Days | Subject)"``.  Random
        terms are ``(lhs | g)``; ``(x | g)`` implies an intercept (as in R),
        ``0 +`` or ``-1 +`` removes it; ``||`` makes the terms independent;
        ``g1/g2`` nests and ``g1:g2`` interacts grouping factors.  The response
        may be a column, an expression or ``cbind(successes, failures)``.

    Returns
    -------
    ParsedFormula
        Response, fixed-effect part for formulaic and the expanded random terms.

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        If the formula is malformed; the message quotes it and says what to fix.

    Examples
    --------
    >>> from vctest.formula import parse_formula
    >>> f = parse_formula("Reaction ~ Days + (Days || Subject)")
    >>> f.fixed
    'Days'
    >>> [t.label for t in f.random]
    ['(1 | Subject)', '(0 + Days | Subject)']
    >>> [t.group for t in parse_formula("strength ~ 1 + (1 | batch/cask)").random]
    ['batch', 'cask:batch']
    >>> parse_formula("cbind(k, n - k) ~ period + (1 | herd)").response.parts
    ('k', 'n - k')
    """
    if not isinstance(text, str):
        raise TypeError(f"`formula` must be a string such as 'y ~ x + (1 | g)'; got "
                        f"{type(text).__name__}.")
    return _parse(text)


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> ParsedFormula:
    """:func:`parse_formula` of a string (cached: a frozen result of the text alone)."""
    source = text.strip()
    what = f"formula {source!r}"
    tokens = _tokenize(source, what)
    tildes = [i for i, t in enumerate(tokens) if t.kind == "op" and t.text == "~"]
    if not tildes:
        raise ValueError(f"{what} has no `~`; write it as 'response ~ terms', "
                         "e.g. 'y ~ x + (1 | g)'.")
    if len(tildes) > 1 or tokens[tildes[0]].depth:
        raise ValueError(f"{what} must have exactly one `~` outside parentheses.")
    lhs, rhs = tokens[: tildes[0]], tokens[tildes[0] + 1 :]
    if not lhs:
        raise ValueError(f"{what} has an empty left-hand side; name the response before "
                         "`~`, e.g. 'y ~ x + (1 | g)'.")
    if not rhs:
        raise ValueError(f"{what} has an empty right-hand side; write at least '1' "
                         "after `~`.")
    response = _parse_response(lhs, source, what)
    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    smooths: list[SmoothTerm] = []
    for seg in _split(rhs, ("+", "-")):
        if not seg.tokens:
            raise ValueError(f"{what} has an empty term (a stray `{seg.sign}`); remove it.")
        smooth = _smooth(seg, source, what)
        if smooth is not None:
            if any(sm.label == smooth.label for sm in smooths):
                raise ValueError(f"{what} has two smooth terms of {smooth.variable!r}; keep "
                                 "one.")
            smooths.append(smooth)
            continue
        terms = _classify(seg, source, what)
        if terms is None:
            item = seg.text(source).strip()
            if fixed_parts:
                fixed_parts.append(f"{seg.sign} {item}")
            else:
                fixed_parts.append(item if seg.sign == "+" else f"-{item}")
        else:
            random.extend(terms)
    fixed = " ".join(fixed_parts) if fixed_parts else "1"
    return ParsedFormula(text=source, response=response, fixed=fixed, random=tuple(random),
                         smooths=tuple(smooths))


def random_term_from_text(text: str) -> tuple[RandomTerm, ...]:
    """Parse random-effects term(s) written by a user.

    Parameters
    ----------
    text : str
        One bar term with or without parentheses (``"(0 + Days | Subject)"``,
        ``"0 + Days | Subject"``), or several joined by ``+``.

    Returns
    -------
    tuple of RandomTerm
        The terms after expanding ``||`` and ``/`` exactly as
        :func:`parse_formula` does.

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        If the text is not random-effects terms (the message says why).

    Examples
    --------
    >>> from vctest.formula import random_term_from_text
    >>> [t.label for t in random_term_from_text("Days || Subject")]
    ['(1 | Subject)', '(0 + Days | Subject)']
    >>> random_term_from_text("(0 + Days | Subject)")[0].intercept
    False
    """
    if not isinstance(text, str):
        raise TypeError(f"`term` must be a string such as '(1 | g)'; got "
                        f"{type(text).__name__}.")
    source = text.strip()
    what = f"term {source!r}"
    tokens = tuple(_tokenize(source, what))
    if not tokens:
        raise ValueError("`term` is empty; write a random-effects term such as '(1 | g)'.")
    inner = _unwrap(tokens)
    if inner and any(_is_bar(t) and t.depth == inner[0].depth for t in inner):
        return tuple(_parse_bar(inner, source, source))
    terms: list[RandomTerm] = []
    for seg in _split(tokens, ("+", "-")):
        found = _classify(seg, source, what) if seg.tokens else None
        if found is None:
            raise ValueError(
                f"{what} is not a random-effects term; write it as '(lhs | group)', "
                "e.g. '(1 | g)' or '(0 + x | g)'."
            )
        terms.extend(found)
    return tuple(terms)
