/* Status names and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

static _Thread_local char last_error[1024];

const char *bonsai_status_name(bonsai_status s)
{
    static const char *const names[BONSAI_STATUS_COUNT] = {
        [BONSAI_OK] = "BONSAI_OK",
        [BONSAI_ERR_NULL_ARG] = "BONSAI_ERR_NULL_ARG",
        [BONSAI_ERR_INVALID_ARG] = "BONSAI_ERR_INVALID_ARG",
        [BONSAI_ERR_SHAPE] = "BONSAI_ERR_SHAPE",
        [BONSAI_ERR_BUFFER_TOO_SMALL] = "BONSAI_ERR_BUFFER_TOO_SMALL",
        [BONSAI_ERR_OVERFLOW] = "BONSAI_ERR_OVERFLOW",
        [BONSAI_ERR_OUT_OF_MEMORY] = "BONSAI_ERR_OUT_OF_MEMORY",
        [BONSAI_ERR_UNSUPPORTED] = "BONSAI_ERR_UNSUPPORTED",
        [BONSAI_ERR_IO] = "BONSAI_ERR_IO",
        [BONSAI_ERR_FORMAT] = "BONSAI_ERR_FORMAT",
        [BONSAI_ERR_AMBIGUOUS] = "BONSAI_ERR_AMBIGUOUS",
        [BONSAI_ERR_NO_CUDA_DEVICE] = "BONSAI_ERR_NO_CUDA_DEVICE",
        [BONSAI_ERR_CUDA] = "BONSAI_ERR_CUDA",
        [BONSAI_ERR_CONTEXT_FULL] = "BONSAI_ERR_CONTEXT_FULL",
        [BONSAI_ERR_THREAD] = "BONSAI_ERR_THREAD",
        [BONSAI_ERR_NOT_FOUND] = "BONSAI_ERR_NOT_FOUND",
    };
    if ((unsigned)s >= BONSAI_STATUS_COUNT)
        return "BONSAI_ERR_UNKNOWN";
    return names[s];
}

const char *bonsai_last_error(void)
{
    return last_error;
}

void bonsai_clear_error(void)
{
    last_error[0] = '\0';
}

bonsai_status bonsai_fail(bonsai_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}
