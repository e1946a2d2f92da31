"""The named inputs of vctest's one engine, and its integer codes.

Every kernel of the engine takes a model as three named tuples -- never a
positional tuple whose slot 11 means different things in two places:

* :class:`Structure` -- the sparsity structure of the blocked penalised
  least-squares system, built once per design (:mod:`vctest.model.structure`);
* :class:`Data` -- the response side: response, prior weights, offset, family
  and link codes, and how a simulated response maps onto this model's units;
* :class:`Settings` -- optimiser and PIRLS tolerances, and the addresses of
  the kernels the engine calls (:mod:`vctest.kernels.calls`).

Codes are plain integers passed at run time (a function passed as an argument,
or a literal frozen into a call site, would compile another specialisation and
defeat the on-disk cache).  Arrays are C-contiguous, writable float64 / int64:
the model layer converts once at the boundary (:func:`vctest.model.structure.f64`).

A linear model (no random effects) is a structure with one empty term: ``k =
[0]``, one level, so the same code fits an LM, a GLM, an LMM and a GLMM.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# families
BINOMIAL, POISSON, GAUSSIAN = 0, 1, 2
# links
LOGIT, PROBIT, CLOGLOG, LOG, IDENTITY = 0, 1, 2, 3, 4

# objectives minimised by the one optimiser
PROFILED = 0  #: profiled deviance (ML) or REML criterion over theta (Gaussian)
LAPLACE_JOINT = 1  #: Laplace over theta, (u, beta) by PIRLS (lme4's nAGQ = 0 stage)
LAPLACE = 2  #: Laplace over (theta, beta), u by PIRLS (nAGQ = 1)
GLM = 3  #: a GLM by IRLS (no random effects; R's ``mustart`` unless beta is finite)

# Slots of ``Settings.calls``: addresses of separately compiled kernels
# (:mod:`vctest.kernels.calls`); 0 where the model's family never calls one.
CALL_PROFILED = 0  #: :func:`vctest.kernels.objective.evaluate_profiled`
CALL_PIRLS = 1  #: :func:`vctest.kernels.objective.evaluate_pirls`
CALL_GRADIENT = 2  #: ``gradient.profiled_gradient`` (Gaussian) / ``laplace_gradient`` (GLMM)
CALL_CROSS = 3  #: :func:`vctest.kernels.pwls.cross_products`
CALL_SCRATCH = 4  #: :func:`vctest.kernels.pwls.scratch`
CALL_SATURATED = 5  #: :func:`vctest.kernels.families.saturated_constant`
CALL_FIT = 6  #: :func:`vctest.kernels.engine.fit_model` (called by the bootstrap)
CALL_REPLICATE = 7  #: :func:`vctest.kernels.bootstrap.replicate`
CALL_EVALUATE = 8  #: :func:`vctest.kernels.objective.evaluate`
CALL_DERIVATIVES = 9  #: :func:`vctest.kernels.optimize.derivatives`
CALL_BFGS = 10  #: :func:`vctest.kernels.optimize.bfgs`
CALL_OPTIMIZE = 11  #: :func:`vctest.kernels.optimize.optimize`
N_CALLS = 12

#: Status of PIRLS / IRLS.
PIRLS_OK, PIRLS_NOT_PD, PIRLS_MAXIT, PIRLS_STALLED, PIRLS_SEPARATED = 0, 1, 2, 3, 4

#: Status of a fit (index = code).
STATUS_TEXT = (
    "projected gradient below tolerance",
    "relative change in objective and parameters below tolerance",
    "iteration limit reached",
    "line search failed to decrease the objective",
    "objective not finite at the starting values",
    "PIRLS failed at the final estimate",
)
CONVERGED_GRADIENT, CONVERGED_CHANGE, MAXITER, LINE_SEARCH, NOT_FINITE, PIRLS_FAILED = range(6)


class Structure(NamedTuple):
    """Sparsity structure of the blocked system ``[Lambda'Z'WZ Lambda + I, ., X'WX]``.

    Term 0 (the grouping factor with most levels) is block diagonal, one
    ``k0 x k0`` block per level; the other random-effect columns and X form a
    dense "rest" block of order ``m_re + p``; the coupling of each level of
    term 0 to the rest is sparse.

    Attributes
    ----------
    n, p, m_re, kmax : int
        Rows, fixed effects, random-effect columns outside term 0, largest k.
    k, nlev : int64 (J,)
        Columns and levels per term.
    toff : int64 (J + 1,)
        Offsets of each term's parameters in theta.
    roff : int64 (J,)
        Offset of term j >= 1 in the rest block.
    codes : int64 (J, n)
        Level of each row in each term.
    zcols : float64 (n, sum k)
        The terms' model-matrix columns; ``zoff`` (J + 1,) their offsets.
    bptr, bidx : int64
        For level g of term 0, ``bidx[bptr[g]:bptr[g + 1]]`` are the rest
        positions it co-occurs with (sorted), then the p positions of X.
    rowslot : int64 (n, J - 1)
        Slot in ``bidx`` of row r's block of term j.
    x : float64 (n, p)
        Fixed-effect matrix (in the engine's units: see :mod:`vctest.model.structure`).
    """

    n: int
    p: int
    m_re: int
    kmax: int
    k: np.ndarray
    nlev: np.ndarray
    toff: np.ndarray
    roff: np.ndarray
    codes: np.ndarray
    zcols: np.ndarray
    zoff: np.ndarray
    bptr: np.ndarray
    bidx: np.ndarray
    rowslot: np.ndarray
    x: np.ndarray


class Data(NamedTuple):
    """The response side of a model.

    Attributes
    ----------
    y : float64 (n,)
        Response in the engine's units (Gaussian: centred and scaled;
        binomial: proportions; Poisson: counts).
    wt : float64 (n,)
        Prior weights (binomial trials; ones for Poisson and, today, Gaussian).
    offset : float64 (n,)
        Offset of the linear predictor (zeros for Gaussian).
    fam, link : int
        Family and link codes.
    reml : int
        1 for the REML criterion (Gaussian only).
    resp_scale : float
        A simulated Gaussian response ``y*`` (generator's units) enters this
        model as ``resp_scale * y* + resp_shift``.
    resp_shift : float64 (n,)
    """

    y: np.ndarray
    wt: np.ndarray
    offset: np.ndarray
    fam: int
    link: int
    reml: int
    resp_scale: float
    resp_shift: np.ndarray


class Settings(NamedTuple):
    """Optimiser and PIRLS settings (one record for every family).

    ``maxiter = 0`` evaluates the objective at the start without optimising
    (a GLMM's joint, nAGQ = 0, objective when ``two_stage`` is 1).
    ``lapack_min``: a dense block of at least this order is factored by LAPACK
    (never inside ``prange``: the bootstrap passes a huge value).
    ``calls``: int64 (:data:`N_CALLS`, 2), the addresses of the kernels the
    engine calls and their signature tags (rows ``CALL_*``; zeros when the
    engine runs as Python; :func:`vctest.kernels.engine.with_calls` fills
    them, :mod:`vctest.kernels.calls`).
    """

    maxiter: int
    gtol: float
    ftol: float
    xtol: float
    restarts: int
    pirls_maxit: int
    pirls_tol: float
    two_stage: int
    lapack_min: int
    calls: np.ndarray


class Start(NamedTuple):
    """How to (re)fit one model: warm start and the optimiser's units.

    Attributes
    ----------
    theta, beta : float64
        Starting values (beta in the engine's units; a non-finite entry
        starts a GLM from R's ``mustart``).
    tscale : float64 (d,)
        The optimiser searches ``theta * tscale`` (root-mean-square of the
        random-effect column each entry multiplies).
    bscale : float64 (p,)
        ... and ``beta * bscale`` (GLMMs).
    is_diag : bool (d,)
        Diagonal entries of the factors T (variance parameters, bound at 0).
    below : int64 (d,)
        For a diagonal entry, how many entries of its column of T follow it.
    """

    theta: np.ndarray
    beta: np.ndarray
    tscale: np.ndarray
    bscale: np.ndarray
    is_diag: np.ndarray
    below: np.ndarray


class Sim(NamedTuple):
    """A fitted model to simulate responses from.

    ``y*_i = eta0_i + sigma (Z Lambda(theta) u)_i + sigma e_i / sqrt(weights_i)``
    (Gaussian, prior weights), or ``y* ~ family(g^-1(eta0 + Z Lambda(theta) u))``
    with ``weights`` the binomial trials, with ``u, e ~ N(0, I)`` drawn in that
    order: u term by term, level by level.
    """

    eta0: np.ndarray
    theta: np.ndarray
    sigma: float
    fam: int
    link: int
    weights: np.ndarray


class Scratch(NamedTuple):
    """Work arrays of one fit, allocated once and reused by every evaluation (an
    allocation per evaluation cost more than the arithmetic on small models).

    Sizes: ``d1 (nlev0, k0, k0)``, ``b0 (nlev0, k0)``, ``bval (len(bidx), k0)``,
    ``c (m, m)`` and ``br, first (m,)`` with ``m = m_re + p``, ``a0 (k0,)``,
    ``pos, val, slot`` (random-effect columns outside term 0 per row, plus p),
    n-vectors for PIRLS and the residuals, ``tu (q,)``, ``tb (p,)``, ``sol, rhs (q + p,)``;
    for a Gaussian model the raw cross-products ``x*`` (formed once per response),
    ``yy = y'Wy`` and, per random-effect column outside term 0, its term and
    column within the term (``pterm``, ``pwithin``).
    """

    d1: np.ndarray
    b0: np.ndarray
    bval: np.ndarray
    c: np.ndarray
    br: np.ndarray
    a0: np.ndarray
    pos: np.ndarray
    val: np.ndarray
    slot: np.ndarray
    first: np.ndarray
    eta: np.ndarray
    w: np.ndarray
    score: np.ndarray
    teta: np.ndarray
    tw: np.ndarray
    tscore: np.ndarray
    s: np.ndarray
    tu: np.ndarray
    tb: np.ndarray
    sol: np.ndarray
    rhs: np.ndarray
    xd1: np.ndarray
    xb0: np.ndarray
    xbval: np.ndarray
    xc: np.ndarray
    xbr: np.ndarray
    yy: np.ndarray
    pterm: np.ndarray
    pwithin: np.ndarray
