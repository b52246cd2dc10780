/* The RTMP chunk reader's hot path in C (media.rtmp._chunks.NativeChunkReader).
 *
 * A line-for-line port of media/rtmp/chunk.py ChunkReader.try_payload and its
 * parse_run loop: the same state per chunk stream id (RTMP 1.0 §5.3.1.2), the same limits
 * (docs/threat-model.md §rtmp), the same errors with the same text, checked at the same
 * points. tests/media/rtmp/test_chunk_native.py runs both on generated and hostile input
 * and requires identical messages, errors and state. The pure-Python reader is used
 * wherever this module is not built (media/rtmp/chunk.py message_run_reader).
 *
 * Why C: a 3 Mbit/s publish is ~140 chunks and ~60 socket reads a second, and in Python the
 * per-chunk bookkeeping was the largest single item of an ingest stream's interpreter time
 * (docs/architecture.md "Ingest hot path"). One call here parses every complete chunk of a
 * read and returns the completed messages.
 *
 * Memory safety: every read of the input is bounds-checked against the buffer length
 * before it happens; partial payloads grow by what was received, never
 * by what a header claims (a header may claim 16 MiB and send one chunk); every size is
 * checked against its limit before anything is allocated.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define DEFAULT_CHUNK_SIZE 128
#define MAX_CHUNK_SIZE 0xFFFFFF
#define EXTENDED_TIMESTAMP_SENTINEL 0xFFFFFF
#define BUFFERED_MESSAGES_FACTOR 2

static const int MESSAGE_HEADER_SIZE[4] = {11, 7, 3, 0};

typedef struct {
    uint32_t csid;
    uint32_t timestamp;       /* absolute timestamp of the current/last message */
    uint32_t timestamp_delta; /* applied when a type-3 chunk starts a new message */
    uint32_t message_length;
    uint32_t message_stream_id;
    uint8_t message_type_id;
    uint8_t extended; /* §5.3.1.3: the last type 0/1/2 header had an extended timestamp */
    uint8_t partial;  /* a message is being reassembled */
    char *payload;
    Py_ssize_t payload_len;
    Py_ssize_t payload_cap;
} Stream;

typedef struct {
    PyObject_HEAD
    long long max_media_message_size;
    long long max_control_message_size;
    long long max_chunk_streams;
    long long max_buffered_bytes;
    long long chunk_size;
    long long buffered;
    long long smallest_message;
    Stream *streams;
    Py_ssize_t nstreams;
    Py_ssize_t cap;
    Py_ssize_t last; /* index of the stream the last chunk was on (a cache) */
} Reader;

static PyObject *RemoteProtocolError = NULL;
static PyObject *LocalProtocolError = NULL;
static PyObject *str_buffer = NULL;
static PyObject *str_pos = NULL;
static PyObject *str_consume_to = NULL;

static void
set_limits(Reader *self, long long media, long long control)
{
    self->max_media_message_size = media;
    self->max_control_message_size = control;
    self->max_buffered_bytes = BUFFERED_MESSAGES_FACTOR * (media > control ? media : control);
}

static int
Reader_init(Reader *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_media_message_size", "max_control_message_size",
                             "max_chunk_streams", NULL};
    long long media = 8 << 20, control = 1 << 20, streams = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$LLL", kwlist, &media, &control, &streams))
        return -1;
    if (media < 0 || control < 0 || streams < 0 || media > (1LL << 40) || control > (1LL << 40)) {
        PyErr_SetString(LocalProtocolError, "message limits out of range");
        return -1;
    }
    set_limits(self, media, control);
    self->max_chunk_streams = streams;
    self->chunk_size = DEFAULT_CHUNK_SIZE;
    self->buffered = 0;
    self->smallest_message = 0;
    for (Py_ssize_t i = 0; i < self->nstreams; i++)
        PyMem_Free(self->streams[i].payload);
    self->nstreams = 0;
    self->last = 0;
    return 0;
}

