# libdiana Python binding: ctypes declarations of include/diana/dose.h.
# SPDX-License-Identifier: MIT
"""Declarations of dose.h: name -> (restype, argtypes, errcheck?, since), merged
into diana._lib.DECLARATIONS (same rules, see _lib.py)."""

DECLARATIONS = {}
