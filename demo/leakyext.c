/* A native extension with a leak, as a model server might have: `tokenize` keeps a scratch buffer
 * per call that it never frees; `normalize` allocates and frees cleanly. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

static PyObject *tokenize(PyObject *self, PyObject *args) {
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#", &text, &len)) return NULL;
    /* The leak: a 16 KiB vocabulary scratch table per call, never freed. */
    char *scratch = malloc(16384 + (size_t)len);
    if (!scratch) return PyErr_NoMemory();
    memcpy(scratch, text, (size_t)len);
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

static PyMethodDef methods[] = {
    {"tokenize", tokenize, METH_VARARGS, "Count tokens (leaks a scratch table per call)."},
    {"normalize", normalize, METH_VARARGS, "Lower-case a string (no leak)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "leakyext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_leakyext(void) { return PyModule_Create(&module); }
