/* bonsai status codes and error messages.
 *
 * Every call that can fail returns a bonsai_status. On failure a message
 * naming the object and the expected/actual values is kept per thread and
 * can be read with bonsai_last_error() until the next failing call on the
 * same thread. */
#ifndef BONSAI_STATUS_H
#define BONSAI_STATUS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bonsai_status {
    BONSAI_OK = 0,
    BONSAI_ERR_NULL_ARG,        /* a required pointer was NULL */
    BONSAI_ERR_INVALID_ARG,     /* a value out of its allowed range */
    BONSAI_ERR_SHAPE,           /* k not a multiple of the block size, zero rows, ... */
    BONSAI_ERR_BUFFER_TOO_SMALL,/* a caller buffer is smaller than the shape needs */
    BONSAI_ERR_OVERFLOW,        /* a shape whose byte count overflows size_t */
    BONSAI_ERR_OUT_OF_MEMORY,
    BONSAI_ERR_UNSUPPORTED,     /* type/op/tier not available here */
    BONSAI_ERR_IO,              /* open/read/write/mmap failed */
    BONSAI_ERR_FORMAT,          /* malformed or hostile file contents */
    BONSAI_ERR_AMBIGUOUS,       /* input can be read more than one way; an option must decide */
    BONSAI_ERR_NO_CUDA_DEVICE,  /* no driver, no NVRTC or no device */
    BONSAI_ERR_CUDA,            /* a CUDA call failed (message carries CUDA's text) */
    BONSAI_ERR_CONTEXT_FULL,    /* KV cache / context length exhausted */
    BONSAI_ERR_THREAD,          /* thread creation failed */
    BONSAI_ERR_NOT_FOUND,       /* a key, tensor or file that is not there */
    BONSAI_STATUS_COUNT
} bonsai_status;

/* Short stable name of a status, e.g. "BONSAI_ERR_SHAPE". */
const char *bonsai_status_name(bonsai_status s);

/* Message of the last failure on this thread ("" if none). */
const char *bonsai_last_error(void);

/* Progress of long work (model load, file writing): done of total units
 * of the step named by what. Called from the working thread. */
typedef void (*bonsai_progress_fn)(void *user, const char *what, uint64_t done, uint64_t total);

#ifdef __cplusplus
}
#endif
#endif
