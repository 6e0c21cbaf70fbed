/* Internal: record a failure's message for bonsai_last_error(). */
#ifndef BONSAI_CORE_ERROR_H
#define BONSAI_CORE_ERROR_H
#include "bonsai/status.h"

#if defined(__GNUC__)
#define BONSAI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BONSAI_PRINTF(a, b)
#endif

/* Formats the message, stores it for this thread and returns s. */
bonsai_status bonsai_fail(bonsai_status s, const char *fmt, ...) BONSAI_PRINTF(2, 3);
void bonsai_clear_error(void);

#endif