static void
Reader_dealloc(Reader *self)
{
    for (Py_ssize_t i = 0; i < self->nstreams; i++)
        PyMem_Free(self->streams[i].payload);
    PyMem_Free(self->streams);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Stream *
find_stream(Reader *self, uint32_t csid)
{
    if (self->last < self->nstreams && self->streams[self->last].csid == csid)
        return &self->streams[self->last];
    for (Py_ssize_t i = 0; i < self->nstreams; i++) {
        if (self->streams[i].csid == csid) {
            self->last = i;
            return &self->streams[i];
        }
    }
    return NULL;
}

static Stream *
add_stream(Reader *self, uint32_t csid)
{
    if (self->nstreams == self->cap) {
        Py_ssize_t cap = self->cap ? self->cap * 2 : 8;
        Stream *grown = PyMem_Realloc(self->streams, (size_t)cap * sizeof(Stream));
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->streams = grown;
        self->cap = cap;
    }
    Stream *s = &self->streams[self->nstreams];
    memset(s, 0, sizeof(Stream));
    s->csid = csid;
    self->last = self->nstreams;
    self->nstreams++;
    return s;
}

/* The errors of chunk.py, word for word. */
static void
err_first_type(uint32_t csid, int fmt)
{
    PyErr_Format(RemoteProtocolError,
                 "first chunk on chunk stream %u has type %d, expected type 0", csid, fmt);
}

static int
check_new_stream(Reader *self, uint32_t csid, int fmt)
{
    if (fmt != 0) {
        err_first_type(csid, fmt);
        return -1;
    }
    if ((long long)self->nstreams >= self->max_chunk_streams) {
        PyErr_Format(RemoteProtocolError, "too many chunk streams (limit %lld)",
                     self->max_chunk_streams);
        return -1;
    }
    return 0;
}

static void
err_over_buffered(Reader *self)
{
    PyErr_Format(RemoteProtocolError, "partial messages exceed %lld buffered bytes",
                 self->max_buffered_bytes);
}

/* Make room for `need` bytes of a message of `length` bytes: grow by what arrived
 * (doubling), never beyond the message length. */
static int
reserve(Stream *s, Py_ssize_t need, uint32_t length)
{
    if (need <= s->payload_cap)
        return 0;
    Py_ssize_t cap = s->payload_cap ? s->payload_cap * 2 : 4096;
    if (cap < need)
        cap = need;
    if (cap > (Py_ssize_t)length)
        cap = (Py_ssize_t)length;
    char *grown = PyMem_Realloc(s->payload, (size_t)cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->payload = grown;
    s->payload_cap = cap;
    return 0;
}

static int
append_payload(Stream *s, const char *data, Py_ssize_t size)
{
    if (reserve(s, s->payload_len + size, s->message_length) < 0)
        return -1;
    memcpy(s->payload + s->payload_len, data, (size_t)size);
    s->payload_len += size;
    return 0;
}

static void
drop_payload(Stream *s)
{
    /* Freed, as the Python reader drops its bytearray: a buffer kept per chunk stream would
     * be memory no limit counts (64 chunk streams on each of 48 pre-auth connections). */
    s->partial = 0;
    s->payload_len = 0;
    PyMem_Free(s->payload);
    s->payload = NULL;
    s->payload_cap = 0;
}

static void
note_finished(Reader *self, Stream *s)
{
    if ((long long)s->message_length < self->smallest_message || !self->smallest_message)
        self->smallest_message = s->message_length;
}

static PyObject *
message_tuple(Stream *s, PyObject *payload)
{
    /* (message_type_id, message_stream_id, timestamp, payload); steals payload. */
    if (payload == NULL)
        return NULL;
    PyObject *t = PyTuple_New(4);
    if (t == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyObject *a = PyLong_FromLong(s->message_type_id);
    PyObject *b = PyLong_FromUnsignedLong(s->message_stream_id);
    PyObject *c = PyLong_FromUnsignedLong(s->timestamp);
    if (a == NULL || b == NULL || c == NULL) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
        Py_DECREF(payload);
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, b);
    PyTuple_SET_ITEM(t, 2, c);
    PyTuple_SET_ITEM(t, 3, payload);
    return t;
}

#define INCOMPLETE 0
#define PARTIAL 1
#define COMPLETED 2
#define FAILED -1

/* try_payload: parse one chunk at buf[*pos] if the whole chunk is in buf[0:end].
 * INCOMPLETE: nothing consumed, no state changed. PARTIAL: the chunk was consumed and its
 * message is still partial. COMPLETED: *out is the message tuple. FAILED: exception set
 * (nothing consumed, no state changed, as in Python: every check precedes every change). */
static int
try_payload(Reader *self, const unsigned char *buf, Py_ssize_t end, Py_ssize_t *pos,
            PyObject **out, int *type_out)
{
    Py_ssize_t p0 = *pos;
    if (p0 >= end)
        return INCOMPLETE;
    unsigned char first = buf[p0];
    int fmt = first >> 6;
    uint32_t csid = first & 0x3F;
    Py_ssize_t at = p0 + 1;
    if (csid <= 1) {
        at += csid + 1;
        if (at > end)
            return INCOMPLETE;
        csid = 64 + buf[p0 + 1] + (csid ? ((uint32_t)buf[p0 + 2] << 8) : 0);
    }
    Stream *s = find_stream(self, csid);

    if (s != NULL && s->partial && fmt == 3) {
        /* Continuation (§5.3.1.2.4), repeating the extended timestamp if any (§5.3.1.3). */
        Py_ssize_t p = at;
        if (s->extended) {
            p += 4;
            if (p > end)
                return INCOMPLETE;
        }
        Py_ssize_t remaining = (Py_ssize_t)s->message_length - s->payload_len;
        Py_ssize_t size = self->chunk_size < remaining ? (Py_ssize_t)self->chunk_size : remaining;
        if (self->buffered + size > self->max_buffered_bytes) {
            err_over_buffered(self);
            return FAILED;
        }
        if (p + size > end)
            return INCOMPLETE;
        if (s->payload_len + size < (Py_ssize_t)s->message_length) {
            if (append_payload(s, (const char *)buf + p, size) < 0)
                return FAILED;
            *pos = p + size;
            self->buffered += size;
            return PARTIAL;
        }
        /* Completes the message: one copy of the whole into a new bytes object. */
        PyObject *payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)s->message_length);
        if (payload == NULL)
            return FAILED;
        char *dst = PyBytes_AS_STRING(payload);
        if (s->payload_len)
            memcpy(dst, s->payload, (size_t)s->payload_len);
        if (size)
            memcpy(dst + s->payload_len, buf + p, (size_t)size);
        self->buffered -= s->payload_len;
        *out = message_tuple(s, payload);
        if (*out == NULL)
            return FAILED; /* (only on memory exhaustion; the connection fails) */
        *pos = p + size;
        *type_out = s->message_type_id;
        drop_payload(s);
        note_finished(self, s);
        return COMPLETED;
    }

    /* A chunk that should begin a message. */
    if (s == NULL && check_new_stream(self, csid, fmt) < 0)
        return FAILED;
    Py_ssize_t p = at + MESSAGE_HEADER_SIZE[fmt];
    if (p > end)
        return INCOMPLETE;
    uint32_t timestamp_field;
    int extended;
    if (fmt == 3) {
        timestamp_field = 0;
        extended = s->extended; /* (s exists: a new stream starts with type 0) */
    } else {
        timestamp_field = ((uint32_t)buf[at] << 16) | ((uint32_t)buf[at + 1] << 8) | buf[at + 2];
        extended = timestamp_field == EXTENDED_TIMESTAMP_SENTINEL;
    }
    if (extended) {
        if (p + 4 > end)
            return INCOMPLETE;
        timestamp_field = ((uint32_t)buf[p] << 24) | ((uint32_t)buf[p + 1] << 16) |
                          ((uint32_t)buf[p + 2] << 8) | buf[p + 3];
        p += 4;
    }
    if (s != NULL && s->partial) { /* and so fmt is not 3 */
        PyErr_Format(RemoteProtocolError,
                     "chunk type %d on chunk stream %u interrupts a %u-byte message "
                     "(expected type 3)", fmt, csid, s->message_length);
        return FAILED;
    }
    uint32_t length;
    int type_id;
    if (fmt <= 1) {
        length = ((uint32_t)buf[at + 3] << 16) | ((uint32_t)buf[at + 4] << 8) | buf[at + 5];
        type_id = buf[at + 6];
    } else {
        length = s->message_length;
        type_id = s->message_type_id;
    }
    long long limit = (type_id == 8 || type_id == 9 || type_id == 22)
                          ? self->max_media_message_size : self->max_control_message_size;
    if ((long long)length > limit) {
        PyErr_Format(RemoteProtocolError,
                     "message of %u bytes exceeds the %lld-byte limit for message type %d",
                     length, limit, type_id);
        return FAILED;
    }
    Py_ssize_t size = self->chunk_size < (long long)length ? (Py_ssize_t)self->chunk_size
                                                          : (Py_ssize_t)length;
    if (self->buffered + size > self->max_buffered_bytes) {
        err_over_buffered(self);
        return FAILED;
    }
    if (p + size > end)
        return INCOMPLETE;

    /* The whole chunk is buffered: allocate what it needs first, then apply it
     * (chunk.py _start_message), so that running out of memory changes nothing either. */
    PyObject *payload = NULL;
    if ((Py_ssize_t)length == size) { /* a whole message in one chunk */
        payload = PyBytes_FromStringAndSize((const char *)buf + p, size);
        if (payload == NULL)
            return FAILED;
    }
    if (s == NULL) {
        s = add_stream(self, csid);
        if (s == NULL) {
            Py_XDECREF(payload);
            return FAILED;
        }
    }
    if (payload == NULL && reserve(s, size, length) < 0)
        return FAILED;
    s->extended = (uint8_t)extended;
    if (fmt == 0) {
        /* §5.3.1.2.1: absolute timestamp, little-endian message stream id. §5.3.1.2.4: a
         * type-3 chunk after a type-0 chunk uses the type-0 timestamp as its delta. */
        s->timestamp = timestamp_field;
        s->timestamp_delta = timestamp_field;
        s->message_stream_id = (uint32_t)buf[at + 7] | ((uint32_t)buf[at + 8] << 8) |
                               ((uint32_t)buf[at + 9] << 16) | ((uint32_t)buf[at + 10] << 24);
    } else {
        if (fmt <= 2)
            s->timestamp_delta = timestamp_field;
        s->timestamp = s->timestamp + s->timestamp_delta; /* (mod 2^32) */
    }
    s->message_length = length;
    s->message_type_id = (uint8_t)type_id;
    if (payload == NULL) {
        memcpy(s->payload, buf + p, (size_t)size); /* (reserved above) */
        s->payload_len = size;
        s->partial = 1;
        *pos = p + size;
        self->buffered += size;
        return PARTIAL;
    }
    *out = message_tuple(s, payload);
    if (*out == NULL)
        return FAILED;
    *pos = p + size;
    *type_out = type_id;
    note_finished(self, s);
    return COMPLETED;
}

