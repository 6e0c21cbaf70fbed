/* Internal: cache-line aligned allocation with overflow-checked sizes. */
#ifndef BONSAI_CORE_ALLOC_H
#define BONSAI_CORE_ALLOC_H
#include <stddef.h>

#define BONSAI_ALIGN 64

/* NULL on failure or when n * size overflows. Free with bonsai_free. */
void *bonsai_alloc_array(size_t n, size_t size);
void bonsai_free(void *p);
/* 1 and *out = a * b when it fits, 0 on overflow. */
int bonsai_mul_size(size_t a, size_t b, size_t *out);

#endif
