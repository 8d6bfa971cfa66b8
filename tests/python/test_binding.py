# The binding against the C headers and the loaded library.
# SPDX-License-Identifier: MIT

import ctypes
import os
import re
import subprocess
import sys
import textwrap

import pytest

import diana
import headers
from conftest import INCLUDE_DIR, REPO
from diana import _lib


def test_binding_matches_headers():
    problems = headers.check(INCLUDE_DIR, _lib, diana)
    assert problems == [], "\n".join(problems)


def test_headers_parsed():
    # the parser must actually see the API, or the check above proves nothing
    decls = headers.parse_dir(INCLUDE_DIR)
    assert decls["unparsed"] == []
    assert {"diana_init", "diana_error_message", "diana_dataset_open",
            "diana_dataset_foreach"} <= set(decls["functions"])
    assert decls["functions"]["diana_dataset_get"] == (
        "int", ["const diana_dataset *", "const char *", "char * *"])
    assert "diana_dataset" in decls["opaque"]
    assert [f[0] for f in decls["structs"]["diana_element"]][:3] == ["version", "tag", "vr"]
    assert decls["enums"]["DIANA_ENOTFOUND"] == -5
    assert decls["enums"]["DIANA_OPEN_SKIP_PIXELS"] == 2
    assert {"diana_log_fn", "diana_element_fn", "diana_find_fn"} <= set(decls["callbacks"])


NEW_API = """
typedef struct diana_fakejob diana_fakejob;
typedef enum { DIANA_FAKEJOB_FAST = 1u << 3 } diana_fakejob_flag_t;
#define DIANA_FAKEJOB_OPTIONS_VERSION 1
typedef struct diana_x { uint32_t version; int32_t depth; } diana_x;
typedef int (*diana_fakejob_fn)(const diana_fakejob *job, void *user_data);
DIANA_API int diana_fakejob_new(diana_fakejob **out, const char *name) DIANA_NOEXCEPT;
DIANA_API int diana_dataset_get(const diana_dataset *ds, const char *key, const char **out) DIANA_NOEXCEPT;
DIANA_API int diana_dataset_free(diana_dataset *ds) DIANA_NOEXCEPT;
DIANA_API const diana_dataset *diana_dataset_save(diana_dataset_options o, long x) DIANA_NOEXCEPT;
DIANA_API int diana_log_set_level(int level, int extra) DIANA_NOEXCEPT;
"""


def test_check_reports_differences():
    # a C API the binding does not follow must be reported, item by item
    decls = headers.parse(NEW_API)
    problems = "\n".join(headers.check_parsed(decls, _lib, diana))
    for expected in [
        "diana_fakejob_new: declared in the headers but not in the binding",
        "handle diana_fakejob: needs its own empty ctypes.Structure",
        "constant DIANA_FAKEJOB_FAST: missing as diana.FAKEJOB_FAST",
        "DIANA_FAKEJOB_OPTIONS_VERSION: unknown to the binding",
        "struct diana_x: no ctypes Structure",
        "callback diana_fakejob_fn: no CFUNCTYPE",
        "diana_dataset_get: no ctypes mapping for C type 'const char * *'",
        "diana_dataset_free: restype None, header says 'int'",
        "diana_dataset_save: no ctypes mapping for C type 'diana_dataset_options (struct by value)'",
        "diana_log_set_level: 1 argtypes, header has 2 parameters",
    ]:
        assert expected in problems
    wrong = headers.parse("DIANA_API void diana_free(const char *p) DIANA_NOEXCEPT;")
    assert headers.check_parsed(wrong, _lib, diana) == [
        "diana_free: argument 1 is c_void_p, header says 'const char *' -> c_char_p"]


def test_check_reports_struct_and_version_drift():
    drift = headers.parse(textwrap.dedent("""\
        #define DIANA_ELEMENT_VERSION 2
        typedef struct diana_dataset_options {
            uint32_t version; uint32_t flags; uint64_t max_size; int64_t timeout_ms;
        } diana_dataset_options;
        typedef struct diana_element { uint32_t version; uint32_t tag; char vr[3]; } diana_element;
        """))
    problems = "\n".join(headers.check_parsed(drift, _lib, diana))
    assert "DIANA_ELEMENT_VERSION is 2 in the header" in problems
    assert "struct diana_dataset_options: 3 fields in the binding, 4 in the header" in problems
    assert "struct diana_element: field vr c_char_Array_4 in the binding" in problems


def test_every_declared_function_is_exported():
    assert _lib.missing == [], "not exported by %s" % _lib.path
    for name in _lib.DECLARATIONS:
        fn = getattr(_lib.api, name)
        assert fn.argtypes is not None and fn is getattr(_lib.cdll, name)


def test_exported_symbols_are_declared():
    # the reverse direction: nothing exported that the headers do not declare
    nm = subprocess.run(["nm", "-D", "--defined-only", _lib.path],
                        capture_output=True, text=True, check=True).stdout
    exported = set(re.findall(r"\b(diana_\w+?)(?:@@?\w[\w.]*)?$", nm, re.M))
    assert exported, nm
    assert exported - set(_lib.DECLARATIONS) == set()


def test_opaque_handles_are_distinct_types():
    assert issubclass(_lib.diana_dataset, ctypes.Structure)
    assert _lib.P_dataset is ctypes.POINTER(_lib.diana_dataset)
    assert _lib.DECLARATIONS["diana_dataset_free"][1] == [_lib.P_dataset]
    assert _lib.DECLARATIONS["diana_dataset_get"][1][2] is ctypes.POINTER(ctypes.c_void_p)


