# Checks the ctypes binding against the public C headers.
# SPDX-License-Identifier: MIT
"""Parse include/diana/*.h and compare with bindings/python/diana.

Every ``DIANA_API`` function must be declared in ``diana._lib.DECLARATIONS``
with the ctypes restype/argtypes that the C prototype maps to; every
``typedef struct`` with fields must match its ctypes Structure field by
field; every callback typedef must match its CFUNCTYPE; every enum value must
exist as a constant of the ``diana`` package; every ``DIANA_*_VERSION`` macro
must match the struct layout the binding declares.

Run as a script to print the problems: python3 headers.py include/diana
"""

import ctypes
import pathlib
import re
import sys
from ctypes import (POINTER, c_char, c_char_p, c_double, c_int, c_int32, c_int64,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

SCALARS = {
    "int": c_int,
    "int32_t": c_int32,
    "uint32_t": c_uint32,
    "int64_t": c_int64,
    "uint64_t": c_uint64,
    "size_t": c_size_t,
    "uint8_t": c_uint8,
    "char": c_char,
    "double": c_double,
}


class Unmapped(Exception):
    """A C type with no mapping rule: decide one and add it here."""


def strip(text):
    """Header text without comments and preprocessor lines."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"\\\n", " ", text)
    return "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("#"))


def split_decl(decl):
    """'const char *name' -> ('const char *', 'name')."""
    decl = " ".join(decl.replace("*", " * ").split())
    m = re.match(r"^(.*?)\s*\b(\w+)\s*$", decl)
    if not m or not m.group(1) or m.group(1).strip() in ("const", "struct"):
        return decl, ""  # unnamed parameter
    return m.group(1), m.group(2)


def ctypes_of(ctype, role, c_types):
    """ctypes type for a C type used as 'arg', 'ret' or 'field'.

    Rules (the binding's conventions, STYLE 6.23/6.24):
      T (scalar)            -> c_T
      T *  (scalar, out)    -> POINTER(c_T)
      const char *          -> c_char_p (input string / borrowed static result)
      const uint8_t *       -> c_char_p (input buffer, passed with its length)
      char ** / uint8_t **  -> POINTER(c_void_p) (owned memory, freed by diana_free)
      const char *const *   -> POINTER(c_char_p) (input array of strings)
      void *                -> c_void_p
      void (ret)            -> None
      handle/struct T *..*  -> POINTER(..POINTER(T))
      callback typedef      -> its CFUNCTYPE
    """
    words = ctype.replace("*", " * ").split()
    const = "const" in words
    words = [w for w in words if w not in ("const", "struct", "enum")]
    stars = words.count("*")
    base = [w for w in words if w != "*"]
    if len(base) != 1:
        raise Unmapped(ctype)
    base = base[0]
    if base in c_types:
        t = c_types[base]
        if isinstance(t, type) and issubclass(t, ctypes._CFuncPtr):
            if stars:
                raise Unmapped(ctype)
            return t
        if stars == 0:
            raise Unmapped(ctype + " (struct by value)")
        for _ in range(stars):
            t = POINTER(t)
        return t
    if base == "void":
        if stars == 0 and role == "ret":
            return None
        if stars == 1:
            return c_void_p
        raise Unmapped(ctype)
    if base in ("char", "uint8_t"):
        if stars == 1 and const:
            return c_char_p
        if stars == 2 and role == "arg" and not const:
            return POINTER(c_void_p)  # const char ** (borrowed out) needs a rule first
        if stars == 2 and role == "arg" and base == "char" and ctype.replace(" ", "") == "constchar*const*":
            return POINTER(c_char_p)  # an input array of strings
        if stars == 0 and base in SCALARS:
            return SCALARS[base]
        raise Unmapped(ctype)
    if base in SCALARS:
        t = SCALARS[base]
        if stars == 0:
            return t
        if stars == 1 and role == "arg" and not const:
            return POINTER(t)
        raise Unmapped(ctype)
    if base.endswith("_t") and base.startswith("diana_") and stars == 0:
        raise Unmapped(ctype + " (pass enums as int / uint32_t)")
    raise Unmapped(ctype)


def parse(text):
    """Declarations of one header: dict with functions, structs, opaque,
    callbacks, enums, versions."""
    src = strip(text)
    out = {"functions": {}, "structs": {}, "opaque": [], "callbacks": {},
           "enums": {}, "versions": {}, "unparsed": []}

    for m in re.finditer(r"\bDIANA_API\b([^;]*);", src):
        decl = m.group(1)
        f = re.match(r"^\s*(.*?)\b(diana_\w+)\s*\((.*)\)\s*(?:DIANA_NOEXCEPT)?\s*$", decl, re.S)
        if not f:
            out["unparsed"].append(" ".join(decl.split()))
            continue
        ret, name, params = " ".join(f.group(1).split()), f.group(2), f.group(3).strip()
        if "(" in params:
            out["unparsed"].append(name + ": function pointer parameter (use a typedef)")
            continue
        args = [] if params in ("", "void") else [split_decl(p)[0] for p in params.split(",")]
        out["functions"][name] = (ret, args)

    for m in re.finditer(r"\btypedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", src, re.S):
        fields = []
        for d in m.group(2).split(";"):
            d = " ".join(d.split())
            if not d:
                continue
            a = re.match(r"^(.*\w)\s*\[(\d+)\]$", d)
            if a:
                t, n = split_decl(a.group(1))
                fields.append((n, t, int(a.group(2))))
            else:
                t, n = split_decl(d)
                fields.append((n, t, None))
        out["structs"][m.group(3)] = fields

    for m in re.finditer(r"\btypedef\s+struct\s+(\w+)\s+(\w+)\s*;", src):
        out["opaque"].append(m.group(2))

    for m in re.finditer(r"\btypedef\s+([^;()]*?)\(\s*\*\s*(\w+)\s*\)\s*\(([^;]*?)\)\s*;", src):
        params = m.group(3).strip()
        args = [] if params in ("", "void") else [split_decl(p)[0] for p in params.split(",")]
        out["callbacks"][m.group(2)] = (" ".join(m.group(1).split()), args)

    for m in re.finditer(r"\btypedef\s+enum\s+\w*\s*\{(.*?)\}\s*\w+\s*;", src, re.S):
        for item in m.group(1).split(","):
            item = " ".join(item.split())
            if not item:
                continue
            e = re.match(r"^(DIANA_\w+)\s*=\s*(.+)$", item)
            expr = re.sub(r"\b(\d+)[uU]\b", r"\1", e.group(2)) if e else ""
            if not e or not re.match(r"^[-\d\s<>|()+]+$", expr):
                out["unparsed"].append("enum item " + item)
                continue
            out["enums"][e.group(1)] = eval(expr, {"__builtins__": {}})  # digits and operators only

    for m in re.finditer(r"^\s*#\s*define\s+(DIANA_\w+_VERSION)\s+(\d+)\s*$", text, re.M):
        out["versions"][m.group(1)] = int(m.group(2))
    return out


def _same(a, b):
    if a is b:
        return True
    # array types: compare element type and length
    return (isinstance(a, type) and isinstance(b, type) and issubclass(a, ctypes.Array)
            and issubclass(b, ctypes.Array) and a._type_ is b._type_ and a._length_ == b._length_)


def _name(t):
    return "None" if t is None else getattr(t, "__name__", repr(t))


def check_parsed(decls, lib, package):
    """Problems (list of str) between parsed header declarations and the binding."""
    problems = list("cannot parse: " + u for u in decls["unparsed"])
    c_types = lib.C_TYPES

    def mapped(ctype, role, where):
        try:
            return ctypes_of(ctype, role, c_types), None
        except Unmapped as e:
            return None, "%s: no ctypes mapping for C type %r" % (where, str(e))

    for name, (ret, args) in decls["functions"].items():
        if name not in lib.DECLARATIONS:
            problems.append("%s: declared in the headers but not in the binding" % name)
            continue
        restype, argtypes = lib.DECLARATIONS[name][:2]
        want, err = mapped(ret, "ret", name)
        if err:
            problems.append(err)
        elif not _same(want, restype):
            problems.append("%s: restype %s, header says %r -> %s"
                            % (name, _name(restype), ret, _name(want)))
        if len(args) != len(argtypes):
            problems.append("%s: %d argtypes, header has %d parameters"
                            % (name, len(argtypes), len(args)))
            continue
        for i, (a, t) in enumerate(zip(args, argtypes)):
            want, err = mapped(a, "arg", name)
            if err:
                problems.append(err)
            elif not _same(want, t):
                problems.append("%s: argument %d is %s, header says %r -> %s"
                                % (name, i + 1, _name(t), a, _name(want)))

    for name, fields in decls["structs"].items():
        st = c_types.get(name)
        if st is None:
            problems.append("struct %s: no ctypes Structure in _lib.C_TYPES" % name)
            continue
        have = list(getattr(st, "_fields_", []))
        if len(have) != len(fields):
            problems.append("struct %s: %d fields in the binding, %d in the header"
                            % (name, len(have), len(fields)))
        for (fname, ctype, length), h in zip(fields, have):
            want, err = mapped(ctype, "field", "struct %s.%s" % (name, fname))
            if err:
                problems.append(err)
                continue
            if length is not None:
                want = want * length
            if h[0] != fname or not _same(want, h[1]):
                problems.append("struct %s: field %s %s in the binding, header has %s %r"
                                % (name, h[0], _name(h[1]), fname, ctype))

    for name in decls["opaque"]:
        st = c_types.get(name)
        if st is None or not issubclass(st, ctypes.Structure) or getattr(st, "_fields_", None):
            problems.append("handle %s: needs its own empty ctypes.Structure in _lib.C_TYPES" % name)
        elif sum(1 for t in c_types.values() if t is st) != 1:
            problems.append("handle %s: Structure shared with another C type" % name)

    for name, (ret, args) in decls["callbacks"].items():
        cb = c_types.get(name)
        if cb is None:
            problems.append("callback %s: no CFUNCTYPE in _lib.C_TYPES" % name)
            continue
        want, err = mapped(ret, "ret", name)
        if err:
            problems.append(err)
        elif not _same(want, cb._restype_):
            problems.append("callback %s: returns %s, header says %r" % (name, _name(cb._restype_), ret))
        if len(args) != len(cb._argtypes_):
            problems.append("callback %s: %d arguments, header has %d"
                            % (name, len(cb._argtypes_), len(args)))
            continue
        for i, (a, t) in enumerate(zip(args, cb._argtypes_)):
            want, err = mapped(a, "arg", name)
            if err:
                problems.append(err)
            elif not _same(want, t):
                problems.append("callback %s: argument %d is %s, header says %r"
                                % (name, i + 1, _name(t), a))

    for cname, value in decls["enums"].items():
        pyname = cname[len("DIANA_"):]
        if not hasattr(package, pyname):
            problems.append("constant %s: missing as diana.%s" % (cname, pyname))
        elif getattr(package, pyname) != value:
            problems.append("constant %s = %d but diana.%s = %r"
                            % (cname, value, pyname, getattr(package, pyname)))

    for cname, value in decls["versions"].items():
        if cname not in lib.STRUCT_VERSIONS:
            problems.append("%s: unknown to the binding (_lib.STRUCT_VERSIONS)" % cname)
        elif lib.STRUCT_VERSIONS[cname][1] != value:
            problems.append("%s is %d in the header but the binding's %s layout is version %d"
                            % (cname, value, lib.STRUCT_VERSIONS[cname][0].__name__,
                               lib.STRUCT_VERSIONS[cname][1]))
    return problems


def parse_dir(include_dir):
    """Merged declarations of every *.h of include_dir."""
    merged = {"functions": {}, "structs": {}, "opaque": [], "callbacks": {},
              "enums": {}, "versions": {}, "unparsed": []}
    for h in sorted(pathlib.Path(include_dir).glob("*.h")):
        d = parse(h.read_text(encoding="utf-8"))
        for k, v in d.items():
            if isinstance(v, dict):
                merged[k].update(v)
            else:
                merged[k].extend(v)
    return merged


def check(include_dir, lib, package):
    decls = parse_dir(include_dir)
    problems = check_parsed(decls, lib, package)
    for name in sorted(set(lib.DECLARATIONS) - set(decls["functions"])):
        problems.append("%s: declared in the binding but not in any header" % name)
    return problems


if __name__ == "__main__":
    import diana
    from diana import _lib
    found = check(sys.argv[1] if len(sys.argv) > 1 else "include/diana", _lib, diana)
    print("\n".join(found) or "binding matches the headers")
    sys.exit(1 if found else 0)