static PyObject *
Reader_parse_run(Reader *self, PyObject *args)
{
    PyObject *reader;
    Py_ssize_t max_chunks;
    if (!PyArg_ParseTuple(args, "On", &reader, &max_chunks))
        return NULL;
    PyObject *bufobj = PyObject_GetAttr(reader, str_buffer);
    if (bufobj == NULL)
        return NULL;
    PyObject *posobj = PyObject_GetAttr(reader, str_pos);
    if (posobj == NULL) {
        Py_DECREF(bufobj);
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(posobj);
    Py_DECREF(posobj);
    if (pos == -1 && PyErr_Occurred()) {
        Py_DECREF(bufobj);
        return NULL;
    }
    PyObject *messages = PyList_New(0);
    if (messages == NULL) {
        Py_DECREF(bufobj);
        return NULL;
    }
    /* A buffer export: while we hold a pointer into the bytearray it cannot be resized
     * (an attempt, say from a finalizer run by a collection during an allocation here,
     * raises BufferError instead of moving the bytes). */
    Py_buffer view;
    if (PyObject_GetBuffer(bufobj, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(bufobj);
        Py_DECREF(messages);
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len;
    if (pos < 0 || pos > end)
        pos = end; /* (not reachable through StreamReader) */
    Py_ssize_t start = pos, chunks = 0;
    int failed = 0;
    while (max_chunks < 0 || chunks < max_chunks) {
        PyObject *msg = NULL;
        int type_id = 0;
        int r = try_payload(self, buf, end, &pos, &msg, &type_id);
        if (r == INCOMPLETE)
            break;
        if (r == FAILED) {
            failed = 1;
            break;
        }
        chunks++;
        if (r == COMPLETED) {
            int appended = PyList_Append(messages, msg);
            Py_DECREF(msg);
            if (appended < 0) {
                failed = 1;
                break;
            }
            /* Stop after anything but audio and video: the caller acts on it (a chunk size,
             * an abort, a publish to decide) before the next chunk is parsed. */
            if (type_id != 8 && type_id != 9)
                break;
        }
    }
    PyBuffer_Release(&view);
    Py_DECREF(bufobj);
    if (failed) {
        /* A protocol error after some chunks: return those (the failing chunk changed
         * nothing, and the next call raises at it), so the messages before it are handled
         * first, as chunk by chunk. Anything else (memory) fails at once. */
        if (chunks == 0 || !PyErr_ExceptionMatches(RemoteProtocolError)) {
            Py_DECREF(messages);
            return NULL;
        }
        PyErr_Clear();
    }
    if (pos != start) {
        PyObject *at = PyLong_FromSsize_t(pos);
        PyObject *r = at ? PyObject_CallMethodObjArgs(reader, str_consume_to, at, NULL) : NULL;
        Py_XDECREF(at);
        if (r == NULL) {
            Py_DECREF(messages);
            return NULL;
        }
        Py_DECREF(r);
    }
    return Py_BuildValue("(nN)", chunks, messages);
}

static PyObject *
Reader_set_chunk_size(Reader *self, PyObject *arg)
{
    long long size = PyLong_AsLongLong(arg);
    if (size == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();
        size = -1;
    }
    if (size < 1 || size > 0x7FFFFFFF) {
        PyObject *repr = PyObject_Str(arg);
        if (repr == NULL)
            return NULL;
        PyErr_Format(LocalProtocolError, "chunk size %U out of range", repr);
        Py_DECREF(repr);
        return NULL;
    }
    self->chunk_size = size < MAX_CHUNK_SIZE ? size : MAX_CHUNK_SIZE;
    Py_RETURN_NONE;
}

static PyObject *
Reader_set_message_limits(Reader *self, PyObject *args)
{
    long long media, control;
    if (!PyArg_ParseTuple(args, "LL", &media, &control))
        return NULL;
    set_limits(self, media, control);
    Py_RETURN_NONE;
}

static PyObject *
Reader_abort(Reader *self, PyObject *arg)
{
    long long csid = PyLong_AsLongLong(arg);
    if (csid == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE; /* no such chunk stream */
    }
    if (csid < 0 || csid > 0xFFFFFFFFLL)
        Py_RETURN_NONE;
    Stream *s = find_stream(self, (uint32_t)csid);
    if (s != NULL && s->partial) {
        self->buffered -= s->payload_len;
        drop_payload(s);
    }
    Py_RETURN_NONE;
}

static PyObject *
Reader_get_pending(Reader *self, void *closure)
{
    long long best = -1;
    for (Py_ssize_t i = 0; i < self->nstreams; i++) {
        Stream *s = &self->streams[i];
        if (s->partial) {
            long long missing = (long long)s->message_length - s->payload_len;
            if (best < 0 || missing < best)
                best = missing;
        }
    }
    return PyLong_FromLongLong(best < 0 ? 0 : best);
}

static PyObject *
Reader_get_chunk_size(Reader *self, void *closure)
{
    return PyLong_FromLongLong(self->chunk_size);
}

static PyObject *
Reader_get_buffered(Reader *self, void *closure)
{
    return PyLong_FromLongLong(self->buffered);
}

static PyObject *
Reader_get_count(Reader *self, void *closure)
{
    return PyLong_FromSsize_t(self->nstreams);
}

static PyObject *
Reader_get_smallest(Reader *self, void *closure)
{
    return PyLong_FromLongLong(self->smallest_message);
}

static int
Reader_set_smallest(Reader *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete smallest_message");
        return -1;
    }
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    self->smallest_message = v;
    return 0;
}

#define LIMIT_GETTER(name)                                              \
    static PyObject *Reader_get_##name(Reader *self, void *closure)     \
    {                                                                   \
        return PyLong_FromLongLong(self->name);                         \
    }
LIMIT_GETTER(max_media_message_size)
LIMIT_GETTER(max_control_message_size)
LIMIT_GETTER(max_chunk_streams)
LIMIT_GETTER(max_buffered_bytes)

static PyGetSetDef Reader_getset[] = {
    {"chunk_size", (getter)Reader_get_chunk_size, NULL, "The peer's chunk size (§5.4.1).", NULL},
    {"buffered_bytes", (getter)Reader_get_buffered, NULL,
     "Bytes held in partially reassembled messages.", NULL},
    {"pending_payload_bytes", (getter)Reader_get_pending, NULL,
     "Payload bytes still missing from the partial message closest to completion.", NULL},
    {"chunk_stream_count", (getter)Reader_get_count, NULL, "Chunk stream ids seen so far.",
     NULL},
    {"smallest_message", (getter)Reader_get_smallest, (setter)Reader_set_smallest,
     "Smallest message completed since the owner reset this to 0.", NULL},
    {"max_media_message_size", (getter)Reader_get_max_media_message_size, NULL, NULL, NULL},
    {"max_control_message_size", (getter)Reader_get_max_control_message_size, NULL, NULL,
     NULL},
    {"max_chunk_streams", (getter)Reader_get_max_chunk_streams, NULL, NULL, NULL},
    {"max_buffered_bytes", (getter)Reader_get_max_buffered_bytes, NULL, NULL, NULL},
    {NULL},
};

static PyMethodDef Reader_methods[] = {
    {"parse_run", (PyCFunction)Reader_parse_run, METH_VARARGS,
     "parse_run(reader, max_chunks) -> (chunks, messages); see ChunkReader.parse_run."},
    {"set_chunk_size", (PyCFunction)Reader_set_chunk_size, METH_O, NULL},
    {"set_message_limits", (PyCFunction)Reader_set_message_limits, METH_VARARGS, NULL},
    {"abort", (PyCFunction)Reader_abort, METH_O, NULL},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media.rtmp._chunks.NativeChunkReader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ChunkReader.parse_run in C (see media/rtmp/chunk.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
    .tp_getset = Reader_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "media.rtmp._chunks",
    "The RTMP chunk reader's hot path in C (see _chunks.c).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__chunks(void)
{
    PyObject *errors = PyImport_ImportModule("media.rtmp.errors");
    if (errors == NULL)
        return NULL;
    RemoteProtocolError = PyObject_GetAttrString(errors, "RemoteProtocolError");
    LocalProtocolError = PyObject_GetAttrString(errors, "LocalProtocolError");
    Py_DECREF(errors);
    if (RemoteProtocolError == NULL || LocalProtocolError == NULL)
        return NULL;
    str_buffer = PyUnicode_InternFromString("_buffer");
    str_pos = PyUnicode_InternFromString("_pos");
    str_consume_to = PyUnicode_InternFromString("consume_to");
    if (str_buffer == NULL || str_pos == NULL || str_consume_to == NULL)
        return NULL;
    if (PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "NativeChunkReader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
