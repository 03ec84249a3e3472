/* peersext: the native extension of scripts/bench-peers' serving workloads, with a known leak
 * (like demo/leakyext.c). score_tokens() keeps a 64 KiB scratch table per call and never frees
 * it; normalize() allocates and frees cleanly. leaked_bytes() is the truth the tools are
 * checked against. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH 65536

static long long leaked;

/* The leak: SCRATCH bytes per call, never freed. */
__attribute__((noinline)) static PyObject *score_tokens(PyObject *self, PyObject *args) {
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#", &text, &len)) return NULL;
    char *scratch = malloc(SCRATCH);
    if (!scratch) return PyErr_NoMemory();
    memcpy(scratch, text, (size_t)(len < SCRATCH ? len : SCRATCH));
    leaked += SCRATCH;
    long tokens = 1;
    for (Py_ssize_t i = 0; i < len; i++) tokens += text[i] == ' ';
    return PyLong_FromLong(tokens);
}

static PyObject *normalize(PyObject *self, PyObject *args) {
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#", &text, &len)) return NULL;
    char *buf = malloc(65536 + (size_t)len);
    if (!buf) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < len; i++) buf[i] = (char)(text[i] | 0x20);
    PyObject *out = PyUnicode_FromStringAndSize(buf, len);
    free(buf);
    return out;
}

static PyObject *leaked_bytes(PyObject *self, PyObject *noargs) { return PyLong_FromLongLong(leaked); }

static PyMethodDef methods[] = {
    {"score_tokens", score_tokens, METH_VARARGS, "Count tokens (leaks a 64 KiB scratch table per call)."},
    {"normalize", normalize, METH_VARARGS, "Lower-case a string (no leak)."},
    {"leaked_bytes", leaked_bytes, METH_NOARGS, "Bytes leaked so far by score_tokens."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "peersext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_peersext(void) { return PyModule_Create(&module); }
