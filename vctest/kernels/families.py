"""Families and links of the engine: one observation's mean, weight, score and deviance.

Binomial (response a proportion, prior weights = trials) with the logit, probit
and cloglog links, and Poisson with the log link.  :func:`family_row` gives,
at linear predictor eta, the mean, the PIRLS weight ``wt mu'(eta)^2 / V(mu)``,
the score ``wt mu'(eta) (y - mu) / V(mu)`` and the deviance residual (R's
``family$dev.resids``); :func:`saturated_constant` the normalising constant
that turns the deviance into R's ``family$aic`` (-2 log-likelihood).
"""

from __future__ import annotations

import math

from vctest.kernels._jit import jit
from vctest.kernels.types import LOGIT, POISSON, PROBIT

#: Step halvings tried per PIRLS / IRLS iteration.
MAX_HALVINGS = 40

_ETA_MAX = 700.0
_PROBIT_MAX = 37.0
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@jit(internal=True)
def family_row(fam, link, eta, y, wt):
    """One observation at linear predictor ``eta``: ``(mu, w, score, dev)``.

    ``w = wt mu'(eta)^2 / V(mu)`` (the PIRLS weight), ``score = wt mu'(eta)
    (y - mu) / V(mu)`` and ``dev`` the deviance residual (R's
    ``family$dev.resids``).  Logs of mu and 1 - mu are taken from eta
    directly, so extreme eta does not produce log(0).
    """
    if fam == POISSON:
        e = min(eta, _ETA_MAX)
        mu = math.exp(e)
        dev = 2.0 * wt * ((y * (math.log(y) - e) if y > 0.0 else 0.0) - (y - mu))
        return mu, wt * mu, wt * (y - mu), dev
    if link == LOGIT:
        if eta >= 0.0:
            ex = math.exp(-eta)
            l1p = math.log1p(ex)
            mu = 1.0 / (1.0 + ex)
            one_m = ex / (1.0 + ex)
            log_mu, log_1m = -l1p, -eta - l1p
        else:
            ex = math.exp(eta)
            l1p = math.log1p(ex)
            mu = ex / (1.0 + ex)
            one_m = 1.0 / (1.0 + ex)
            log_mu, log_1m = eta - l1p, -l1p
        w = wt * mu * one_m
        score = wt * (y - mu)
    else:
        if link == PROBIT:
            e = min(max(eta, -_PROBIT_MAX), _PROBIT_MAX)
            mu = 0.5 * math.erfc(-e / _SQRT2)
            one_m = 0.5 * math.erfc(e / _SQRT2)
            log_mu, log_1m = math.log(mu), math.log(one_m)
            dens = math.exp(-0.5 * e * e) * _INV_SQRT_2PI
        else:  # cloglog
            e = min(max(eta, -_ETA_MAX), _ETA_MAX)
            ee = math.exp(e)
            one_m = math.exp(-ee)
            mu = -math.expm1(-ee)
            log_mu, log_1m = math.log(mu), -ee
            dens = math.exp(e - ee)
        v = mu * one_m
        if v > 1e-300:
            ratio = dens / v
            w = wt * dens * ratio
            score = wt * ratio * (y - mu)
        else:
            w = 0.0
            score = 0.0
    # y = 1 and y = 0 (Bernoulli rows) skip a log(1) = 0: the same numbers, bit for bit
    a = 0.0 if not y > 0.0 else (0.0 - log_mu if y == 1.0 else y * (math.log(y) - log_mu))
    b = 0.0 if not y < 1.0 else (0.0 - log_1m if y == 0.0 else (1.0 - y) * (
        math.log(1.0 - y) - log_1m))
    return mu, w, score, 2.0 * wt * (a + b)


@jit(inline=True)
def canonical_row(fam, eta, y, wt):
    """One observation of a canonical link (Poisson's log, else the binomial logit):
    ``(w, score, dw/deta)`` -- :func:`family_row`'s weight and score by the same
    arithmetic, and the weight's derivative, ``w`` (log) or ``w (1 - 2 mu)`` (logit)."""
    if fam == POISSON:
        mu = math.exp(min(eta, _ETA_MAX))
        return wt * mu, wt * (y - mu), wt * mu
    if eta >= 0.0:
        ex = math.exp(-eta)
        mu = 1.0 / (1.0 + ex)
        one_m = ex / (1.0 + ex)
    else:
        ex = math.exp(eta)
        mu = ex / (1.0 + ex)
        one_m = 1.0 / (1.0 + ex)
    w = wt * mu * one_m
    return w, wt * (y - mu), w * (one_m - mu)


@jit
def saturated_constant(fam, y, wt):
    """``-2 log p(y | mu = y)`` summed: R's ``aic`` = sum of deviance residuals + this."""
    s = 0.0
    for i in range(y.size):
        yi, wi = y[i], wt[i]
        if wi <= 0.0:
            continue
        if fam == POISSON:
            s -= 2.0 * wi * ((yi * math.log(yi) if yi > 0.0 else 0.0) - yi
                             - math.lgamma(yi + 1.0))
        else:
            k = wi * yi
            ll = math.lgamma(wi + 1.0) - math.lgamma(k + 1.0) - math.lgamma(wi - k + 1.0)
            if k > 0.0:
                ll += k * math.log(yi)
            if wi - k > 0.0:
                ll += (wi - k) * math.log(1.0 - yi)
            s -= 2.0 * ll
    return s


@jit
def inverse_link(fam, link, eta, out):
    """mu = g^{-1}(eta) for every element into ``out`` (an entry point for Python)."""
    for i in range(eta.size):
        out[i] = family_row(fam, link, eta[i], 0.0, 0.0)[0]


@jit(internal=True)
def family_rows(fam, link, eta, y, wt, w, score):
    """Fill PIRLS weights and scores at ``eta``; return the sum of deviance residuals."""
    total = 0.0
    for r in range(eta.size):
        _, wr, sr, dr = family_row(fam, link, eta[r], y[r], wt[r])
        w[r] = wr
        score[r] = sr
        total += dr
    return total
