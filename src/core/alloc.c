#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"

int bonsai_mul_size(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b)
        return 0;
    *out = a * b;
    return 1;
}

void *bonsai_alloc_array(size_t n, size_t size)
{
    size_t bytes;
    if (!bonsai_mul_size(n, size, &bytes))
        return NULL;
    bytes = (bytes + BONSAI_ALIGN - 1) / BONSAI_ALIGN * BONSAI_ALIGN;
    if (bytes == 0)
        bytes = BONSAI_ALIGN;
    return aligned_alloc(BONSAI_ALIGN, bytes);
}

void bonsai_free(void *p)
{
    free(p);
}
