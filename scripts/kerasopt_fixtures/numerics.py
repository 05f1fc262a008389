"""Scalar arithmetic in one dtype with one rounding per op, and the two pow functions we compare.

numpy scalars of one dtype already round once per + - * / sqrt (float16 goes through float32, which is
harmless: float32 carries more than 2*11+2 bits). What needs care is pow, which TF's CPU kernel takes
from the C library, and casts, which TF sometimes routes through float32 (tf.cast of a Python float).
"""
import ctypes
import ctypes.util
import decimal

import numpy as np

DTYPES = {'float16': np.float16, 'float32': np.float32, 'float64': np.float64}

_libm = ctypes.CDLL(ctypes.util.find_library('m') or 'libm.so.6')
_powf = _libm.powf
_powf.restype, _powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
_pow = _libm.pow
_pow.restype, _pow.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]

_CTX = decimal.Context(prec=70)


def _nearest(exact, approx, t):
    """Correctly rounds the Decimal `exact` to dtype t, given `approx` = float(exact) (already correct for float64)."""
    r = t(approx)
    if t is np.float64 or not np.isfinite(r):
        return r
    # float(exact) is correct in double; rounding that double again to t can only go wrong when it
    # sits exactly on a midpoint of t. Then the Decimal decides.
    other = np.nextafter(r, t(np.inf) if float(r) < approx else t(-np.inf), dtype=t)
    if (float(r) + float(other)) / 2 == approx and float(other) != float(r):
        above = exact.compare(decimal.Decimal(approx)) > 0
        return max(r, other) if above else min(r, other)
    return r


def pow_correctly_rounded(a, b, t):
    """a**b (a > 0) correctly rounded to dtype t, from a 70-digit evaluation."""
    a, b = float(a), float(b)
    if a == 1.0 or b == 0.0:
        return t(1.0)
    if a <= 0.0 or not np.isfinite(a) or not np.isfinite(b):
        return t(float(np.power(np.float64(a), np.float64(b))))
    exact = _CTX.exp(_CTX.multiply(_CTX.ln(decimal.Decimal(a)), decimal.Decimal(b)))
    try:
        approx = float(exact)
    except OverflowError:
        approx = float('inf')
    return _nearest(exact, approx, t)


def pow_glibc(a, b, t):
    """What TF's CPU Pow kernel computes on Linux: powf for float32 (and, through float32, float16), pow for float64."""
    if t is np.float64:
        return np.float64(_pow(float(a), float(b)))
    return t(np.float32(_powf(float(a), float(b))))


POW = {'correctly-rounded': pow_correctly_rounded, 'glibc': pow_glibc}


class Arith:
    """One dtype's scalar ops. Every method returns a numpy scalar of that dtype."""

    def __init__(self, dtype, pow_mode='correctly-rounded'):
        self.dtype = dtype
        self.t = DTYPES[dtype]
        self.pow_mode = pow_mode
        self._pow = POW[pow_mode]

    def c(self, x):
        """convert_to_tensor(python_float, dtype): one rounding from the double."""
        return self.t(x)

    def via32(self, x):
        """tf.cast(python_float, dtype): TF makes a float32 tensor first, then casts it."""
        return self.t(np.float32(x))

    def pow(self, a, b):
        return self._pow(self.t(a), self.t(b), self.t)

    def check(self, *xs):
        for x in xs:
            assert getattr(x, 'dtype', None) == self.t, (x, type(x), self.t)