def test_wrong_handle_types_raise_argument_error():
    api = _lib.api
    null_opts = ctypes.cast(None, ctypes.POINTER(_lib.diana_dataset_options))
    null_element_fn = _lib.diana_element_fn()
    # wrong-typed NULLs: if ctypes let one through, C would only see NULL
    with pytest.raises(ctypes.ArgumentError):
        api.diana_dataset_free(null_opts)
    with pytest.raises(ctypes.ArgumentError):
        api.diana_dataset_free(ctypes.c_void_p())
    with pytest.raises(ctypes.ArgumentError):
        api.diana_dataset_free(0)
    with pytest.raises(ctypes.ArgumentError):
        api.diana_dataset_get(null_opts, b"PatientName", ctypes.byref(ctypes.c_void_p()))
    with pytest.raises(ctypes.ArgumentError):
        api.diana_dataset_to_json(ctypes.c_void_p(), 0, ctypes.byref(ctypes.c_void_p()))
    with pytest.raises(ctypes.ArgumentError):  # char ** must be a void * slot
        api.diana_dataset_get(_lib.P_dataset(), b"x", ctypes.byref(ctypes.c_char_p()))
    with pytest.raises(ctypes.ArgumentError):
        api.diana_log_set_handler(null_element_fn, None)
    with pytest.raises(ctypes.ArgumentError):
        api.diana_log_set_handler(lambda *a: None, None)
    with pytest.raises(ctypes.ArgumentError):
        api.diana_version(ctypes.byref(ctypes.c_uint32()), None, None)
    with pytest.raises(ctypes.ArgumentError):
        api.diana_dataset_foreach(_lib.P_dataset(), 0, _lib.diana_log_fn(), None)


def test_null_handles_are_einval():
    # and the right types with NULL values reach C, which refuses them
    api = _lib.api
    out = ctypes.c_void_p()
    with pytest.raises(diana.DianaError) as e:
        api.diana_dataset_get(_lib.P_dataset(), b"PatientName", ctypes.byref(out))
    assert e.value.code == diana.EINVAL and out.value is None
    with pytest.raises(diana.DianaError) as e:
        api.diana_dataset_open(None, b"/nonexistent", None)
    assert e.value.code == diana.EINVAL
    api.diana_dataset_free(None)  # no-op
    api.diana_free(None)


def _run(code, **env):
    pythonpath = [str(REPO / "bindings" / "python")] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environ = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join(pythonpath))
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, cwd=str(REPO), timeout=60)


def test_missing_library_is_import_error():
    r = _run("import diana", DIANA_LIBRARY="/nonexistent/libdiana.so.0")
    assert r.returncode != 0
    assert "ImportError: cannot load libdiana from '/nonexistent/libdiana.so.0'" in r.stderr


def test_other_library_is_import_error():
    r = _run("import diana", DIANA_LIBRARY="libz.so.1")
    assert r.returncode != 0
    assert "ImportError: libz.so.1 is not libdiana" in r.stderr


MAJOR_1 = """
import ctypes
real = ctypes.CDLL
@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
                  ctypes.POINTER(ctypes.c_int))
def version_1_0_0(major, minor, patch):
    major[0], minor[0], patch[0] = 1, 0, 0
    return 0
class Major1(real):
    def __getattr__(self, name):
        if name == "diana_version":
            return version_1_0_0
        return real.__getattr__(self, name)
ctypes.CDLL = Major1
import diana
"""


def test_major_mismatch_is_import_error():
    r = _run(MAJOR_1)
    assert r.returncode != 0
    assert re.search(r"ImportError: libdiana \S+ at \S+ is incompatible with this binding "
                     r"\(written for major version 0\)", r.stderr), r.stderr


def test_missing_symbol_raises_not_implemented():
    # a library older than a declared function: the import works, the call says why
    r = _run("import ctypes; real = ctypes.CDLL\n"
             "class Old(real):\n"
             "    def __getattr__(self, name):\n"
             "        if name == 'diana_dataset_save':\n"
             "            raise AttributeError(name)\n"
             "        return real.__getattr__(self, name)\n"
             "ctypes.CDLL = Old\n"
             "import diana\n"
             "print(diana._lib.missing, diana._lib.has('diana_dataset_save'))\n"
             "diana._lib.api.diana_dataset_save(None, b'x')\n")
    assert r.stdout.strip() == "['diana_dataset_save'] False", r.stderr
    assert "NotImplementedError: diana_dataset_save (libdiana >= 0.1) is not exported" in r.stderr


def test_init_at_import_and_shutdown_at_exit():
    # import took one reference; the atexit hook gives exactly that one back
    r = _run("import diana\n"
             "api = diana._lib.api\n"
             "assert api.diana_init() == 2 and api.diana_shutdown() == 1\n"
             "diana._shutdown()\n"
             "try:\n"
             "    api.diana_shutdown()\n"
             "except diana.DianaError as e:\n"
             "    print(e.name)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ENOTINIT"


def test_exit_with_handler_and_open_dataset(ct_path):
    # interpreter exit with a live dataset and a log handler must be clean
    r = _run("import diana, sys\n"
             "diana.set_log_handler(lambda *a: print(*a), diana.LOG_DEBUG)\n"
             "ds = diana.Dataset(sys.argv[1])\n"
             "keep = [ds]\n".replace("sys.argv[1]", repr(str(ct_path))))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
